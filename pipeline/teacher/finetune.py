"""Fine-tune a sequence classifier from any Hugging Face encoder; keep the best epoch on dev.

Seeded: the classifier head's initialisation, dropout and the batch order all come from the
seed, so on the same device and thread count the same seed gives the same weights. Batches are
length-grouped (shuffled, cut into windows of 50 batches, sorted by length inside a window) so
little compute goes to padding. The best epoch's weights are saved with ``save_pretrained``
(plus the tokenizer) and ``finetune_metrics.json``, written last, marks a finished model.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import storage
from ..metrics import task_scores
from ..runtime.numerics import pin_numerics
from .batching import Encoded, collate, tokenize
from .model import resolve_device
from .settings import FinetuneConfig

METRICS_NAME = "finetune_metrics.json"


@dataclass
class LabelledTexts:
    text_a: list[str]
    text_b: list[str | None] | None
    target: list  # label ids; regression: scores

    def __len__(self) -> int:
        return len(self.text_a)

    def take(self, idx) -> LabelledTexts:
        return LabelledTexts(
            [self.text_a[i] for i in idx],
            None if self.text_b is None else [self.text_b[i] for i in idx],
            [self.target[i] for i in idx],
        )

    @classmethod
    def from_arrow(cls, table, regression: bool = False) -> LabelledTexts:
        import pyarrow.compute as pc

        column = "score" if regression else "label_id"
        table = table.filter(pc.is_valid(table.column(column)))
        b = table.column("text_b").to_pylist() if "text_b" in table.column_names else None
        if b is not None and all(x is None for x in b):
            b = None
        return cls(table.column("text_a").to_pylist(), b, table.column(column).to_pylist())


def holdout(data: LabelledTexts, fraction: float, seed: int) -> tuple[LabelledTexts, LabelledTexts]:
    """A seeded split of ``data`` into (train, dev)."""
    perm = np.random.default_rng([seed, 7919]).permutation(len(data))
    n_dev = max(1, round(len(data) * fraction))
    return data.take(sorted(perm[n_dev:])), data.take(sorted(perm[:n_dev]))


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    perm = rng.permutation(len(lengths))
    window = batch_size * 50
    out = []
    for w in range(0, len(perm), window):
        chunk = perm[w : w + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def _padded(enc: Encoded, rows: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    return collate(enc, rows, int(enc.lengths[rows].max()), pad_id)


def _loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy on label ids; squared error on scores (a one-output regression head)."""
    if y.is_floating_point():
        return torch.nn.functional.mse_loss(logits[:, 0], y, reduction=reduction)
    return torch.nn.functional.cross_entropy(logits, y, reduction=reduction)


def headline(regression: bool) -> str:
    """The dev metric that picks the best epoch: accuracy, or Pearson's r for regression."""
    return "pearson" if regression else "accuracy"


def evaluate(model, enc: Encoded, labels: np.ndarray, pad_id: int, device, autocast, batch_size: int = 128) -> dict:
    """Dev loss and metrics: accuracy, or for scores Pearson / Spearman (:func:`pipeline.metrics.task_scores`)."""
    model.eval()
    order = np.argsort(enc.lengths, kind="stable")
    outputs = np.zeros((len(order), 0), dtype=np.float32)
    loss_sum = 0.0
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            rows = order[i : i + batch_size]
            batch = {k: v.to(device) for k, v in _padded(enc, rows, pad_id).items()}
            y = torch.as_tensor(labels[rows], device=device)
            with autocast():
                logits = model(**batch).logits.float()
            loss_sum += float(_loss(logits, y, reduction="sum"))
            if not outputs.shape[1]:
                outputs = np.zeros((len(order), logits.shape[1]), dtype=np.float32)
            outputs[rows] = logits.cpu().numpy()
    regression = labels.dtype.kind == "f"
    scores = task_scores(outputs, labels, regression)
    keep = ("pearson", "spearman") if regression else ("accuracy",)
    return {**{k: scores[k] for k in keep}, "loss": loss_sum / max(1, len(order))}


