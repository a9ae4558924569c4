"""Cache rows from a model's outputs: the teacher stage's side of the cache's columns.

The columns themselves (names, Arrow types, the schema) are the cache format's:
:mod:`pipeline.cache.columns`. Their names are still importable from here for one release, with a
DeprecationWarning.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..cache import columns as _columns

if TYPE_CHECKING:  # torch stays unimported for readers of the cache
    from .batching import Encoded
    from .model import InferenceOutput

# moved to pipeline.cache.columns; referenced through _columns here so that the old import path warns
_MOVED = ("ROW_COLUMNS", "hidden_column", "attention_column", "MLM_IDS", "MLM_LOGITS", "output_schema", "float_columns")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"pipeline.teacher.rows.{name} is deprecated: import it from pipeline.cache.columns "
            "(the old path is removed in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_columns, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def round_mantissa(values: np.ndarray, bits: int, all_finite: bool = False) -> np.ndarray:
    """float16 values rounded (half to even) to ``bits`` of the 10 mantissa bits; inf/nan kept.

    ``all_finite``: the caller knows there is no inf/nan (one pass fewer). Works in 16-bit
    integers: a finite value plus the rounding bias never passes 0xFFFF, and non-finite values
    (whose sums may wrap) are put back as they were.
    """
    if bits >= 10:
        return values
    drop = 10 - bits
    u = values.view(np.uint16)
    rounded = (u >> drop) & 1
    rounded += (1 << (drop - 1)) - 1
    rounded += u
    rounded >>= drop
    rounded <<= drop
    # a carry into the exponent is the correct rounding; past the largest finite value it is inf
    if not all_finite:
        nonfinite = (u & 0x7C00) == 0x7C00
        if nonfinite.any():
            rounded[nonfinite] = u[nonfinite]
    return rounded.view(np.float16)


def _list_array(offsets: np.ndarray, values: np.ndarray, value_type: pa.DataType) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32), pa.int32()), pa.array(values, value_type))


def build_table(
    meta: pa.Table,
    first_row: int,
    enc: Encoded,
    out: InferenceOutput,
    schema: pa.Schema,
    mantissa_bits: int = 10,
    all_finite: bool = False,
) -> pa.Table:
    """One table of cache rows: ``meta`` holds the input columns of the same rows in the same order;
    ``all_finite``: no hidden or attention value is inf/nan (see :func:`round_mantissa`)."""
    n = meta.num_rows
    lengths = enc.lengths
    tok_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=tok_offsets[1:])
    cols: dict[str, pa.Array] = {}
    for name in meta.column_names:
        if name in schema.names:
            cols[name] = meta.column(name)
    cols["row"] = pa.array(np.arange(first_row, first_row + n, dtype=np.int64))
    cols["num_tokens"] = pa.array(lengths.astype(np.int32))
    flat_ids = np.concatenate(enc.input_ids) if n else np.zeros(0, np.int32)
    cols["input_ids"] = _list_array(tok_offsets, flat_ids, pa.int32())
    if "token_type_ids" in schema.names:
        if n:
            if enc.token_type_ids is None:
                raise ValueError("the cache schema has token_type_ids but the encoded rows have none")
            flat_tt = np.concatenate(enc.token_type_ids)
        else:
            flat_tt = np.zeros(0, np.int8)
        cols["token_type_ids"] = _list_array(tok_offsets, flat_tt, pa.int8())
    num_labels = out.logits.shape[1]
    cols["logits"] = pa.FixedSizeListArray.from_arrays(pa.array(out.logits.reshape(-1), pa.float32()), num_labels)
    for layer, states in out.hidden.items():
        width = states.shape[1]
        cols[_columns.hidden_column(layer)] = _list_array(
            tok_offsets * width, round_mantissa(states.reshape(-1), mantissa_bits, all_finite), pa.float16()
        )
    for layer, maps in out.attentions.items():
        sizes = np.fromiter((m.size for m in maps), dtype=np.int64, count=n)
        offs = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sizes, out=offs[1:])
        flat = np.concatenate([m.reshape(-1) for m in maps]) if n else np.zeros(0, np.float16)
        cols[_columns.attention_column(layer)] = _list_array(
            offs, round_mantissa(flat, mantissa_bits, all_finite), pa.float16()
        )
    if out.mlm_ids is not None:
        assert out.mlm_logits is not None  # set together with mlm_ids
        k = out.mlm_ids.shape[1]
        cols[_columns.MLM_IDS] = _list_array(tok_offsets * k, out.mlm_ids.reshape(-1), pa.int32())
        cols[_columns.MLM_LOGITS] = _list_array(tok_offsets * k, out.mlm_logits.reshape(-1), pa.float32())
    return pa.table([cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in schema], schema=schema)


def row_bytes(
    lengths: np.ndarray,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_attn: int,
    num_labels: int,
    text_bytes: np.ndarray | None = None,
) -> np.ndarray:
    """In-memory bytes of each cache row, known from token counts before inference."""
    lengths = lengths.astype(np.int64)
    b = 8 + 4 + 4 * num_labels + lengths * (4 + 1) + lengths * hidden_size * 2 * num_layers
    b = b + num_heads * lengths * lengths * 2 * num_attn + 4 * (3 + num_layers + num_attn)
    return b + (text_bytes if text_bytes is not None else 0)
