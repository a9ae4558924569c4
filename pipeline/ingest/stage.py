"""The ingest stage: validate every input row in Ray tasks that write their own examples and rejects.

A split is planned as tasks over fixed pieces of its input file (line-aligned byte ranges of
``chunk_bytes``, CSV ones moved to record starts, or Parquet row groups); task i writes ``examples/<split>/part-i.parquet`` and,
when it rejects rows, ``rejects/<split>/part-i.jsonl``. Rows in = rows kept + rows rejected, per
split, checked before the stage reports success. The runner (``runtime/runner.py``) skips a
finished split and resumes an interrupted one per task.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from .. import layout, storage
from ..config import JobConfig
from ..errors import PipelineError, TaskError
from ..runtime import markers
from ..runtime.digest import digest
from ..runtime.resources import Resources
from ..runtime.runner import Stage, Task, Work, make_task, run_stage
from . import readers
from .validate import (
    FIX_BOM,
    FIX_CRLF,
    FIX_TRUNCATED,
    Rejected,
    Rules,
    header_fields,
    reject_csv_record,
    validate_line,
    validate_record,
)

EXAMPLE_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("source", pa.string()),
        ("line", pa.int64()),
        ("text_a", pa.string()),
        ("text_b", pa.string()),
        ("label", pa.string()),
        ("label_id", pa.int32()),
        ("score", pa.float32()),  # regression tasks: the label as a number; null otherwise
    ]
)
# What validation gives: examples and rejects in one ordered table.
_TASK_SCHEMA = pa.schema(
    [*EXAMPLE_SCHEMA, ("fixes", pa.string()), ("reason", pa.string()), ("detail", pa.string()), ("raw", pa.string())]
)
_REJECT_COLUMNS = ["source", "line", "reason", "detail", "raw"]
_FIXES = (FIX_CRLF, FIX_BOM, FIX_TRUNCATED)


class IngestFailed(PipelineError, RuntimeError):
    """Rows were lost (a broken invariant) or rejected under --strict."""


def validate_chunk(chunk: readers.Chunk, rules: Rules, source: str) -> pa.Table:
    """Pure: one chunk of one file → a table of example rows and reject rows (reason set)."""
    out: list[dict] = []
    if chunk.fmt == "parquet":
        columns = [c for c in (rules.text_a, rules.text_b, rules.label) if c]
        table = readers.read_parquet_chunk(chunk, columns)
        for i, record in enumerate(table.to_pylist()):
            out.append(_row_or_reject(validate_record(record, chunk.first_line + i, source, rules)))
    else:
        limit = readers.MAX_RECORD_BYTES
        for rec in readers.iter_chunk_records(chunk):
            result = reject_csv_record(rec.raw, rec.line, rec.last_line, source, rec.unclosed, rec.size, limit)
            out.append(_row_or_reject(result or validate_line(rec.raw, rec.line, source, rules)))
    return pa.Table.from_pylist(out, schema=_TASK_SCHEMA)


def _row_or_reject(result: tuple[dict | None, dict | None]) -> dict:
    """The example row of a ``validate_*`` result, else its reject record."""
    row, rej = result
    if row is not None:
        return row
    assert rej is not None  # validate_line/validate_record set exactly one of the two
    return rej


@dataclass
class SplitSummary:
    split: str
    source: str
    path: str
    rows_in: int = 0
    kept: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    fixes: dict[str, int] = field(default_factory=lambda: {FIX_CRLF: 0, FIX_BOM: 0, FIX_TRUNCATED: 0})
    shards: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    reused: bool = False  # finished by an earlier run with the same input and settings

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def as_dict(self) -> dict:
        return {
            "split": self.split,
            "source": self.source,
            "path": self.path,
            "rows_in": self.rows_in,
            "kept": self.kept,
            "rejected": self.rejected,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "fixes": self.fixes,
            "shards": self.shards,
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, d: dict, reused: bool = False) -> SplitSummary:
        return cls(
            d["split"],
            d["source"],
            d["path"],
            d["rows_in"],
            d["kept"],
            dict(d["rejected_by_reason"]),
            dict(d["fixes"]),
            list(d["shards"]),
            d["seconds"],
            reused,
        )


def _rules(cfg: JobConfig, split: str) -> Rules:
    spec = cfg.inputs[split]
    fmt = spec.resolved_format
    base = Rules(
        fmt=fmt,
        text_a=spec.columns.text_a,
        text_b=spec.columns.text_b,
        label=spec.columns.label,
        labels=tuple(cfg.labels) if cfg.labels else None,
        score_range=(cfg.score.min, cfg.score.max) if cfg.score else None,
        max_chars=cfg.ingest.max_chars,
        too_long=cfg.ingest.too_long,
        crlf=cfg.ingest.crlf,
        bom=cfg.ingest.bom,
    )
    if fmt not in ("tsv", "csv") or not spec.header:
        return base
    raw = readers.read_header(spec.path)
    try:
        names = header_fields(raw, base)
    except (UnicodeDecodeError, Rejected) as exc:
        raise readers.InputError(f"{spec.path}:1: unreadable header line: {exc}") from None
    wanted = [c for c in (spec.columns.text_a, spec.columns.text_b, spec.columns.label) if c]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise readers.InputError(
            f"{spec.path}:1: column(s) {missing} not in the header {names} (inputs.{split}.columns)"
        )
    if len(set(names)) != len(names):
        raise readers.InputError(f"{spec.path}:1: duplicate column names in the header {names}")
    return dataclasses.replace(base, header=tuple(names))


def split_rows(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Pure: validated rows → (kept examples, reject rows)."""
    is_reject = pc.is_valid(table.column("reason"))
    return table.filter(pc.invert(is_reject)), table.filter(is_reject)


