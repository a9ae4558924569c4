"""The student stage's typed configuration (``student:`` in a job YAML).

A student stage trains one or more *runs* (a model, the teacher cache it learns from, a loss), each
once per seed, evaluates every run on the dev split each epoch and on the test split at the end,
and writes a result table. Every run reads the teacher's cached outputs offline: no Ray, no teacher.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..layout import INPUT_PATTERN
from ..setting_types import Flag, Int, Number

CacheName = Annotated[str, Field(pattern=INPUT_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BiLstmConfig(_Strict):
    """Tang et al.'s student: word embeddings (GloVe-initialised, fine-tuned), one BiLSTM layer, an MLP head."""

    glove: str | None = Field(
        None, description="GloVe text (.txt/.gz), gensim KeyedVectors or kumo npy; None = the bundled GloVe 6B 50d"
    )
    glove_allow_pickle: Flag = Field(
        False,
        description="load a gensim KeyedVectors.save file as glove (a Python "
        "pickle, which can run code): only for a file you trust",
    )
    glove_rows: Annotated[Int, Field(ge=0)] = Field(
        100_000,
        description="the first GloVe rows joined to the training words in the vocabulary (0 = training words only)",
    )
    hidden: Annotated[Int, Field(gt=0)] = Field(150, description="LSTM units per direction")
    mlp: Annotated[Int, Field(gt=0)] = Field(200, description="units of the ReLU hidden layer of the head")
    dropout: Annotated[Number, Field(ge=0.0, lt=1.0)] = Field(0.1, description="dropout before the head")
    pair_head: Literal["concat", "siamese"] = Field(
        "concat",
        description="sentence pairs: concat = Tang et al.'s [a, b, |a-b|, a*b] into the MLP; siamese = cosine "
        "similarity of the two encodings (each through a shared tanh layer of mlp units), scaled per label",
    )
    max_words: Annotated[Int, Field(gt=0)] = Field(128, description="words per text (longer texts are cut)")
    lr: Annotated[Number, Field(gt=0.0, lt=1.0)] = Field(1e-3, description="Adam learning rate")
    batch_size: Annotated[Int, Field(gt=0)] = Field(64, description="rows per step")
    epochs: Annotated[Int, Field(gt=0, le=100)] = Field(4, description="epochs (a run's epochs overrides it)")


class MiniLmConfig(_Strict):
    """MiniLM's self-attention distillation as the intermediate step (instead of TinyBERT's losses):
    the last student layer learns the relations of one teacher layer, from the compact form the
    teacher cache stores for teacher.minilm_layers."""

    version: Literal["v1", "v2"] = Field(
        "v2",
        description="v1 = attention distributions and value relations per head (the student has the teacher's "
        "head count); v2 = query, key and value self-relations over relation_heads (any student heads, width)",
    )
    teacher_layer: Annotated[Int, Field(ge=1)] | None = Field(
        None, description="teacher layer (1-based) whose relations are learnt; None = the highest one cached"
    )
    relation_heads: Annotated[Int, Field(gt=0)] | None = Field(
        None, description="v2: relation heads (must divide both widths); None = the teacher's attention heads"
    )


class BertStudentConfig(_Strict):
    """A small BERT: k layers taken from the teacher (DistilBERT style) or random, distilled TinyBERT style."""

    layers: Annotated[Int, Field(gt=0, le=48)] = Field(3, description="transformer layers of the student")
    init: Literal["teacher", "random"] = Field(
        "teacher", description="teacher = embeddings, pooler, head and layers g(1)..g(k) copied from the teacher"
    )
    hidden_size: Annotated[Int, Field(gt=0)] | None = Field(None, description="random init only; None = the teacher's")
    intermediate_size: Annotated[Int, Field(gt=0)] | None = Field(
        None, description="random init only; None = 4 x hidden"
    )
    num_attention_heads: Annotated[Int, Field(gt=0)] | None = Field(
        None, description="random init only; None = the teacher's"
    )
    layer_map: list[Annotated[Int, Field(ge=0)]] | None = Field(
        None,
        description="teacher hidden state g(m) for student hidden state m = 0..k (0 = embeddings); None = "
        "the uniform TinyBERT mapping",
    )
    attention_loss: Flag = Field(
        True,
        description="also match attention probabilities of the mapped layers (needs them in the intermediate cache)",
    )
    hidden_loss: Literal["mse", "cosine"] = Field(
        "mse",
        description="intermediate hidden-state loss: mse = TinyBERT's; cosine = DistilBERT's cosine-embedding "
        "loss, 1 - cos over the real tokens",
    )
    hidden_layers: Literal["all", "last"] = Field(
        "all",
        description="all = embeddings and every mapped layer (TinyBERT); last = the last student layer against "
        "its mapped teacher layer only (DistilBERT)",
    )
    minilm: MiniLmConfig | None = Field(
        None,
        description="MiniLM's intermediate loss (KL of attention distributions and relations) instead of "
        "TinyBERT's; needs teacher.minilm_layers in the run's intermediate cache; None = TinyBERT's",
    )
    intermediate_epochs: Annotated[Int, Field(ge=0, le=100)] = Field(
        2, description="epochs of embedding / hidden-state / attention distillation (on the run's intermediate cache)"
    )
    intermediate_lr: Annotated[Number, Field(gt=0.0, lt=1.0)] = Field(
        1e-4, description="intermediate-layer step learning rate"
    )
    lr: Annotated[Number, Field(gt=0.0, lt=1.0)] = Field(5e-5, description="prediction-layer step learning rate")
    batch_size: Annotated[Int, Field(gt=0)] = Field(32, description="rows per step")
    epochs: Annotated[Int, Field(gt=0, le=100)] = Field(2, description="epochs of the prediction-layer step")
    warmup_ratio: Annotated[Number, Field(ge=0.0, lt=1.0)] = Field(
        0.1, description="share of the steps with a linearly rising learning rate"
    )


