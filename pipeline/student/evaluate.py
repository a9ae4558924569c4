"""Evaluation of students and teachers on an ingested split: predictions, sentences/s (the metrics
themselves are in :mod:`pipeline.metrics`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class EvalSet:
    """An ingested split held in memory (dev / test splits are small)."""

    text_a: list[str]
    text_b: list[str | None]
    labels: np.ndarray  # label ids int64, -100 where unknown; regression: scores float64, NaN where unknown

    @property
    def pair(self) -> bool:
        return any(t is not None for t in self.text_b)

    def __len__(self) -> int:
        return len(self.text_a)


def read_split(path: str, regression: bool = False) -> EvalSet:
    """``examples/<split>`` Parquet (written by the ingest stage) → texts and label ids (scores)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from .. import storage

    filesystem, p = storage.resolve(path)
    target = "score" if regression else "label_id"
    table = ds.dataset(p, filesystem=filesystem, format="parquet").to_table(columns=["text_a", "text_b", target])
    if regression:
        labels = pc.fill_null(table.column(target), np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
    else:
        labels = pc.fill_null(table.column(target), -100).to_numpy(zero_copy_only=False).astype(np.int64)
    return EvalSet(table.column("text_a").to_pylist(), table.column("text_b").to_pylist(), labels)


@torch.inference_mode()
def predict_bilstm(model, vocab, data: EvalSet, max_words: int, device, batch_size: int = 256) -> np.ndarray:
    from .bilstm import _pad

    model.eval()
    enc_a = [vocab.encode(t, max_words) for t in data.text_a]
    enc_b = [vocab.encode(t, max_words) for t in data.text_b] if model.pair else None
    order = np.argsort([len(e) for e in enc_a], kind="stable")
    out = np.zeros((len(data), model.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids_a, len_a = _pad([enc_a[i] for i in idx])
        args = [ids_a.to(device), len_a]
        if enc_b is not None:
            ids_b, len_b = _pad([enc_b[i] for i in idx])
            args += [ids_b.to(device), len_b]
        out[idx] = model(*args).float().cpu().numpy()
    return out


@torch.inference_mode()
def predict_transformer(
    model, tokenizer, data: EvalSet, device, max_length: int = 128, batch_size: int = 128
) -> np.ndarray:
    model.eval()
    pair = data.pair
    lengths = [len(a) + len(b or "") for a, b in zip(data.text_a, data.text_b)]
    order = np.argsort(lengths, kind="stable")
    out = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        a = [data.text_a[i] for i in idx]
        b = [data.text_b[i] or "" for i in idx] if pair else None
        enc = tokenizer(a, b, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu().numpy()
        if out is None:
            out = np.zeros((len(data), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def timed(fn, data: EvalSet):
    """(logits, sentences per second) of one pass of ``fn`` over ``data``."""
    started = time.perf_counter()
    logits = fn(data)
    return logits, len(data) / max(time.perf_counter() - started, 1e-9)
