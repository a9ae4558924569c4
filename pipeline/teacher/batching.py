"""Tokenize, then cut length-sorted rows into batches by a token budget (pure, no Ray, no model).

Padded lengths are rounded up to a few shapes so a GPU sees a small set of tensor shapes:
multiples of 8 up to 64 tokens, of 32 up to 256, of 64 above (never past ``max_length``). A
batch holds rows of one shape, as many as fit ``rows × shape ≤ token_budget``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Encoded:
    """Token ids of rows, unpadded; ``token_type_ids`` is None when the tokenizer has none."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    lengths: np.ndarray  # int64, real tokens per row

    def __len__(self) -> int:
        return len(self.input_ids)

    def slice(self, start: int, stop: int) -> Encoded:
        tt = None if self.token_type_ids is None else self.token_type_ids[start:stop]
        return Encoded(self.input_ids[start:stop], tt, self.lengths[start:stop])


def tokenize(tokenizer, texts_a: Sequence[str], texts_b: Sequence[str | None] | None, max_length: int) -> Encoded:
    """Fast-tokenizer ids of single texts or pairs (rows with a null second text are single)."""
    n = len(texts_a)
    types = "token_type_ids" in getattr(tokenizer, "model_input_names", ["token_type_ids"])
    ids: list = [None] * n
    tts: list = [None] * n
    groups: list[tuple[list[int], list[str | None] | None]]
    if texts_b is None:
        groups = [(list(range(n)), None)]
    else:
        singles = [i for i in range(n) if texts_b[i] is None]
        pairs = [i for i in range(n) if texts_b[i] is not None]
        groups = [(singles, None), (pairs, [texts_b[i] for i in pairs])]
    for rows, second in groups:
        if not rows:
            continue
        first = [texts_a[i] for i in rows]
        enc = tokenizer(
            first,
            second,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=types,
        )
        for k, i in enumerate(rows):
            ids[i] = np.asarray(enc["input_ids"][k], dtype=np.int32)
            if types:
                tts[i] = np.asarray(enc["token_type_ids"][k], dtype=np.int8)
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
    return Encoded(ids, tts if types else None, lengths)


def padded_length(length: int, max_length: int) -> int:
    """The shape a row of ``length`` tokens is padded to."""
    step = 8 if length <= 64 else 32 if length <= 256 else 64
    return int(min(max(step, -(-length // step) * step), max(max_length, length)))


def plan_batches(lengths: np.ndarray, token_budget: int, max_length: int) -> list[tuple[np.ndarray, int]]:
    """Row indices of each batch (ascending length) and the length the batch is padded to.

    Rows are sorted by length and grouped by padded shape, so a row is never padded past its own
    shape; each group is cut into batches of at most ``token_budget`` padded tokens.
    """
    order = np.argsort(lengths, kind="stable")
    shapes = np.array([padded_length(int(n), max_length) for n in lengths[order]], dtype=np.int64)
    batches = []
    for shape in np.unique(shapes):
        rows = order[shapes == shape]
        per_batch = max(1, token_budget // int(shape))
        batches += [(rows[i : i + per_batch], int(shape)) for i in range(0, len(rows), per_batch)]
    return batches


def collate(enc: Encoded, rows: np.ndarray, length: int, pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded tensors of the given rows: input_ids, attention_mask (and token_type_ids)."""
    lens = enc.lengths[rows]
    mask = np.arange(length)[None, :] < lens[:, None]
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    ids[mask] = np.concatenate([enc.input_ids[i] for i in rows])
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask.astype(np.int64))}
    if enc.token_type_ids is not None:
        tt = np.zeros((len(rows), length), dtype=np.int64)
        tt[mask] = np.concatenate([enc.token_type_ids[i] for i in rows])
        batch["token_type_ids"] = torch.from_numpy(tt)
    return batch