class RunConfig(_Strict):
    """One row of the result table."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")] = Field(
        description="the run's name: its row of the result table and its output folder"
    )
    model: Literal["bilstm", "bert"] = Field(description="bilstm = Tang et al.'s BiLSTM; bert = a small BERT")
    data: CacheName = Field(description="teacher cache to train on, e.g. augmented/train/tang or examples/train")
    loss: Literal["hard", "soft", "mse", "mix"] = Field(
        "mse",
        description="hard = cross-entropy on labels only; soft = Hinton soft cross-entropy x T^2; mse = Tang's "
        "MSE between logits; mix = alpha x hard + (1 - alpha) x soft",
    )
    temperature: Annotated[Number, Field(gt=0.0)] = Field(1.0, description="T of the soft loss")
    alpha: Annotated[Number, Field(ge=0.0, le=1.0)] = Field(0.5, description="weight of the hard loss in mix")
    intermediate: CacheName | None = Field(
        None,
        description="bert only: cache with hidden states (and attentions) for the intermediate-layer step; "
        "None = no intermediate step",
    )
    epochs: Annotated[Int, Field(gt=0, le=100)] | None = Field(None, description="None = the model's default")
    max_rows: Annotated[Int, Field(gt=0)] | None = Field(
        None, description="train on the first max_rows rows of each cache only"
    )
    fraction: Annotated[Number, Field(gt=0.0, le=1.0)] = Field(
        1.0,
        description="train on this share of the rows of the run's data cache, spread over the whole cache "
        "(a fixed hash of the row number: the same rows for every seed and epoch)",
    )
    teachers: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]] | None = Field(
        None,
        description="learn from an ensemble: the teachers whose cached logits are combined ('main' = the "
        "cache's own teacher, else names of teacher.ensemble); None = the main teacher alone",
    )
    combine: Literal["prob_mean", "logit_mean"] = Field(
        "prob_mean",
        description="how the teachers' logits are combined: prob_mean = arithmetic mean of softmax(z / T) "
        "(as logits T log p); logit_mean = mean of the logits (geometric mean of the probabilities)",
    )
    weights: list[Annotated[Number, Field(ge=0.0)]] | None = Field(
        None, description="fixed weight per teacher, in the order of teachers; None = equal"
    )

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.intermediate is not None and self.model != "bert":
            raise ValueError(f"run {self.name}: intermediate is for bert students only")
        if self.teachers is not None and (not self.teachers or len(set(self.teachers)) != len(self.teachers)):
            raise ValueError(f"run {self.name}: teachers must name distinct teachers, got {self.teachers}")
        if self.weights is not None:
            if self.teachers is None or len(self.weights) != len(self.teachers):
                raise ValueError(f"run {self.name}: weights needs one number per teacher of teachers")
            if sum(self.weights) <= 0:
                raise ValueError(f"run {self.name}: weights must not all be 0")
        return self


class StudentConfig(_Strict):
    """Students trained offline from the teacher caches."""

    runs: list[RunConfig] = Field(min_length=1, description="the runs, each trained once per seed")
    seeds: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1, description="seeds of every run")
    dev_split: str = Field("dev", description="ingested split for the per-epoch evaluation (best epoch kept)")
    test_split: str | None = Field("test", description="ingested split for the final evaluation; None = none")
    bilstm: BiLstmConfig = BiLstmConfig()
    bert: BertStudentConfig = BertStudentConfig()
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = a GPU when there is one")
    threads: Annotated[Int, Field(gt=0)] | None = Field(None, description="torch CPU threads; None = all CPUs")
    shuffle_buffer: Annotated[Int, Field(gt=0)] = Field(
        20_000, description="rows held by the streaming shuffle buffer (memory bound of the reader)"
    )
    teacher_row: Flag = Field(True, description="put the teacher's own test accuracy, size and speed in the table")

    @model_validator(mode="after")
    def _distinct(self) -> StudentConfig:
        names = [r.name for r in self.runs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"run names must be distinct, repeated: {dup}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        return self
