"""The job file's YAML loader and the wording of its validation errors.

The loader refuses a key given twice in one mapping and aliases that expand past a bound;
``pipeline.config.read_yaml`` runs it and turns what it refuses into a ConfigError.
"""

from __future__ import annotations

import yaml
from pydantic import ValidationError

MAX_YAML_VALUES = 100_000  # a job file is a few hundred values; aliases may not expand past this
_SHOWN_CHARS = 200  # an input echoed into a message is cut to this


class _JobLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (the later one would
    silently win) and aliases that expand past ``MAX_YAML_VALUES`` values (a few lines of nested
    aliases can stand for billions of values, and every later step would walk them all)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {_shown(key)} is given twice in one mapping (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _expanded_size(node, memo: dict) -> int:
    """How many values ``node`` stands for once every alias is expanded (shared nodes counted each time)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_YAML_VALUES + 1  # a node that contains itself expands forever
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_YAML_VALUES + 1)
    return memo[id(node)]


def _shown(value: object) -> str:
    """``repr(value)``, cut to a bounded length: a message never echoes an unbounded input."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + f"… ({len(text):,} characters)"


def _format_errors(path: str, err: ValidationError) -> str:
    lines = [f"{path}: invalid job configuration ({err.error_count()} problem(s)):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        msg = msg if len(msg) <= 4 * _SHOWN_CHARS else msg[: 4 * _SHOWN_CHARS] + "…"
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        got = e.get("input")
        shown = "" if e["type"] in ("missing",) or isinstance(got, dict) else f" (got {_shown(got)})"
        lines.append(f"  - {key}: {msg}{shown}")
    return "\n".join(lines)
