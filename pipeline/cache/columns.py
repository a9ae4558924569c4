"""The columns of a cache's rows: native Arrow types only, readable by plain pyarrow, pandas, DuckDB, polars.

Per row, after the input corpus's own columns (example_id, texts, label, ...):

================  ======================================  ==========================================
column            Arrow type                              content
================  ======================================  ==========================================
row               int64                                   position of the row in the input corpus
num_tokens        int32                                   real tokens (special tokens included)
input_ids         list<int32>                             token ids, no padding
token_type_ids    list<int8>                              segment ids (only when the tokenizer has them)
logits            fixed_size_list<float32>[num_labels]    raw logits, no temperature
hidden_<L>        list<float16>                           hidden state L, num_tokens × hidden values,
                                                          row-major: token t is values[t*H:(t+1)*H]
attention_<L>     list<float16>                           attention probabilities of layer L,
                                                          heads × num_tokens × num_tokens, row-major
mlm_top_ids       list<int32>                             with mlm_top_k = k: num_tokens × k token ids,
                                                          the k highest masked-LM logits per token
mlm_top_logits    list<float32>                           their raw logits, num_tokens × k, descending
================  ======================================  ==========================================

``numpy.asarray(row["hidden_3"]).reshape(row["num_tokens"], hidden_size)`` gives one example's
states. With ``hidden_mantissa_bits`` below 10, float16 values are rounded to that many mantissa
bits (round half to even) before storing. The rows are built from a model's outputs by the teacher
stage (``pipeline/teacher/rows.py``).
"""

from __future__ import annotations

import pyarrow as pa

ROW_COLUMNS = ("row", "num_tokens", "input_ids", "token_type_ids", "logits")


def hidden_column(layer: int) -> str:
    return f"hidden_{layer}"


def attention_column(layer: int) -> str:
    return f"attention_{layer}"


MLM_IDS, MLM_LOGITS = "mlm_top_ids", "mlm_top_logits"


def output_schema(
    input_schema: pa.Schema, num_labels: int, layers, attentions, token_types: bool, mlm_top_k: int = 0
) -> pa.Schema:
    fields = [f for f in input_schema if f.name not in ROW_COLUMNS]
    fields += [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("num_tokens", pa.int32(), nullable=False),
        pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
    ]
    if token_types:
        fields.append(pa.field("token_type_ids", pa.list_(pa.int8()), nullable=False))
    fields.append(pa.field("logits", pa.list_(pa.float32(), num_labels), nullable=False))
    fields += [pa.field(hidden_column(layer), pa.list_(pa.float16()), nullable=False) for layer in layers]
    fields += [pa.field(attention_column(layer), pa.list_(pa.float16()), nullable=False) for layer in attentions]
    if mlm_top_k:
        fields += [
            pa.field(MLM_IDS, pa.list_(pa.int32()), nullable=False),
            pa.field(MLM_LOGITS, pa.list_(pa.float32()), nullable=False),
        ]
    return pa.schema(fields)


def float_columns(schema: pa.Schema) -> list[str]:
    """Parquet leaf paths of the float columns (for byte-stream-split)."""
    out = []
    for f in schema:
        t = f.type
        if (pa.types.is_list(t) or pa.types.is_fixed_size_list(t)) and pa.types.is_floating(t.value_type):
            out.append(f"{f.name}.list.element")
        elif pa.types.is_floating(t):
            out.append(f.name)
    return out
