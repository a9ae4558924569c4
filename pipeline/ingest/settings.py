"""The job's inputs and the ingest stage's typed configuration (``inputs:`` and ``ingest:`` in a
job YAML): which file holds each split, how to read it, and how its rows are validated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..setting_types import Flag, Int

FORMATS = ("tsv", "csv", "jsonl", "parquet")
_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMap(_Strict):
    """Which source columns (or JSON keys) hold the texts and the label."""

    text_a: str = Field(description="column (or JSON key) of the text; with header: false, its 0-based number")
    text_b: str | None = Field(None, description="column of the second text of a sentence pair; None = single texts")
    label: str | None = Field(None, description="column of the label; None = unlabelled rows")


class InputSpec(_Strict):
    path: str = Field(description="local path or pyarrow.fs URI (s3://, gs://, hdfs://, file://)")
    format: Literal["tsv", "csv", "jsonl", "parquet"] | None = Field(
        None,
        description="None = from the file's extension (.tsv, .csv, .jsonl/.json, .parquet; .gz/.bz2/.zst looked through)",
    )
    columns: ColumnMap
    header: Flag = Field(True, description="TSV / CSV: the first line names the columns")
    limit: Annotated[Int, Field(gt=0)] | None = Field(None, description="read only the first N data rows")
    license: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.+-]{0,63}$")] | None = Field(
        None,
        description="licence of the input data as a dataset hub names it (an SPDX-style id such as "
        "cc-by-4.0 or apache-2.0, or other); written into each teacher cache's dataset card; None = unknown",
    )

    @model_validator(mode="after")
    def _format_known(self) -> InputSpec:
        if self.format is None and format_from_path(self.path) is None:
            raise ValueError(
                f"cannot tell the format of {self.path!r} from its extension; set format to one of {FORMATS}"
            )
        if not self.header and self.resolved_format in ("tsv", "csv"):
            for name in (self.columns.text_a, self.columns.text_b, self.columns.label):
                if name is not None and not name.isdigit():
                    raise ValueError(f"with header: false, columns must be 0-based column numbers, got {name!r}")
        return self

    @property
    def resolved_format(self) -> str:
        fmt = self.format or format_from_path(self.path)
        assert fmt is not None  # _format_known refuses a spec whose format cannot be told
        return fmt


def format_from_path(path: str) -> str | None:
    """The input format implied by a file name (``.gz`` and friends looked through), or None."""
    suffixes = Path(path.split("?")[0]).suffixes
    if len(suffixes) > 1 and suffixes[-1] in (".gz", ".bz2", ".zst"):
        suffixes = suffixes[:-1]
    return _EXTENSIONS.get(suffixes[-1]) if suffixes else None


class IngestConfig(_Strict):
    """Validating raw rows into examples and rejects."""

    max_chars: Annotated[Int, Field(gt=0)] = Field(2000, description="longest text kept, in characters")
    too_long: Literal["reject", "truncate"] = Field(
        "reject", description="a text over max_chars: rejected with its reason, or cut to max_chars"
    )
    crlf: Literal["normalise", "reject"] = Field("normalise", description="CRLF line endings")
    bom: Literal["strip", "reject"] = Field("strip", description="a UTF-8 byte-order mark at the start of a file")
    strict: Flag = Field(False, description="any rejected row fails the stage")
    chunk_bytes: Annotated[Int, Field(ge=256)] = Field(
        8 << 20, description="bytes of text input per task (each task writes one examples file)"
    )
