"""Read a teacher cache: validate it against its manifest, then yield Arrow tables or torch batches.

    from pipeline.cache import open_cache

    cache = open_cache("out/demo/teacher/augmented/train/tinybert", layers=[0, 3, 6])
    for batch in cache.iter_torch_batches(batch_size=32, shuffle=True, seed=0):
        batch["logits"], batch["hidden_3"], batch["attention_mask"]  # [B, C], [B, T, H], [B, T]

Opening checks the manifest (format, version, teacher hash and layers when asked for) and every
shard (present, size, Parquet footer, row count, cache key, columns, SHA-256); any mismatch
raises :class:`CacheError` naming the shard and the reason. ``verify="footer"`` skips the
SHA-256 pass for a quick open of a large cache (Parquet page checksums are still verified on
read). Plain pyarrow / pandas / DuckDB read the shards directly too: see ``rows.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from .. import storage
from ..errors import PipelineError
from . import shards as sh
from .columns import MLM_IDS, MLM_LOGITS, attention_column, hidden_column
from .manifest import FORMAT, MANIFEST_NAME, VERSION

_REQUIRED = (
    "format",
    "version",
    "teacher",
    "tokenizer",
    "max_length",
    "labels",
    "layers",
    "attentions",
    "hidden_size",
    "cache_key",
    "rows",
    "shards",
)


class CacheError(PipelineError, RuntimeError):
    """A cache that cannot be used as asked; the message names the cache, the shard and the reason."""

    def __init__(self, cache: str, reason: str, shard: str | None = None):
        self.cache, self.shard, self.reason = cache, shard, reason
        super().__init__(f"{cache}: " + (f"shard {shard}: " if shard else "") + reason)


def open_cache(
    path: str,
    *,
    teacher_hash: str | None = None,
    layers: Sequence[int] | None = None,
    attentions: Sequence[int] | None = None,
    verify: str = "checksum",
) -> TeacherCache:
    """Open and validate a cache directory (local path or pyarrow.fs URI).

    ``teacher_hash``: the SHA-256 of the teacher's weights the cache must come from (a prefix of
    at least 8 hex digits is enough). ``layers`` / ``attentions``: layers that must be stored.
    ``verify``: "checksum" (default: SHA-256 of every shard) or "footer".
    """
    if verify not in ("checksum", "footer"):
        raise ValueError(f"verify must be 'checksum' or 'footer', got {verify!r}")
    cache = TeacherCache(path)
    cache.validate(teacher_hash=teacher_hash, layers=layers, attentions=attentions, checksums=verify == "checksum")
    return cache


class TeacherCache:
    def __init__(self, path: str):
        self.path = path.rstrip("/")
        mpath = storage.join(self.path, MANIFEST_NAME)
        if not storage.exists(mpath):
            raise CacheError(self.path, f"no {MANIFEST_NAME}: not a cache, or its run has not finished")
        try:
            manifest = storage.read_json(mpath)
        except (ValueError, OSError) as exc:
            raise CacheError(self.path, f"{MANIFEST_NAME} is unreadable: {exc}") from None
        missing = [k for k in _REQUIRED if not isinstance(manifest, dict) or k not in manifest]
        if missing or not isinstance(manifest, dict):  # (not a dict: every required key is missing)
            raise CacheError(self.path, f"{MANIFEST_NAME} lacks {missing}")
        self.manifest: dict[str, Any] = manifest
        m = self.manifest
        if m["format"] != FORMAT or m["version"] != VERSION:
            raise CacheError(
                self.path,
                f"format {m['format']!r} version {m['version']!r}; this reader reads {FORMAT!r} version {VERSION}",
            )

    # what the manifest says ----------------------------------------------------------------
    @property
    def layers(self) -> list[int]:
        return list(self.manifest["layers"])

    @property
    def attentions(self) -> list[int]:
        return list(self.manifest["attentions"])

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def mlm_top_k(self) -> int:
        """k of the stored masked-LM top-k logits (0 = none stored)."""
        return int(self.manifest.get("mlm_top_k") or 0)

    @property
    def num_rows(self) -> int:
        return int(self.manifest["rows"])

    @property
    def minilm_layers(self) -> list[int]:
        """Layers whose MiniLM projections are stored (teacher.minilm_layers)."""
        return sorted(int(k) for k in self.manifest.get("minilm") or {})

    def minilm_weights(self, layer: int) -> dict:
        """Layer ``layer``'s query / key / value projections (tensors; SHA-256 checked)."""
        from .minilm import MiniLMFileError, read_layer

        entry = (self.manifest.get("minilm") or {}).get(str(layer))
        if entry is None:
            raise CacheError(
                self.path,
                f"no MiniLM projections of layer {layer} (teacher.minilm_layers); it has {self.minilm_layers}",
            )
        try:
            return read_layer(self.path, entry)
        except (MiniLMFileError, OSError) as exc:
            raise CacheError(self.path, str(exc)) from None

    @property
    def hidden_size(self) -> int:
        return int(self.manifest["hidden_size"])

    @property
    def num_heads(self) -> int:
        return int(self.manifest.get("num_attention_heads") or 0)

    @property
    def teacher_hash(self) -> str:
        return self.manifest["teacher"].get("weights_sha256", "")

    @property
    def files(self) -> list[str]:
        return [storage.join(self.path, s["file"]) for s in self.manifest["shards"]]

    @property
    def schema(self) -> pa.Schema:
        """The shards' schema (from the first shard's footer; every shard has the same schema)."""
        if not self.files:
            return pa.schema([])
        filesystem, p = storage.resolve(self.files[0])
        with filesystem.open_input_file(p) as f:
            return pq.read_schema(f)

    @property
    def column_names(self) -> list[str]:
        return self.schema.names

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return (
            f"TeacherCache({self.path!r}, rows={self.num_rows}, shards={len(self.manifest['shards'])}, "
            f"layers={self.layers}, teacher={self.teacher_hash[:12]})"
        )

    # validation ------------------------------------------------------------------------------
    def validate(
        self,
        *,
        teacher_hash: str | None = None,
        layers: Sequence[int] | None = None,
        attentions: Sequence[int] | None = None,
        checksums: bool = True,
    ) -> None:
        m = self.manifest
        if teacher_hash is not None:
            stored_hash = self.teacher_hash
            if len(teacher_hash) < 8 or not stored_hash.startswith(teacher_hash.lower()):
                raise CacheError(
                    self.path,
                    f"made by teacher {m['teacher'].get('model')!r} with weights hash "
                    f"{stored_hash[:16]}…, not the expected {teacher_hash[:16]}…",
                )
        for asked, stored, what in (
            (layers, self.layers, "hidden layer"),
            (attentions, self.attentions, "attention layer"),
        ):
            absent = [x for x in (asked or []) if x not in stored]
            if absent:
                raise CacheError(self.path, f"{what}(s) {absent} not stored (stored: {stored})")
        expected = self._expected_columns()
        first = 0
        for s in m["shards"]:
            name = s["file"]
            path = storage.join(self.path, name)
            if s.get("first_row", first) != first:
                raise CacheError(self.path, f"starts at row {s.get('first_row')}, expected {first}", name)
            first += s["rows"]
            filesystem, p = storage.resolve(path)
            info = filesystem.get_file_info(p)
            if info.type != pafs.FileType.File:
                raise CacheError(self.path, "file is missing", name)
            if "bytes" in s and info.size != s["bytes"]:
                raise CacheError(
                    self.path,
                    f"file has {info.size} bytes, the manifest says {s['bytes']}: truncated or replaced",
                    name,
                )
            meta, problem = sh.inspect_shard(path, s["rows"], m["cache_key"], s.get("first_row"))
            if problem:
                raise CacheError(self.path, problem, name)
            assert meta is not None  # inspect_shard gives the footer when it finds no problem
            schema = meta.schema.to_arrow_schema()
            for col, typ in expected.items():
                if col not in schema.names:
                    raise CacheError(self.path, f"column {col} is missing", name)
                if not schema.field(col).type.equals(typ):
                    raise CacheError(self.path, f"column {col} is {schema.field(col).type}, expected {typ}", name)
            if checksums:
                digest = storage.file_sha256(path)
                if digest != s["sha256"]:
                    raise CacheError(
                        self.path,
                        f"SHA-256 {digest[:16]}… does not match the manifest's "
                        f"{s['sha256'][:16]}…: the file is corrupt or was changed",
                        name,
                    )
        if first != m["rows"]:
            raise CacheError(self.path, f"shards hold {first} rows, the manifest says {m['rows']}")

    def _expected_columns(self) -> dict[str, pa.DataType]:
        cols = {
            "row": pa.int64(),
            "num_tokens": pa.int32(),
            "input_ids": pa.list_(pa.int32()),
            "logits": pa.list_(pa.float32(), len(self.labels)),
        }
        cols.update({hidden_column(l): pa.list_(pa.float16()) for l in self.layers})
        cols.update({attention_column(l): pa.list_(pa.float16()) for l in self.attentions})
        if self.mlm_top_k:
            cols.update({MLM_IDS: pa.list_(pa.int32()), MLM_LOGITS: pa.list_(pa.float32())})
        return cols

    # reading ---------------------------------------------------------------------------------
    def _parquet(self, name: str):
        filesystem, p = storage.resolve(storage.join(self.path, name))
        return pq.ParquetFile(filesystem.open_input_file(p), page_checksum_verification=True)

    def iter_tables(
        self, columns: Sequence[str] | None = None, shards: Sequence[int] | None = None
    ) -> Iterator[pa.Table]:
        """One Arrow table per row group, in row order (optionally only some shards)."""
        entries = self.manifest["shards"]
        for i in range(len(entries)) if shards is None else shards:
            name = entries[i]["file"]
            try:
                pf = self._parquet(name)
                for g in range(pf.metadata.num_row_groups):
                    yield pf.read_row_group(g, columns=list(columns) if columns else None)
            except CacheError:
                raise
            except Exception as exc:
                raise CacheError(self.path, f"unreadable ({type(exc).__name__}: {exc})", name) from None

    def read_table(self, columns: Sequence[str] | None = None) -> pa.Table:
        tables = list(self.iter_tables(columns))
        return pa.concat_tables(tables) if tables else pa.table({})

    def iter_torch_batches(
        self,
        batch_size: int = 32,
        columns: Sequence[str] | None = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        hidden_dtype=None,
    ) -> Iterator[dict]:
        """Padded torch tensors, ``batch_size`` rows at a time (see :func:`to_torch`).

        ``shuffle`` shuffles the order of row groups and the rows inside each (seeded) — a
        row-group-local shuffle that keeps reads sequential.
        """
        rng = np.random.default_rng(seed)
        units = [(i, g) for i, s in enumerate(self.manifest["shards"]) for g in range(self._row_groups(s["file"]))]
        if shuffle:
            units = [units[k] for k in rng.permutation(len(units))]
        pending: list[pa.Table] = []
        pending_rows = 0
        for i, g in units:
            name = self.manifest["shards"][i]["file"]
            try:
                table = self._parquet(name).read_row_group(g, columns=_with_required(columns))
            except Exception as exc:
                raise CacheError(self.path, f"unreadable ({type(exc).__name__}: {exc})", name) from None
            if shuffle:
                table = table.take(pa.array(rng.permutation(table.num_rows)))
            pending.append(table)
            pending_rows += table.num_rows
            while pending_rows >= batch_size:
                merged = pa.concat_tables(pending)
                yield self.to_torch(merged.slice(0, batch_size), hidden_dtype)
                rest = merged.slice(batch_size)
                pending, pending_rows = [rest], rest.num_rows
        if pending_rows and not drop_last:
            yield self.to_torch(pa.concat_tables(pending), hidden_dtype)

    def _row_groups(self, name: str) -> int:
        return self._parquet(name).metadata.num_row_groups

    def to_torch(self, table: pa.Table, hidden_dtype=None) -> dict:
        from .torch_dataset import to_torch  # torch is imported when tensors are asked for, not to read

        return to_torch(table, self.hidden_size, self.num_heads, hidden_dtype)


def _with_required(columns):
    if columns is None:
        return None
    return list(dict.fromkeys(["num_tokens", *columns]))
