"""Benchmark: bytes per row of what MiniLM needs, stored compactly against stored as maps.

MiniLM (v1) learns a teacher layer's self-attention distributions and value relation; v2 the
query, key and value self-relations over R relation heads. Stored as maps that is heads x n x n
values per relation and row. The cache stores instead the layer's input hidden state (n x hidden
values per row, the ``hidden_<L-1>`` column any hidden-state cache has) and the layer's query / key
/ value projections once per cache (``minilm-layer-<L>.safetensors``); every relation is
recomputed from them (:mod:`pipeline.student.minilm`).

On the first ``--rows`` Rotten Tomatoes train sentences (review length) with the bundled
all-MiniLM-L6-v2 teacher (6 layers, hidden 384, 12 heads; fp32, eager attention), for ``--layer``:

- each form is written as float16 list columns with the cache's Parquet options (zstd, plain
  float16), and its bytes per row printed, with the ratio to the compact form;
- the compact form at 7 mantissa bits (the cache default) and at 10 (exact float16);
- the relations recomputed from the stored compact form against the model's own fp32 ones: the
  largest absolute difference of an attention probability and the mean KL per query token.

    python -m benchmarks.minilm_bytes
    python -m benchmarks.minilm_bytes --rows 500 --layer 4 --relation-heads 48
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.cache.shards import parquet_options
from pipeline.student.minilm import log_relation, project, relation_kl
from pipeline.teacher.rows import round_mantissa
from pipeline.teacher.settings import bundled_model_path

ROOT = Path(__file__).resolve().parents[1]


def sentences(n: int) -> list[str]:
    with open(ROOT / "data" / "rt-polarity" / "train.tsv", encoding="utf-8") as fh:
        return [row["sentence"] for row in csv.DictReader(fh, delimiter="\t")][:n]


def parquet_bytes(columns: dict[str, list[np.ndarray]]) -> int:
    """Bytes of one Parquet file of float16 list columns (one list per row), the cache's options."""
    arrays = {}
    for name, rows in columns.items():
        offsets = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int32)
        values = pa.array(np.concatenate([r.reshape(-1) for r in rows]).astype(np.float16), pa.float16())
        arrays[name] = pa.ListArray.from_arrays(pa.array(offsets), values)
    table = pa.table(arrays)
    buf = io.BytesIO()
    paths = [f"{n}.list.element" for n in columns]
    pq.write_table(table, buf, row_group_size=4096, **parquet_options(table.schema, paths, "plain"))
    return buf.tell()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--layer", type=int, default=6, help="teacher layer (1-based) whose relations are stored")
    ap.add_argument("--relation-heads", type=int, default=12, help="v2 relation heads (the paper: 12 to 48)")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    from safetensors.torch import save
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(max(1, torch.get_num_threads()))
    path = bundled_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    heads = model.config.num_attention_heads
    attn = model.encoder.layer[args.layer - 1].attention.self
    weights = {k: v.detach().float().contiguous() for k, v in attn.state_dict().items()}
    weights_bytes = len(save(weights))
    texts = sentences(args.rows)
    compact: dict[int, list[np.ndarray]] = {7: [], 10: []}
    v1: dict[str, list[np.ndarray]] = {"attention": [], "value_relation": []}
    v2: dict[str, list[np.ndarray]] = {"query_relation": [], "key_relation": [], "value_relation": []}
    diff, kl_sum, kl_rows, tokens = 0.0, {7: 0.0, 10: 0.0}, 0, 0
    for start in range(0, len(texts), args.batch_size):
        enc = tok(
            texts[start : start + args.batch_size], padding=True, truncation=True, max_length=128, return_tensors="pt"
        )
        mask = enc["attention_mask"]
        with torch.inference_mode():
            out = model(**enc, output_hidden_states=True, output_attentions=True)
            h = out.hidden_states[args.layer - 1]
            q, k, v = project(h, weights)
            exact = log_relation(q, k, heads, mask)
            value = log_relation(v, v, heads, mask).exp()
            rel = {name: log_relation(x, x, args.relation_heads, mask).exp() for name, x in zip(v2, (q, k, v))}
            stored = {}
            for bits in compact:
                hb = torch.from_numpy(round_mantissa(h.numpy().astype(np.float16), bits).astype(np.float32))
                sq, sk, _ = project(hb, weights)
                stored[bits] = log_relation(sq, sk, heads, mask)
                n_real = mask.sum()
                kl_sum[bits] += float(relation_kl(exact, stored[bits], mask)) * float(n_real)
            kl_rows += int(mask.sum())
        lengths = mask.sum(1).tolist()
        probs = exact.exp()
        for r, n in enumerate(lengths):
            tokens += n
            for bits in compact:
                compact[bits].append(round_mantissa(h[r, :n].numpy().astype(np.float16), bits))
            v1["attention"].append(probs[r, :, :n, :n].numpy())
            v1["value_relation"].append(value[r, :, :n, :n].numpy())
            for name in v2:
                v2[name].append(rel[name][r, :, :n, :n].numpy())
            diff = max(
                diff, float((stored[7].exp()[r, :, :n, :n] - out.attentions[args.layer - 1][r, :, :n, :n]).abs().max())
            )
    n = len(texts)
    base = parquet_bytes({"hidden": compact[7]}) / n
    print(
        f"{n:,} Rotten Tomatoes train sentences, {tokens / n:.1f} tokens per row on average; MiniLM teacher layer {args.layer}"
    )
    print(
        f"projections file (once per cache): {weights_bytes:,} bytes = {weights_bytes / n:,.1f} bytes per row over these rows\n"
    )
    print("| stored form | bytes per row | vs compact (7 bits) |")
    print("| --- | --- | --- |")
    rows = [
        ("compact: hidden_{L-1}, 7 mantissa bits (cache default)", base),
        ("compact: hidden_{L-1}, 10 mantissa bits (exact float16)", parquet_bytes({"hidden": compact[10]}) / n),
        (f"v1 maps: attention + value relation, {heads} heads", parquet_bytes(v1) / n),
        (f"v2 maps: Q, K, V relations, {args.relation_heads} relation heads", parquet_bytes(v2) / n),
    ]
    for name, b in rows:
        print(f"| {name} | {b:,.0f} | {b / base:.2f}x |")
    print(
        f"\nrelations recomputed from the stored compact form against the model's fp32 maps: largest absolute "
        f"attention-probability difference {diff:.2e} (7 bits); mean KL per query token "
        f"{kl_sum[7] / kl_rows:.2e} (7 bits), {kl_sum[10] / kl_rows:.2e} (10 bits)"
    )


if __name__ == "__main__":
    main()
