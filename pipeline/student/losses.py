"""Distillation losses (Hinton et al. 2015, Tang et al. 2019, TinyBERT). Plain functions of tensors, batch-mean reduced.

- :func:`soft_cross_entropy`: Hinton et al. soft cross-entropy between softmax(z_t / T) and
  softmax(z_s / T), multiplied by T² so that gradients keep their scale across temperatures.
- :func:`logit_mse`: Tang et al.'s MSE between raw logits (mean over classes and rows).
- :func:`hard_cross_entropy`: cross-entropy on labels; rows labelled -100 are ignored.
- :func:`mixed`: α·hard + (1−α)·soft.
- Regression (a one-output head; labels are float scores, NaN where unknown): :func:`score_mse`
  against the gold score is the hard loss, :func:`logit_mse` against the teacher's prediction the
  distillation loss, and mix is α·gold + (1−α)·teacher (no temperature: there is no softmax).
- :func:`hidden_mse` / :func:`attention_mse`: TinyBERT's intermediate-layer losses, mean squared
  error over the real tokens only (padding never counts).
- :func:`hidden_cosine`: DistilBERT's cosine-embedding loss between hidden states, 1 − cos over
  the real tokens (``nn.CosineEmbeddingLoss`` with target 1 on the masked-selected states).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def soft_cross_entropy(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    t = float(temperature)
    target = F.softmax(teacher_logits.float() / t, dim=-1)
    log_p = F.log_softmax(student_logits.float() / t, dim=-1)
    return -(target * log_p).sum(-1).mean() * (t * t)


def logit_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(student_logits.float(), teacher_logits.float())


def hard_cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if not (labels != IGNORE).any():
        return student_logits.sum() * 0.0  # no labelled row in the batch: no signal, keep the graph
    return F.cross_entropy(student_logits.float(), labels, ignore_index=IGNORE)


def score_mse(student_logits: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Squared error of a one-output head [B, 1] against gold scores [B]; NaN scores are ignored."""
    known = ~torch.isnan(scores)
    if not known.any():
        return student_logits.sum() * 0.0  # no scored row in the batch: no signal, keep the graph
    return F.mse_loss(student_logits[:, 0].float()[known], scores.float()[known])


def mixed(student_logits, teacher_logits, labels, alpha: float, temperature: float = 1.0) -> torch.Tensor:
    if labels.is_floating_point():  # regression: gold and teacher squared errors
        return alpha * score_mse(student_logits, labels) + (1.0 - alpha) * logit_mse(student_logits, teacher_logits)
    return alpha * hard_cross_entropy(student_logits, labels) + (1.0 - alpha) * soft_cross_entropy(
        student_logits, teacher_logits, temperature
    )


def prediction_loss(
    kind: str, student_logits, teacher_logits, labels, *, temperature: float = 1.0, alpha: float = 0.5
) -> torch.Tensor:
    """The prediction-layer loss ``kind``; float ``labels`` (scores) mean a regression head."""
    if kind == "hard":
        if labels.is_floating_point():
            return score_mse(student_logits, labels)
        return hard_cross_entropy(student_logits, labels)
    if kind == "soft":
        if student_logits.shape[-1] < 2:
            raise ValueError("loss soft needs classes; a one-output (regression) head learns with mse, hard or mix")
        return soft_cross_entropy(student_logits, teacher_logits, temperature)
    if kind == "mse":
        return logit_mse(student_logits, teacher_logits)
    if kind == "mix":
        return mixed(student_logits, teacher_logits, labels, alpha, temperature)
    raise ValueError(f"unknown loss {kind!r}")


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE between [B, T, H] states over the real tokens (``mask`` [B, T], 1 = real)."""
    m = mask.to(student.dtype).unsqueeze(-1)
    diff = (student - teacher.to(student.dtype)) * m
    return diff.pow(2).sum() / (m.sum() * student.shape[-1]).clamp_min(1.0)


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE between [B, heads, T, T] attention maps over real (query, key) pairs."""
    m = mask.to(student.dtype)
    pair = (m[:, :, None] * m[:, None, :]).unsqueeze(1)  # [B, 1, T, T]
    diff = (student - teacher.to(student.dtype)) * pair
    return diff.pow(2).sum() / (pair.sum() * student.shape[1]).clamp_min(1.0)


def hidden_cosine(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens of 1 − cos(student state, teacher state), [B, T, H] each."""
    m = mask.to(student.dtype)
    cos = F.cosine_similarity(student, teacher.to(student.dtype), dim=-1, eps=1e-8)  # [B, T]
    return ((1.0 - cos) * m).sum() / m.sum().clamp_min(1.0)
