"""The ingest stage: validate every input row on Ray Data, write examples and rejects.

Rows in = rows kept + rows rejected, per split, checked before the stage reports success.
A split's output is finished when ``examples/<split>/_complete.json`` is written (last); a re-run
with the same input file and settings skips it (``completion.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from .. import completion, storage
from ..config import JobConfig
from ..progress import Progress, print_summary
from . import readers
from .validate import FIX_BOM, FIX_CRLF, FIX_TRUNCATED, Rejected, Rules, header_fields, validate_line, validate_record

EXAMPLE_SCHEMA = pa.schema([
    ("example_id", pa.string()),
    ("source", pa.string()),
    ("line", pa.int64()),
    ("text_a", pa.string()),
    ("text_b", pa.string()),
    ("label", pa.string()),
    ("label_id", pa.int32()),
])
# What a validation task returns: examples and rejects in one ordered table.
_TASK_SCHEMA = pa.schema([*EXAMPLE_SCHEMA, ("fixes", pa.string()), ("reason", pa.string()),
                          ("detail", pa.string()), ("raw", pa.string())])


class IngestFailed(RuntimeError):
    pass


def validate_chunk(chunk: readers.Chunk, rules: Rules, source: str) -> pa.Table:
    """Pure: one chunk of one file → a table of example rows and reject rows (reason set)."""
    out: list[dict] = []
    if chunk.fmt == "parquet":
        columns = [c for c in (rules.text_a, rules.text_b, rules.label) if c]
        table = readers.read_parquet_chunk(chunk, columns)
        for i, record in enumerate(table.to_pylist()):
            row, rej = validate_record(record, chunk.first_line + i, source, rules)
            out.append(row if row is not None else rej)
    else:
        for line_no, raw in readers.iter_chunk_lines(chunk):
            row, rej = validate_line(raw, line_no, source, rules)
            out.append(row if row is not None else rej)
    return pa.Table.from_pylist(out, schema=_TASK_SCHEMA)


def _validate_chunks(batch: pa.Table, rules: Rules, source: str) -> pa.Table:
    """Ray Data task: a batch of chunk descriptions → validated rows."""
    tables = [validate_chunk(readers.Chunk(**item), rules, source) for item in batch.to_pylist()]
    return pa.concat_tables(tables) if tables else _TASK_SCHEMA.empty_table()


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

    def add(self, table: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Count one task output; returns (kept rows, reject rows)."""
        is_reject = pc.is_valid(table.column("reason"))
        kept = table.filter(pc.invert(is_reject))
        rejects = table.filter(is_reject)
        self.rows_in += table.num_rows
        self.kept += kept.num_rows
        for reason in rejects.column("reason").to_pylist():
            self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
        for fixes in kept.column("fixes").drop_null().to_pylist():
            for fix in fixes.split(","):
                self.fixes[fix] += 1
        return kept, rejects

    def as_dict(self) -> dict:
        return {"split": self.split, "source": self.source, "path": self.path, "rows_in": self.rows_in,
                "kept": self.kept, "rejected": self.rejected,
                "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())), "fixes": self.fixes,
                "shards": self.shards, "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, d: dict, reused: bool = False) -> "SplitSummary":
        return cls(d["split"], d["source"], d["path"], d["rows_in"], d["kept"], dict(d["rejected_by_reason"]),
                   dict(d["fixes"]), list(d["shards"]), d["seconds"], reused)


def _rules(cfg: JobConfig, split: str) -> Rules:
    spec = cfg.inputs[split]
    fmt = spec.resolved_format
    base = Rules(fmt=fmt, text_a=spec.columns.text_a, text_b=spec.columns.text_b, label=spec.columns.label,
                 labels=tuple(cfg.labels) if cfg.labels else None, max_chars=cfg.ingest.max_chars,
                 too_long=cfg.ingest.too_long, crlf=cfg.ingest.crlf, bom=cfg.ingest.bom)
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
        raise readers.InputError(f"{spec.path}:1: column(s) {missing} not in the header {names} "
                                 f"(inputs.{split}.columns)")
    if len(set(names)) != len(names):
        raise readers.InputError(f"{spec.path}:1: duplicate column names in the header {names}")
    return dataclasses.replace(base, header=tuple(names))


def plan(cfg: JobConfig, split: str) -> tuple[Rules, list[readers.Chunk]]:
    spec = cfg.inputs[split]
    rules = _rules(cfg, split)
    if rules.fmt == "parquet":
        cols = [c for c in (spec.columns.text_a, spec.columns.text_b, spec.columns.label) if c]
        return rules, readers.plan_parquet_chunks(spec.path, cols, spec.limit)
    has_header = spec.header and rules.fmt in ("tsv", "csv")
    return rules, readers.plan_text_chunks(spec.path, rules.fmt, cfg.ingest.chunk_bytes, has_header, spec.limit)


def examples_dir(cfg: JobConfig, split: str) -> str:
    return storage.join(cfg.output_dir, "examples", split)


def rejects_path(cfg: JobConfig, split: str) -> str:
    return storage.join(cfg.output_dir, "rejects", f"{split}.jsonl")


def completion_key(cfg: JobConfig, split: str) -> tuple[str, str] | None:
    """(settings hash, input fingerprint) of a split's output: what a finished output must match.
    None when the input cannot be read (the stage then reports why)."""
    settings = {"stage": "ingest", "split": split, "input": cfg.inputs[split].model_dump(mode="json"),
                "ingest": cfg.ingest.model_dump(mode="json", exclude={"strict"}), "labels": cfg.labels}
    try:
        fingerprint = completion.fingerprint_file(cfg.inputs[split].path)
    except OSError:
        return None
    return completion.digest(settings), completion.digest(fingerprint)


def ingest_split(cfg: JobConfig, split: str) -> SplitSummary:
    import ray.data

    spec = cfg.inputs[split]
    out_dir = examples_dir(cfg, split)
    key = completion_key(cfg, split)
    if key is not None and completion.finished(out_dir, *key):
        return SplitSummary.from_dict(storage.read_json(storage.join(out_dir, "_summary.json")), reused=True)
    completion.start(out_dir)
    source = f"{split}/{os.path.basename(spec.path)}"
    rules, chunks = plan(cfg, split)
    summary = SplitSummary(split, source, spec.path)
    writer = storage.ShardWriter(out_dir, EXAMPLE_SCHEMA, cfg.ingest.shard_rows)
    progress = Progress(f"ingest {split}")
    storage.makedirs(storage.join(cfg.output_dir, "rejects"))
    with storage.atomic_output(rejects_path(cfg, split)) as rejects_out:
        if chunks:
            ds = ray.data.from_items([c.as_item() for c in chunks], override_num_blocks=len(chunks))
            ds = ds.map_batches(_validate_chunks, fn_kwargs={"rules": rules, "source": source}, batch_size=1,
                                batch_format="pyarrow")
            for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                kept, rejects = summary.add(table)
                writer.write(kept)
                for rec in rejects.select(["source", "line", "reason", "detail", "raw"]).to_pylist():
                    rejects_out.write((json.dumps(rec, ensure_ascii=False) + "\n").encode())
                progress.add(table.num_rows)
        summary.shards = writer.close()
    summary.seconds = progress.done()
    if summary.rows_in != summary.kept + summary.rejected:  # a broken invariant, never a user error
        raise IngestFailed(f"{split}: rows in {summary.rows_in} != kept {summary.kept} + rejected {summary.rejected}")
    storage.write_json(storage.join(out_dir, "_summary.json"), summary.as_dict())
    if key is not None:
        files = [storage.join(out_dir, s["file"]) for s in summary.shards]
        completion.mark_finished(out_dir, *key, files + [rejects_path(cfg, split), storage.join(out_dir, "_summary.json")])
    return summary


def run_ingest(cfg: JobConfig, splits: list[str] | None = None, strict: bool | None = None) -> dict[str, SplitSummary]:
    strict = cfg.ingest.strict if strict is None else strict
    results = {}
    for split in splits or list(cfg.inputs):
        s = ingest_split(cfg, split)
        results[split] = s
        rows = [("input", s.path), ("rows in", s.rows_in), ("kept", s.kept), ("rejected", s.rejected)]
        rows += [(f"  {reason}", n) for reason, n in sorted(s.rejected_by_reason.items())]
        rows += [(f"repaired: {fix}", n) for fix, n in s.fixes.items() if n]
        rows += [("check", f"{s.rows_in:,} in = {s.kept:,} kept + {s.rejected:,} rejected"),
                 ("examples", examples_dir(cfg, split)),
                 ("rejects", rejects_path(cfg, split)),
                 ("seconds", s.seconds)]
        if s.reused:
            rows.append(("up to date", "finished by an earlier run with the same input and settings; not redone"))
        print_summary(f"ingest {split}", rows)
    bad = {k: v.rejected for k, v in results.items() if v.rejected}
    if strict and bad:
        raise IngestFailed(f"--strict: rows were rejected {bad}; see the files under {storage.join(cfg.output_dir, 'rejects')}")
    return results
