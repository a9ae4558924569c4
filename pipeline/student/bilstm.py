"""Tang et al.'s BiLSTM student: embeddings → one bidirectional LSTM layer → ReLU MLP → logits
(pairs: Tang et al.'s [a, b, |a-b|, a*b], or a siamese cosine head)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .words import Vocab


class BiLstmClassifier(nn.Module):
    """Single texts: encoder → head. Pairs (``pair``): one shared encoder, then Tang et al.'s
    [a, b, |a-b|, a*b] → head; or ``siamese``: each text's encoding through one shared tanh layer,
    their cosine similarity, and a per-label scale and bias of it (the student of a similarity
    teacher: a sentence encoder whose vectors can be compared alone, as in distilling a
    sentence-pair teacher into a siamese network)."""

    def __init__(
        self,
        embeddings: np.ndarray,
        hidden: int,
        mlp: int,
        num_labels: int,
        dropout: float = 0.1,
        pair: bool = False,
        siamese: bool = False,
    ):
        super().__init__()
        vocab, dim = embeddings.shape
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.embed.weight.data.copy_(torch.from_numpy(embeddings))
        self.lstm = nn.LSTM(dim, hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.pair, self.siamese, self.num_labels = pair, pair and siamese, num_labels
        if self.siamese:
            # tanh, not ReLU: vectors of opposite sign let unlike texts reach a negative cosine
            self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, mlp), nn.Tanh())
            self.head: nn.Module = nn.Linear(1, num_labels)  # logits = w_k * cos + b_k
            nn.init.uniform_(self.head.weight, -5.0, 5.0)  # a cosine spans [-1, 1]: room for confident logits
            return
        features = 2 * hidden * (4 if pair else 1)  # pairs: [a, b, |a-b|, a*b] as in Tang et al.
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(features, mlp), nn.ReLU(), nn.Dropout(dropout), nn.Linear(mlp, num_labels)
        )

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, T] word ids, [B] lengths (≥ 1) → [B, 2·hidden]: the last states of both directions."""
        packed = pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return torch.cat([h[0], h[1]], dim=-1)

    def forward(self, ids_a, len_a, ids_b=None, len_b=None) -> torch.Tensor:
        a = self.encode(ids_a, len_a)
        if not self.pair:
            return self.head(a)
        b = self.encode(ids_b, len_b)
        if self.siamese:
            cos = F.cosine_similarity(self.project(a), self.project(b), dim=-1, eps=1e-8)
            return self.head(cos.unsqueeze(-1))
        return self.head(torch.cat([a, b, (a - b).abs(), a * b], dim=-1))


def _pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = [max(len(s), 1) for s in seqs]  # an empty text is one <pad> step, never a zero length
    out = np.zeros((len(seqs), max(lens) if seqs else 1), dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.from_numpy(out), torch.tensor(lens, dtype=torch.int64)


def collate_words(table: pa.Table, vocab: Vocab, max_words: int, pair: bool) -> dict:
    """Arrow rows (text_a, text_b, optional logits / label_id / score) → BiLSTM inputs and targets
    (``labels``: label ids, -100 unknown; or scores, NaN unknown)."""
    batch: dict = {}
    batch["ids_a"], batch["len_a"] = _pad([vocab.encode(t, max_words) for t in table.column("text_a").to_pylist()])
    if pair:
        batch["ids_b"], batch["len_b"] = _pad([vocab.encode(t, max_words) for t in table.column("text_b").to_pylist()])
    _targets(table, batch)
    return batch


def _targets(table: pa.Table, batch: dict) -> None:
    if "logits" in table.column_names:
        flat = table.column("logits").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        batch["logits"] = torch.from_numpy(flat.reshape(table.num_rows, -1).astype(np.float32))
    if "label_id" in table.column_names:
        labels = pc.fill_null(table.column("label_id"), -100).to_numpy(zero_copy_only=False)
        batch["labels"] = torch.from_numpy(labels.astype(np.int64))
    elif "score" in table.column_names:
        scores = pc.fill_null(table.column("score"), np.nan).to_numpy(zero_copy_only=False)
        batch["labels"] = torch.from_numpy(scores.astype(np.float32))
