"""Training loops: one run of one student with one seed, from cached teacher outputs.

Each epoch streams the training cache through :class:`~.reader.ShuffleReader`, evaluates on the
dev split, and keeps the best epoch's weights (by the task's headline dev metric: accuracy, MCC,
F1 or Pearson's r); the test split is evaluated once at the end with those weights.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..metrics import task_scores
from ..progress import Progress
from .evaluate import EvalSet
from .losses import prediction_loss
from .reader import ShuffleReader


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_dev: float = -math.inf
    best_state: dict | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def linear_schedule(optimizer, total_steps: int, warmup_ratio: float):
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(
    model,
    reader: ShuffleReader,
    collate,
    forward,
    *,
    loss: str,
    epochs: int,
    optimizer,
    scheduler=None,
    predict,
    dev: EvalSet,
    metric: str = "accuracy",
    regression: bool = False,
    label: str,
    device,
    temperature: float = 1.0,
    alpha: float = 0.5,
    max_grad_norm: float = 1.0,
    stream=None,
    history: History | None = None,
    epoch_offset: int = 0,
) -> History:
    """Prediction-layer training: ``forward(model, batch) → logits``; ``predict(dev) → logits``; the
    epoch with the best dev ``metric`` is kept."""
    history = history or History()
    params = [p for p in model.parameters() if p.requires_grad]
    for epoch in range(1, epochs + 1):
        model.train()
        progress = Progress(f"{label} epoch {epoch}/{epochs}", stream=stream or sys.stderr)
        total, steps, started = 0.0, 0, time.perf_counter()
        for table in reader.epoch(epoch_offset + epoch):
            batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in collate(table).items()}
            logits = forward(model, batch)
            value = prediction_loss(
                loss, logits, batch.get("logits"), batch.get("labels"), temperature=temperature, alpha=alpha
            )
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += float(value.detach())
            steps += 1
            progress.add(table.num_rows)
        progress.done()
        if not math.isfinite(total):
            raise FloatingPointError(f"{label}: the training loss is not finite in epoch {epoch}")
        scores = task_scores(predict(dev), dev.labels, regression)
        history.epochs.append(
            {
                "epoch": epoch_offset + epoch,
                "stage": "prediction",
                "train_loss": total / max(steps, 1),
                **{f"dev_{k}": v for k, v in scores.items()},
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        if scores[metric] > history.best_dev:
            history.best_dev, history.best_epoch = scores[metric], epoch_offset + epoch
            history.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return history


def fit_intermediate(
    model,
    proj,
    reader: ShuffleReader,
    collate,
    *,
    g: list[int],
    attention: bool,
    hidden_loss: str = "mse",
    hidden_layers: str = "all",
    epochs: int,
    lr: float,
    warmup_ratio: float,
    device,
    label: str,
    stream=None,
    loss_fn=None,
) -> list[dict]:
    """The intermediate-layer step: TinyBERT's embedding + hidden-state (+ attention) MSE, or
    DistilBERT's cosine loss (``hidden_loss``, ``hidden_layers``: bert.intermediate_loss); W_h learned.
    ``loss_fn(out, batch) → {name: loss}`` replaces them (MiniLM); ``proj`` is then None."""
    from .bert import intermediate_loss

    extra = list(proj.parameters()) if proj is not None else []
    params = [p for p in [*model.parameters(), *extra] if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    scheduler = linear_schedule(optimizer, max(1, epochs * reader.steps_per_epoch()), warmup_ratio)
    rows = []
    for epoch in range(1, epochs + 1):
        model.train()
        progress = Progress(f"{label} intermediate epoch {epoch}/{epochs}", stream=stream or sys.stderr)
        sums: dict[str, float] = {}
        steps, started = 0, time.perf_counter()
        for table in reader.epoch(epoch):
            batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in collate(table).items()}
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
            out = model(**inputs, output_hidden_states=True, output_attentions=attention)
            if loss_fn is not None:
                parts = loss_fn(out, batch)
            else:
                parts = intermediate_loss(out, batch, g, proj, attention, hidden_loss, hidden_layers)
            value = sum(parts.values())
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            steps += 1
            progress.add(table.num_rows)
        progress.done()
        rows.append(
            {
                "epoch": epoch,
                "stage": "intermediate",
                **{f"{k}_loss": v / max(steps, 1) for k, v in sums.items()},
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    return rows


def restore_best(model, history: History) -> None:
    if history.best_state is not None:
        model.load_state_dict(history.best_state)
