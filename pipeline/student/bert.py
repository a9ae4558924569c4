"""The small BERT student: k transformer layers taken from the teacher (DistilBERT style) or built
at random, distilled TinyBERT style (embedding, hidden-state and attention losses on a layer
mapping g, then the prediction layer).
"""

from __future__ import annotations

import copy
import re

import pyarrow as pa
import torch
from torch import nn

from ..cache.layers import tinybert_layers
from .errors import StudentError
from .losses import attention_mse, hidden_cosine, hidden_mse

_LAYER = re.compile(r"(\.layers?\.)(\d+)(\.)")


def layer_map(teacher_layers: int, student_layers: int, explicit: list[int] | None = None) -> list[int]:
    """g(0..k): the teacher hidden state each student hidden state learns (0 = embeddings)."""
    g = list(explicit) if explicit is not None else tinybert_layers(teacher_layers, student_layers)
    if len(g) != student_layers + 1:
        raise StudentError(
            f"layer_map needs {student_layers + 1} entries (student states 0..{student_layers}), got {g}"
        )
    if g[0] != 0 or any(not 0 <= x <= teacher_layers for x in g) or g != sorted(set(g)):
        raise StudentError(
            f"layer_map {g} must start at 0 (embeddings), increase, and stay within the teacher's 0..{teacher_layers}"
        )
    return g


def build_student(
    teacher_dir: str,
    layers: int,
    init: str,
    g: list[int],
    *,
    hidden_size: int | None = None,
    intermediate_size: int | None = None,
    num_attention_heads: int | None = None,
    seed: int = 0,
    attentions: bool = False,
):
    """A sequence classifier with ``layers`` layers; ``init="teacher"`` copies the teacher's embeddings,
    pooler, classifier and layers g(1)..g(k) (1-based teacher layers). ``teacher_dir`` may be a
    URI (copied once to this node: transformers loads local folders) or a hub id."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from ..assets import local_copy

    teacher_dir = local_copy(teacher_dir)
    torch.manual_seed(seed)
    tcfg = AutoConfig.from_pretrained(teacher_dir)
    scfg = copy.deepcopy(tcfg)
    scfg.num_hidden_layers = layers
    extra = {"attn_implementation": "eager"} if attentions else {}
    if init == "random":
        if hidden_size:
            scfg.hidden_size = hidden_size
            scfg.intermediate_size = intermediate_size or 4 * hidden_size
        if num_attention_heads:
            scfg.num_attention_heads = num_attention_heads
        if scfg.hidden_size % scfg.num_attention_heads:
            raise StudentError(
                f"hidden_size {scfg.hidden_size} is not a multiple of the {scfg.num_attention_heads} heads"
            )
        return AutoModelForSequenceClassification.from_config(scfg, **extra)
    if (hidden_size and hidden_size != tcfg.hidden_size) or (
        num_attention_heads and num_attention_heads != tcfg.num_attention_heads
    ):
        raise StudentError(
            "a student initialised from the teacher has the teacher's hidden size and heads; use init: random"
        )
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    student = AutoModelForSequenceClassification.from_config(scfg, **extra)
    source = {m: g[m] - 1 for m in range(1, layers + 1)}  # student layer m-1 ← teacher layer g(m)-1 (0-based)
    state = teacher.state_dict()
    picked = {}
    for key in student.state_dict():
        match = _LAYER.search(key)
        if match:
            src = key[: match.start(2)] + str(source[int(match.group(2)) + 1]) + key[match.end(2) :]
        else:
            src = key
        if src not in state:
            raise StudentError(f"teacher {teacher_dir} has no weight {src} for student weight {key}")
        picked[key] = state[src]
    student.load_state_dict(picked)
    return student


class HiddenProjection(nn.Module):
    """TinyBERT's W_h: student width → teacher width, shared by all mapped layers (identity-initialised
    when the widths match, so a student copied from the teacher starts at a small loss)."""

    def __init__(self, student_width: int, teacher_width: int):
        super().__init__()
        self.proj = nn.Linear(student_width, teacher_width)
        if student_width == teacher_width:
            nn.init.eye_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        return self.proj(x)


def intermediate_loss(
    out,
    batch: dict,
    g: list[int],
    proj: HiddenProjection,
    attention: bool,
    hidden_loss: str = "mse",
    hidden_layers: str = "all",
) -> dict:
    """One forward pass against the cached teacher: TinyBERT's embedding + hidden-state MSE over
    every mapped layer (``hidden_layers: all``), or the last student layer against its mapped
    teacher layer only (``last``, as DistilBERT); the hidden-state term is MSE or DistilBERT's
    cosine-embedding loss (``hidden_loss: cosine``); plus attention MSE when ``attention``."""
    mask = batch["attention_mask"]
    layer_loss = hidden_cosine if hidden_loss == "cosine" else hidden_mse
    layers = range(1, len(g)) if hidden_layers == "all" else [len(g) - 1]
    parts: dict[str, torch.Tensor | int] = {}
    if hidden_layers == "all":
        parts["embedding"] = hidden_mse(proj(out.hidden_states[0]), batch[f"hidden_{g[0]}"], mask)
    # sum() of no terms would be 0; layer_map guarantees at least one student layer
    parts["hidden"] = sum(layer_loss(proj(out.hidden_states[m]), batch[f"hidden_{g[m]}"], mask) for m in layers)
    if attention:
        parts["attention"] = sum(
            attention_mse(out.attentions[m - 1], batch[f"attention_{g[m]}"], mask) for m in range(1, len(g))
        )
    return parts


def collate_tokens(table: pa.Table, hidden_size: int = 0, num_heads: int = 0) -> dict:
    """Cache rows → padded input_ids / token_type_ids / attention_mask, targets, and hidden / attention
    columns present in ``table`` as float32 [B, T, H] / [B, heads, T, T]."""
    from ..cache.torch_dataset import to_torch

    batch = to_torch(table, hidden_size, num_heads)
    for target in ("label_id", "score"):  # label ids, or scores (regression)
        if target in batch:
            batch["labels"] = batch.pop(target)
    return batch
