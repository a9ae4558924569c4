"""Distil a small student with the Hugging Face ``Trainer`` from a cached teacher's outputs.

The teacher ran once (``pipeline teacher``) and left its raw logits in a cache of Parquet shards;
this script trains a sequence-classification student on those logits without running the teacher
again. The loss mixes soft and hard targets (Hinton et al.)::

    alpha * T² * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, label)

where rows without a label (``label_id`` null or -1) take part in the first term only.

Run it from the repository root (after ``pip install -e .``, so that ``import pipeline`` works)::

    python examples/distil_with_trainer.py --cache out/demo/teacher/augmented/train/tang \\
        --student google/bert_uncased_L-2_H-128_A-2 --output-dir out/student-trainer --epochs 3

The student reads the cache's token ids as they are, so it must share the teacher's vocabulary
(for instance a smaller checkpoint of the same family); the script stops with a message otherwise.
The trained student and the teacher's tokenizer (when it can be loaded) are saved to
``--output-dir`` with ``train_results.json`` and ``trainer_state.json``.

``remove_unused_columns=False``: by default the ``Trainer`` drops every dataset column that is not
an argument of the model's ``forward`` before batching. ``logits`` (the teacher's) and ``label_id``
are not, so they would never reach the collator and there would be nothing to distil from.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from typing import Any

import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

from pipeline.cache import load_cache_dataset

# The only cache columns the collator reads: hidden states and texts stay on disk
COLUMNS = ("input_ids", "token_type_ids", "logits", "label_id")


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """``alpha`` · T² · KL(teacher ‖ student) at temperature T, batch mean, plus ``1 - alpha`` times
    the cross-entropy over the rows whose label is not -100 (left out when the batch has none)."""
    t = temperature
    # float32 whatever the student's precision: a softmax over fp16 logits loses the small probabilities
    student = F.log_softmax(student_logits.float() / t, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    # T² keeps the soft term's gradients on the scale of the hard term's whatever the temperature
    loss = alpha * (t * t) * F.kl_div(student, teacher, reduction="batchmean", log_target=True)
    if alpha < 1 and labels is not None and bool((labels != -100).any()):
        loss = loss + (1 - alpha) * F.cross_entropy(student_logits.float(), labels, ignore_index=-100)
    return loss


class CacheCollator:
    """Cache rows → right-padded ``input_ids`` / ``attention_mask`` (/ ``token_type_ids``) [B, T],
    ``teacher_logits`` [B, num_labels] (float32) and ``labels`` [B] (-100 where there is none)."""

    def __init__(self, pad_token_id: int, token_type_ids: bool = True):
        self.pad_token_id = pad_token_id
        self.token_type_ids = token_type_ids

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        input_ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
        token_type_ids = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            input_ids[i, :n] = torch.as_tensor(r["input_ids"], dtype=torch.long)
            attention_mask[i, :n] = 1
            if self.token_type_ids and r.get("token_type_ids") is not None:
                token_type_ids[i, :n] = torch.as_tensor(r["token_type_ids"], dtype=torch.long)
        labels = [r.get("label_id") for r in rows]
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "teacher_logits": torch.tensor([r["logits"] for r in rows], dtype=torch.float32),
            "labels": torch.tensor([-100 if l is None or l < 0 else l for l in labels], dtype=torch.long),
        }
        if self.token_type_ids:
            batch["token_type_ids"] = token_type_ids
        return batch


class DistillationTrainer(Trainer):
    """A ``Trainer`` whose loss is :func:`distillation_loss` against the batch's ``teacher_logits``."""

    # The loss is a per-batch mean: the Trainer must divide it for gradient accumulation itself.
    # Left at None, it would count it as already scaled whenever the model's forward takes **kwargs.
    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, temperature: float = 2.0, alpha: float = 0.5, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.temperature = temperature
        self.alpha = alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)  # the caller's dict stays whole
        teacher_logits = inputs.pop("teacher_logits")
        # without labels the model computes no loss of its own: only the logits are needed here
        labels = inputs.pop("labels", None)
        outputs = model(**inputs)
        loss = distillation_loss(outputs.logits, teacher_logits, labels, self.temperature, self.alpha)
        return (loss, outputs) if return_outputs else loss


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--cache", required=True, help="a teacher cache folder (the one holding manifest.json)")
    p.add_argument("--student", required=True, help="a model folder or Hub id sharing the teacher's vocabulary")
    p.add_argument("--output-dir", required=True, help="where the trained student is saved")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (default: --epochs)")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the soft (teacher) term, 0 to 1")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when an accelerator is present")
    p.add_argument(
        "--hf-cache", default=None, help="where `datasets` keeps its Arrow copy (default: HF_DATASETS_CACHE)"
    )
    args = p.parse_args(argv)
    if not 0 <= args.alpha <= 1:
        p.error("--alpha must lie in [0, 1]")
    if args.temperature <= 0:
        p.error("--temperature must be positive")
    return args


