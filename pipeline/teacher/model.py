"""The teacher model at inference: load once, run length-bucketed batches, gather real tokens.

Under ``torch.inference_mode()``; on a GPU with ``dtype="bf16"`` under bfloat16 autocast, with
PyTorch's scaled-dot-product attention (``attn_implementation="sdpa"``) unless attention maps
are requested (those need the eager implementation, which returns them).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..attention import variable_shape_attention
from ..runtime.numerics import pin_numerics
from .batching import Encoded, collate, plan_batches


class TeacherLoadError(RuntimeError):
    pass


@dataclass
class InferenceOutput:
    """Outputs of rows in their original order; hidden/attention values are float16, unpadded."""

    logits: np.ndarray  # [rows, labels] float32
    hidden: dict[int, np.ndarray]  # layer → [real tokens of all rows, hidden] float16
    attentions: dict[int, list[np.ndarray]]  # layer → per row [heads, len, len] float16
    nonfinite: int = 0  # float16 values that overflowed (inf / nan)
    batches: int = 0
    padded_tokens: int = 0
    model_seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    mlm_ids: np.ndarray | None = None  # [real tokens of all rows, k] int32 (with mlm_top_k)
    mlm_logits: np.ndarray | None = None  # [real tokens of all rows, k] float32, descending

    def slice(self, start: int, stop: int, lengths: np.ndarray) -> InferenceOutput:
        """Rows [start, stop) of these outputs (``lengths``: token counts of all rows)."""
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        a, b = int(offsets[start]), int(offsets[stop])
        return InferenceOutput(
            self.logits[start:stop],
            {k: v[a:b] for k, v in self.hidden.items()},
            {k: v[start:stop] for k, v in self.attentions.items()},
            mlm_ids=None if self.mlm_ids is None else self.mlm_ids[a:b],
            mlm_logits=None if self.mlm_logits is None else self.mlm_logits[a:b],
        )


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise TeacherLoadError("device 'cuda' was asked for but no GPU is visible to this worker")
    return torch.device(device)


def has_classification_head(source: str) -> bool:
    from transformers import AutoConfig

    archs = getattr(AutoConfig.from_pretrained(source), "architectures", None) or []
    return any(a.endswith("ForSequenceClassification") for a in archs)


class TeacherModel:
    """A sequence classifier and its fast tokenizer, ready for batched inference."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        layers=(),
        attentions=(),
        device: str = "cpu",
        dtype: str = "fp32",
        token_budget: int = 16384,
        max_length: int = 128,
        threads: int | None = None,
        mlm=None,
        mlm_top_k: int = 0,
    ):
        if not getattr(tokenizer, "is_fast", False):
            raise TeacherLoadError(f"{type(tokenizer).__name__} is not a fast tokenizer; the teacher needs one")
        if dtype not in ("fp32", "bf16"):
            raise ValueError(f"dtype must be fp32 or bf16, got {dtype!r}")
        pin_numerics()
        self.device = resolve_device(device)
        if self.device.type == "cpu" and threads:
            torch.set_num_threads(threads)
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        self.layers, self.attention_layers = list(layers), list(attentions)
        self.dtype, self.token_budget, self.max_length = dtype, token_budget, max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        config = model.config
        self.num_layers = config.num_hidden_layers
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.num_labels = config.num_labels
        limit = getattr(config, "max_position_embeddings", None)
        if limit and max_length > limit:
            raise TeacherLoadError(f"max_length {max_length} exceeds the model's {limit} positions")
        self.mlm: torch.nn.Module | None = None
        self.mlm_top_k = 0
        if mlm is not None and mlm_top_k:
            vocab = mlm.config.vocab_size
            if vocab < len(tokenizer):
                raise TeacherLoadError(
                    f"the masked-LM teacher predicts {vocab} tokens but the tokenizer has "
                    f"{len(tokenizer)}: they must share one vocabulary"
                )
            if mlm_top_k > vocab:
                raise TeacherLoadError(f"mlm_top_k {mlm_top_k} exceeds the vocabulary ({vocab})")
            self.mlm, self.mlm_top_k = mlm.eval().to(self.device), mlm_top_k

    @classmethod
    def load(
        cls,
        source: str,
        *,
        layers=(),
        attentions=(),
        device: str = "auto",
        dtype: str = "fp32",
        token_budget: int = 16384,
        max_length: int = 128,
        threads: int | None = None,
        mlm: str | None = None,
        mlm_top_k: int = 0,
    ) -> TeacherModel:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        impl = "eager" if attentions else "sdpa"
        model = AutoModelForSequenceClassification.from_pretrained(
            source, dtype=torch.float32, attn_implementation=impl
        )
        mlm_model = load_masked_lm(mlm) if mlm and mlm_top_k else None
        return cls(
            model,
            tokenizer,
            layers=layers,
            attentions=attentions,
            device=device,
            dtype=dtype,
            token_budget=token_budget,
            max_length=max_length,
            threads=threads,
            mlm=mlm_model,
            mlm_top_k=mlm_top_k,
        )

    def autocast(self):
        if self.dtype == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, batch: dict[str, torch.Tensor], hidden: bool | None = None, attentions: bool | None = None):
        """One batch through the model (outputs on the device)."""
        hidden = bool(self.layers) if hidden is None else hidden
        attentions = bool(self.attention_layers) if attentions is None else attentions
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.inference_mode(), self.autocast(), variable_shape_attention(self.device):
            return self.model(**batch, output_hidden_states=hidden, output_attentions=attentions)

    def encode(self, texts_a, texts_b=None) -> Encoded:
        from .batching import tokenize

        return tokenize(self.tokenizer, texts_a, texts_b, self.max_length)

    def infer(self, enc: Encoded) -> InferenceOutput:
        """Logits, stored hidden states and attention maps of every row, in the rows' order.

        Outputs stay on the device until every batch has been launched and are copied back in one
        transfer, so a GPU never waits for the host between batches; hidden states are trimmed to
        the real tokens and cast to float16 on the device.
        """
        import time

        started = time.perf_counter()
        n = len(enc)
        lengths = enc.lengths
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        logits = np.zeros((n, self.num_labels), dtype=np.float32)
        attn: dict[int, list] = {layer: [None] * n for layer in self.attention_layers}
        out = InferenceOutput(logits, {}, attn)
        order, batch_logits, batch_states, batch_dest, batch_mlm, mlm_dest = [], [], [], [], [], []
        on_cpu = self.places_per_batch()
        placed = (
            torch.empty((len(self.layers), total, self.hidden_size), dtype=torch.float16)
            if self.layers and on_cpu
            else None
        )
        for rows, length in plan_batches(lengths, self.token_budget, self.max_length):
            batch = collate(enc, rows, length, self.pad_id)
            result = self.forward(batch)
            order.append(rows)
            batch_logits.append(result.logits.float())
            if self.mlm is not None:
                batch_mlm.append(self._mlm_top_k(batch))
                mlm_dest.append(np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in rows]))
            if self.layers:
                mask = batch["attention_mask"].to(self.device).bool()
                # real tokens only, row-major, cast to float16 on the device: [layers, real tokens, hidden]
                states = torch.stack([result.hidden_states[layer][mask] for layer in self.layers]).to(torch.float16)
                # where this batch's tokens go among all rows' tokens, in the original row order
                dest = np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in rows])
                if on_cpu:  # straight into place: one copy, no concatenation at the end
                    assert placed is not None  # allocated above when there are layers and on_cpu
                    out.nonfinite += _nonfinite(states)
                    placed.index_copy_(1, torch.from_numpy(dest), states.cpu())  # no-op on a CPU
                else:
                    batch_states.append(states)
                    batch_dest.append(dest)
            for layer in self.attention_layers:
                maps = result.attentions[layer - 1].to(torch.float16)
                out.nonfinite += _nonfinite(maps)
                maps = maps.cpu().numpy()
                for j, r in enumerate(rows):
                    k = int(lengths[r])
                    attn[layer][r] = np.ascontiguousarray(maps[j, :, :k, :k])
            del result
            out.batches += 1
            out.padded_tokens += len(rows) * length
        if order:
            logits[np.concatenate(order)] = torch.cat(batch_logits).cpu().numpy()
        if self.mlm is not None:
            where = np.empty(total, dtype=np.int64)
            if mlm_dest:
                where[np.concatenate(mlm_dest)] = np.arange(total)
            ids = torch.cat([i for i, _ in batch_mlm]).cpu().numpy() if batch_mlm else np.zeros((0, self.mlm_top_k))
            vals = torch.cat([v for _, v in batch_mlm]).cpu().numpy() if batch_mlm else np.zeros((0, self.mlm_top_k))
            out.mlm_ids = np.ascontiguousarray(ids[where].astype(np.int32))
            out.mlm_logits = np.ascontiguousarray(vals[where].astype(np.float32))
        if self.layers and on_cpu:
            assert placed is not None  # allocated above when there are layers and on_cpu
            values = placed.numpy()
            out.hidden = {layer: values[i] for i, layer in enumerate(self.layers)}
        elif self.layers:
            if batch_states:
                states = torch.cat(batch_states, dim=1)
                out.nonfinite += _nonfinite(states)
                where = np.empty(total, dtype=np.int64)
                where[np.concatenate(batch_dest)] = np.arange(total)
                values = np.take(states.cpu().numpy(), where, axis=1)
            else:
                values = np.zeros((len(self.layers), 0, self.hidden_size), dtype=np.float16)
            out.hidden = {layer: values[i] for i, layer in enumerate(self.layers)}
        out.model_seconds = time.perf_counter() - started
        return out

    def _mlm_top_k(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The masked-LM teacher's k highest logits (and token ids) at every real token of a batch,
        packed row-major like the hidden states: ([real tokens, k] ids, [real tokens, k] logits)."""
        assert self.mlm is not None  # called only when a masked-LM teacher is loaded
        inputs = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.inference_mode(), self.autocast(), variable_shape_attention(self.device):
            scores = self.mlm(**inputs).logits
        mask = inputs["attention_mask"].bool()
        values, ids = scores[mask].float().topk(self.mlm_top_k, dim=-1)
        return ids.to(torch.int32), values

    def places_per_batch(self) -> bool:
        """On a CPU each batch's hidden states go straight into place (one copy); on a GPU they stay
        on the device and are copied back together after the last batch."""
        return self.device.type == "cpu"

    def needs_whole_shard(self) -> bool:
        """On a GPU, batches are planned over the whole shard (big, length-sorted batches); on a CPU,
        row group by row group, each written before the next is computed (compute.py says why)."""
        return self.device.type != "cpu"


def load_masked_lm(source: str):
    """A masked-LM model (with its head) from a local folder; a clear error when the checkpoint has none."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(source)
    archs = config.architectures or []
    if archs and not any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs):
        raise TeacherLoadError(
            f"{source}: a {archs[0]} has no masked-LM head; mlm_top_k needs a masked-LM "
            f"checkpoint (set teacher.mlm_model)"
        )
    return AutoModelForMaskedLM.from_pretrained(source, dtype=torch.float32)


def _nonfinite(x: torch.Tensor) -> int:
    """How many values overflowed float16; one cheap reduction when (as usual) none did."""
    if bool(torch.isfinite(x.sum(dtype=torch.float32))):
        return 0
    return int((~torch.isfinite(x)).sum())


def cpu_threads_default(cpus: int) -> int:
    return max(1, min(cpus, 8))


def visible_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