def count_fixes(kept: pa.Table) -> dict[str, int]:
    counts = dict.fromkeys(_FIXES, 0)
    for fixes in kept.column("fixes").drop_null().to_pylist():
        for fix in fixes.split(","):
            counts[fix] += 1
    return counts


def ingest_task(task: Task, rules: Rules, source: str, examples: str, rejects: str) -> dict:
    """Ray task: validate one chunk, write its examples and rejects; return the counts."""
    chunk = readers.Chunk(**task.spec["chunk"]) if task.spec["chunk"] else None
    try:
        table = validate_chunk(chunk, rules, source) if chunk else _TASK_SCHEMA.empty_table()
    except (OSError, EOFError, pa.ArrowException) as exc:  # the file itself is damaged: exit 2 naming it
        assert chunk is not None
        where = (
            f" (row group {chunk.start})"
            if chunk.fmt == "parquet"
            else " (its compressed stream)"
            if chunk.compressed
            else f" (bytes {chunk.start}-{chunk.end})"
        )
        raise readers.unreadable(chunk.path, where, exc) from None
    kept, rejected = split_rows(table)
    files = [storage.write_parquet(storage.join(examples, f"{task.name}.parquet"), kept.select(EXAMPLE_SCHEMA.names))]
    if rejected.num_rows:
        lines = [json.dumps(r, ensure_ascii=False) for r in rejected.select(_REJECT_COLUMNS).to_pylist()]
        files.append(storage.write_lines(storage.join(rejects, f"{task.name}.jsonl"), lines))
    by_reason: dict[str, int] = {}
    for reason in rejected.column("reason").to_pylist():
        by_reason[reason] = by_reason.get(reason, 0) + 1
    return {
        "files": files,
        "rows_in": table.num_rows,
        "kept": kept.num_rows,
        "rejected_by_reason": by_reason,
        "fixes": count_fixes(kept),
    }


def _count_lines(
    ranges: list[tuple[int, int]], path: str, executor: str, count_fn: Callable = readers.count_lines
) -> list:
    """Lines per byte range (or :func:`readers.scan_csv`'s scans), counted by Ray tasks (the driver
    never reads the file)."""
    if executor == "local":
        return [count_fn(path, a, b) for a, b in ranges]
    import ray

    from ..runtime.ray_env import ensure

    ensure()

    count = ray.remote(_count_task).options(**Resources().ray_options())
    counts: list = []
    for n in ray.get([count.remote(count_fn, path, a, b) for a, b in ranges]):
        if isinstance(n, str):  # the worker's message, without Ray's wrapping
            raise TaskError(n)
        counts.append(n)
    return counts


def _count_task(count_fn: Callable, path: str, start: int, end: int) -> object:
    try:
        return count_fn(path, start, end)
    except PipelineError as exc:
        return str(exc)


def plan(cfg: JobConfig, split: str, executor: str = "local") -> tuple[Rules, list[readers.Chunk]]:
    """The split's validation rules and its chunks (fixed by the input file and the settings)."""
    spec = cfg.inputs[split]
    rules = _rules(cfg, split)
    if rules.fmt == "parquet":
        cols = [c for c in (spec.columns.text_a, spec.columns.text_b, spec.columns.label) if c]
        return rules, readers.plan_parquet_chunks(spec.path, cols, spec.limit)
    has_header = spec.header and rules.fmt in ("tsv", "csv")
    if readers.is_compressed(spec.path):
        return rules, readers.plan_compressed_chunk(spec.path, rules.fmt, has_header, spec.limit)
    ranges = readers.text_ranges(spec.path, cfg.ingest.chunk_bytes, has_header)
    if rules.fmt == "csv":  # records may span lines: cuts move to record starts
        scans = _count_lines(ranges, spec.path, executor, readers.scan_csv)
        spans, lines, records = readers.csv_spans(ranges, scans)
        return rules, readers.plan_text_chunks(spec.path, "csv", spans, lines, has_header, spec.limit, records)
    lines = _count_lines(ranges, spec.path, executor)
    return rules, readers.plan_text_chunks(spec.path, rules.fmt, ranges, lines, has_header, spec.limit)