def load_cache(path: str, hf_cache: str | None) -> tuple[Any, dict]:
    """The cache's needed columns as a ``datasets.Dataset``, and its manifest."""
    # A streaming view costs only the Parquet footers: it says which columns this cache has
    probe = load_cache_dataset(path, streaming=True, cache_dir=hf_cache)
    columns = [c for c in COLUMNS if c in probe.column_names]
    # columns= reads only those from the shards, so hidden states are not copied into the Arrow cache
    ds = load_cache_dataset(path, columns=columns, cache_dir=hf_cache)
    return ds, json.loads(ds.info.description)


def check_student(model: Any, ds: Any, manifest: dict) -> str | None:
    """Why the student cannot read the cache's rows, or None."""
    ids = ds.data.column("input_ids")
    top = pc.max(pc.list_flatten(ids)).as_py() if len(ds) else None
    vocab = model.config.vocab_size
    if top is not None and top >= vocab:
        teacher = manifest.get("tokenizer", {}).get("name_or_path", "the teacher")
        return (
            f"the student's vocabulary ({vocab} ids) is smaller than the cache's (ids up to {top}, from {teacher}'s "
            "tokenizer): the student must share the teacher's vocabulary"
        )
    longest = pc.max(pc.list_value_length(ids)).as_py() if len(ds) else None
    positions = getattr(model.config, "max_position_embeddings", None)
    if longest is not None and positions is not None and longest > positions:
        return f"the student reads at most {positions} tokens but cache rows hold up to {longest}"
    return None


def save_tokenizer(manifest: dict, output_dir: str) -> str | None:
    """Saves the teacher's tokenizer next to the student (the ids it was trained on); where from, or None."""
    source = manifest.get("tokenizer", {}).get("name_or_path")
    if not source:
        return None
    try:
        AutoTokenizer.from_pretrained(source).save_pretrained(output_dir)
    except (OSError, ValueError) as e:
        print(f"note: the teacher's tokenizer ({source}) was not saved with the student: {e}", file=sys.stderr)
        return None
    return source


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ds, manifest = load_cache(args.cache, args.hf_cache)
    labels = manifest["labels"]
    model = AutoModelForSequenceClassification.from_pretrained(
        args.student,
        num_labels=manifest["num_labels"],
        id2label=dict(enumerate(labels)),
        label2id={l: i for i, l in enumerate(labels)},
        # a student checkpoint with another label count gets a fresh classifier head instead of an error
        ignore_mismatched_sizes=True,
    )
    problem = check_student(model, ds, manifest)
    if problem:
        print(f"error: {args.student}: {problem}", file=sys.stderr)
        return 2

    # DistilBERT-like students have no segment embeddings: leave token_type_ids out of their batches
    types = "token_type_ids" in ds.column_names and "token_type_ids" in inspect.signature(model.forward).parameters
    collator = CacheCollator(manifest["tokenizer"]["pad_token_id"], token_type_ids=types)
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        # the Trainer would otherwise drop `logits` and `label_id`, which the model's forward does not take
        remove_unused_columns=False,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        logging_steps=args.logging_steps,
        save_strategy="no",
        report_to="none",
        use_cpu=args.cpu,
        # pinned host memory only speeds up copies to a CUDA device (torch warns about it elsewhere)
        dataloader_pin_memory=torch.cuda.is_available() and not args.cpu,
        seed=args.seed,
    )
    trainer = DistillationTrainer(
        model=model,
        args=training_args,
        train_dataset=ds,
        data_collator=collator,
        temperature=args.temperature,
        alpha=args.alpha,
    )
    result = trainer.train()
    trainer.save_model(args.output_dir)
    tokenizer = save_tokenizer(manifest, args.output_dir)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()

    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    last = logged[-1] if logged else result.training_loss
    print(
        f"distilled {args.student} from {manifest.get('teacher', {}).get('model', 'the teacher')}: "
        f"{result.global_step} steps on {len(ds)} rows, mean training loss {result.training_loss:.4f}, "
        f"last logged loss {last:.4f}"
    )
    print(f"student saved to {args.output_dir}" + (f" with the tokenizer of {tokenizer}" if tokenizer else ""))
    return 0 if math.isfinite(result.training_loss) else 1


if __name__ == "__main__":
    sys.exit(main())
