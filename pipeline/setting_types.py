"""Strict number and flag types for the job file: YAML's ``true`` is not the number 1, ``1`` is
not a flag, and ``"3"`` is not a number."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, StrictBool, StrictInt


def _number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return value


Int = StrictInt
Flag = StrictBool
Number = Annotated[float, BeforeValidator(_number)]  # an int such as 1 is a number too
