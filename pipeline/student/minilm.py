"""MiniLM's self-attention distillation (Wang et al. 2020, v1; 2021, v2): plain functions of tensors.

The teacher side comes from the cache in its compact form: the input hidden state of the chosen
teacher layer (``hidden_<L-1>``) and that layer's query / key / value projections, stored once
per cache (``pipeline.cache.minilm``); :func:`project` recomputes Q, K and V from them, so no
per-row n x n map is stored. The student side is the last student layer's own projections of its
input hidden state (:func:`student_qkv`), trained through.

- v1: KL(teacher || student) of the self-attention distributions softmax(Q_h K_h^T / sqrt(d_h)) and
  of the value relations softmax(V_h V_h^T / sqrt(d_h)), per attention head (the student needs the
  teacher's head count).
- v2: KL of the query-query, key-key and value-value relations over ``relation_heads`` relation
  heads: the concatenated Q (K, V) of all heads is split into R equal parts, whatever the model's
  own head count, so the student's head count and width may differ from the teacher's.

Padding never counts: padded keys get probability 0, padded queries are left out of the mean.
"""

from __future__ import annotations

import math

import torch

V1_PARTS = ("attention", "value")
V2_PARTS = ("query", "key", "value")
WEIGHT_NAMES = ("query.weight", "query.bias", "key.weight", "key.bias", "value.weight", "value.bias")


def project(hidden: torch.Tensor, weights: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """A layer's input hidden state [B, T, H] → its Q, K, V [B, T, H] (``nn.Linear`` weights)."""
    h = hidden.float()
    return tuple(
        torch.nn.functional.linear(h, weights[f"{p}.weight"].float(), weights[f"{p}.bias"].float())
        for p in ("query", "key", "value")
    )


def student_qkv(model, hidden_states: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The student's last layer: its query / key / value projections of that layer's input."""
    attention = model.base_model.encoder.layer[-1].attention.self
    h = hidden_states[-2]
    return attention.query(h), attention.key(h), attention.value(h)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, t, width = x.shape
    if width % heads:
        raise ValueError(f"width {width} does not split into {heads} heads")
    return x.view(b, t, heads, width // heads).transpose(1, 2)  # [B, heads, T, d]


def log_relation(a: torch.Tensor, b: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
    """log softmax(a_h b_h^T / sqrt(d_h)) over the real keys: [B, heads, T, T]."""
    ah, bh = _heads(a.float(), heads), _heads(b.float(), heads)
    scores = ah @ bh.transpose(-1, -2) / math.sqrt(ah.shape[-1])
    keys = mask[:, None, None, :].bool()
    return torch.log_softmax(scores.masked_fill(~keys, float("-inf")), dim=-1)


def relation_kl(teacher_log: torch.Tensor, student_log: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) summed over keys, averaged over heads and real query tokens."""
    p = teacher_log.exp()
    terms = torch.where(p > 0, p * (teacher_log - student_log), torch.zeros_like(p)).sum(-1)  # [B, heads, T]
    queries = mask[:, None, :].to(terms.dtype).expand_as(terms)
    return (terms * queries).sum() / queries.sum().clamp_min(1.0)


def minilm_loss(
    teacher: tuple[torch.Tensor, ...],
    student: tuple[torch.Tensor, ...],
    mask: torch.Tensor,
    *,
    version: str = "v2",
    teacher_heads: int,
    student_heads: int,
    relation_heads: int | None = None,
) -> dict[str, torch.Tensor]:
    """The MiniLM terms between the teacher's (Q, K, V) and the student's, by name."""
    tq, tk, tv = (x.detach() for x in teacher)
    sq, sk, sv = student
    if version == "v1":
        if teacher_heads != student_heads:
            raise ValueError(
                f"MiniLM v1 matches attention heads one to one: teacher {teacher_heads}, student {student_heads}; use v2"
            )
        return {
            "attention": relation_kl(
                log_relation(tq, tk, teacher_heads, mask), log_relation(sq, sk, student_heads, mask), mask
            ),
            "value": relation_kl(
                log_relation(tv, tv, teacher_heads, mask), log_relation(sv, sv, student_heads, mask), mask
            ),
        }
    if version != "v2":
        raise ValueError(f"unknown MiniLM version {version!r}")
    r = relation_heads or teacher_heads
    return {
        name: relation_kl(log_relation(t, t, r, mask), log_relation(s, s, r, mask), mask)
        for name, t, s in (("query", tq, sq), ("key", tk, sk), ("value", tv, sv))
    }