def examples_dir(cfg: JobConfig, split: str) -> str:
    return layout.examples_dir(cfg.output_dir, split)


def rejects_dir(cfg: JobConfig, split: str) -> str:
    return layout.rejects_dir(cfg.output_dir, split)


def completion_key(cfg: JobConfig, split: str) -> str | None:
    """What a finished split must match: its settings and its input file's content. None when the
    input cannot be read (the stage then reports why)."""
    settings = {
        "stage": "ingest",
        "split": split,
        "input": cfg.inputs[split].model_dump(
            mode="json", exclude={"license"}
        ),  # the licence does not change the examples
        "ingest": cfg.ingest.model_dump(mode="json", exclude={"strict"}),
        "labels": cfg.labels,
        "score": cfg.score.model_dump(mode="json") if cfg.score else None,
    }
    try:
        fingerprint = markers.fingerprint_file(cfg.inputs[split].path)
    except OSError:
        return None
    return digest([settings, fingerprint])


def _summarize(split: str, source: str, path: str, results: list[dict]) -> dict:
    s = SplitSummary(split, source, path)
    for r in results:
        s.rows_in += r["rows_in"]
        s.kept += r["kept"]
        for reason, n in r["rejected_by_reason"].items():
            s.rejected_by_reason[reason] = s.rejected_by_reason.get(reason, 0) + n
        for fix, n in r["fixes"].items():
            s.fixes[fix] += n
        s.shards.append({"file": os.path.basename(r["files"][0]["path"]), "rows": r["kept"]})
    if s.rows_in != s.kept + s.rejected:  # a broken invariant, never a user error
        raise IngestFailed(f"{split}: rows in {s.rows_in} != kept {s.kept} + rejected {s.rejected}")
    return s.as_dict()


def _lines(cfg: JobConfig, split: str, d: dict) -> list[tuple[str, object]]:
    s = SplitSummary.from_dict(d)
    rows: list[tuple[str, object]] = [
        ("input", s.path),
        ("rows in", s.rows_in),
        ("kept", s.kept),
        ("rejected", s.rejected),
    ]
    rows += [(f"  {reason}", n) for reason, n in sorted(s.rejected_by_reason.items())]
    rows += [(f"repaired: {fix}", n) for fix, n in s.fixes.items() if n]
    rows += [
        ("check", f"{s.rows_in:,} in = {s.kept:,} kept + {s.rejected:,} rejected"),
        ("examples", examples_dir(cfg, split)),
        ("rejects", rejects_dir(cfg, split)),
    ]
    return rows


def ingest_stage(cfg: JobConfig, split: str, executor: str = "ray") -> Stage:
    spec = cfg.inputs[split]
    source = f"{split}/{os.path.basename(spec.path)}"
    out, rej = examples_dir(cfg, split), rejects_dir(cfg, split)
    key = completion_key(cfg, split)
    state: dict = {}

    def plan_tasks() -> list[Task]:
        rules, chunks = plan(cfg, split, executor)
        state["rules"] = rules
        items: list[dict | None] = [c.as_item() for c in chunks] or [None]  # no rows: one task writes the empty file
        return [
            make_task(i, {"chunk": c}, c["max_rows"] if c and c["max_rows"] >= 0 else 0) for i, c in enumerate(items)
        ]

    def work(_todo: list[Task]) -> Work:
        storage.makedirs(rej)
        return Work(
            ingest_task, {"rules": state["rules"], "source": source, "examples": out, "rejects": rej}, Resources(cpus=1)
        )

    return Stage(
        f"ingest {split}",
        out,
        key or digest(["unreadable", split]),
        plan_tasks,
        work,
        summarize=lambda results: _summarize(split, source, spec.path, results),
        lines=lambda d: _lines(cfg, split, d),
        other_dirs=(rej,),
    )


def run_ingest(
    cfg: JobConfig, splits: list[str] | None = None, strict: bool | None = None, executor: str = "ray"
) -> dict[str, SplitSummary]:
    strict = cfg.ingest.strict if strict is None else strict
    results = {}
    for split in splits or list(cfg.inputs):
        summary = run_stage(ingest_stage(cfg, split, executor), executor)
        results[split] = SplitSummary.from_dict(summary, reused=bool(summary.get("reused")))
    bad = {k: v.rejected for k, v in results.items() if v.rejected}
    if strict and bad:
        raise IngestFailed(
            f"--strict: rows were rejected {bad}; see the files under {storage.join(cfg.output_dir, 'rejects')}"
        )
    return results