def finetune_classifier(
    source: str,
    out_dir: str,
    train: LabelledTexts,
    dev: LabelledTexts,
    labels: list[str],
    settings: FinetuneConfig,
    *,
    regression: bool = False,
    seed: int,
    device: str = "auto",
    dtype: str = "fp32",
    threads: int | None = None,
    extra: dict | None = None,
    log=print,
) -> dict:
    """Fine-tune ``source`` on ``train``, keep the epoch with the best dev accuracy (regression:
    Pearson's r; ``labels`` is then ``["score"]``, a one-output head), save to ``out_dir``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    started = time.perf_counter()
    pin_numerics()
    dev_device = resolve_device(device)
    if dev_device.type == "cpu" and threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        source,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={l: i for i, l in enumerate(labels)},
        problem_type="regression" if regression else "single_label_classification",
        ignore_mismatched_sizes=True,
        dtype=torch.float32,
        attn_implementation="sdpa",
    ).to(dev_device)
    pad_id = tokenizer.pad_token_id or 0
    enc_train = tokenize(tokenizer, train.text_a, train.text_b, settings.max_length)
    enc_dev = tokenize(tokenizer, dev.text_a, dev.text_b, settings.max_length)
    if regression:
        if len(labels) != 1:
            raise ValueError(f"a regression head has one output, got labels {labels}")
        y_train, y_dev = np.asarray(train.target, dtype=np.float32), np.asarray(dev.target, dtype=np.float32)
    else:
        y_train, y_dev = np.asarray(train.target, dtype=np.int64), np.asarray(dev.target, dtype=np.int64)
        bad = sorted({int(y) for y in np.concatenate([y_train, y_dev]) if not 0 <= y < len(labels)})
        if bad:
            raise ValueError(f"label ids {bad} are outside the {len(labels)} labels {labels}")
    metric = headline(regression)

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": settings.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=settings.lr)
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    warmup = int(total * settings.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    use_bf16 = dtype == "bf16"

    def autocast():
        return torch.autocast(dev_device.type, dtype=torch.bfloat16, enabled=use_bf16)

    torch.manual_seed(seed)  # dropout
    history, best, best_state = [], None, None
    for epoch in range(1, settings.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        rng = np.random.default_rng([seed, epoch])
        loss_sum, seen = 0.0, 0
        for rows in _batches(enc_train.lengths, settings.batch_size, rng):
            batch = {k: v.to(dev_device) for k, v in _padded(enc_train, rows, pad_id).items()}
            y = torch.as_tensor(y_train[rows], device=dev_device)
            with autocast():
                logits = model(**batch).logits.float()
            loss = _loss(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(rows)
            seen += len(rows)
        dev_metrics = evaluate(model, enc_dev, y_dev, pad_id, dev_device, autocast)
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / max(1, seen),
            "dev_loss": dev_metrics["loss"],
            **{f"dev_{k}": v for k, v in dev_metrics.items() if k != "loss"},
            "seconds": round(time.perf_counter() - t0, 3),
        }
        history.append(record)
        log(
            f"  fine-tune epoch {epoch}/{settings.epochs}: train loss {record['train_loss']:.4f}, "
            f"dev {metric} {record[f'dev_{metric}']:.4f}"
        )
        if best is None or record[f"dev_{metric}"] > best[f"dev_{metric}"]:
            best = record
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    assert best is not None  # settings.epochs > 0 (validated): at least one epoch ran
    model.load_state_dict(best_state)
    metrics = {
        "source": source,
        "labels": labels,
        "regression": regression,
        "metric": metric,
        "seed": seed,
        "settings": settings.model_dump(mode="json"),
        "device": str(dev_device),
        "dtype": dtype,
        "train_examples": len(train),
        "dev_examples": len(dev),
        "epochs": history,
        "best_epoch": best["epoch"],
        **{k: v for k, v in best.items() if k.startswith("dev_")},
        "seconds": round(time.perf_counter() - started, 3),
        **(extra or {}),
    }
    save_model(model.to("cpu"), tokenizer, out_dir, metrics)
    return metrics


def save_model(model, tokenizer, out_dir: str, metrics: dict) -> None:
    """``save_pretrained`` into a fresh folder that replaces ``out_dir``; the metrics JSON goes last."""
    if storage.is_remote(out_dir):
        # no rename on an object store: the metrics JSON, the folder's completion, goes first and
        # comes back last; every file is uploaded whole, and files of an older model are removed
        metrics_path = storage.join(out_dir, METRICS_NAME)
        storage.delete_if_exists(metrics_path)
        with tempfile.TemporaryDirectory(dir=storage.scratch_dir()) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            names = storage.upload_tree(tmp, out_dir)
        for name, _ in storage.list_files(out_dir, recursive=True):
            if name not in names and name != METRICS_NAME:
                storage.delete_if_exists(storage.join(out_dir, name))
        storage.write_json(metrics_path, metrics)
        return
    dest = Path(out_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n")
    old = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.old"
    if dest.exists():
        os.replace(dest, old)
    os.replace(staging, dest)
    shutil.rmtree(old, ignore_errors=True)


def finished_metrics(out_dir: str, key: str) -> dict | None:
    """The metrics of a model fine-tuned earlier with the same inputs and settings, else None."""
    path = storage.join(out_dir, METRICS_NAME)
    if not storage.exists(path):
        return None
    metrics = storage.read_json(path)
    return metrics if isinstance(metrics, dict) and metrics.get("key") == key else None
