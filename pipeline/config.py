"""The typed job configuration: one YAML file per job under ``jobs/``.

Everything is validated before any work starts. Unknown keys, wrong types, impossible values
and missing input files fail with a message that names the file, the key and what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .augment.settings import (  # noqa: F401  (re-exported: other modules import these from here)
    DEFAULT_SPACY_MODEL,
    AugmentConfig,
    GloveConfig,
    TangConfig,
    TinyBertConfig,
)
from .config_loader import MAX_YAML_VALUES, _expanded_size, _format_errors, _JobLoader
from .errors import PipelineError
from .ingest.settings import (  # noqa: F401  (as above)
    FORMATS,
    ColumnMap,
    IngestConfig,
    InputSpec,
    format_from_path,
)
from .setting_types import Int, Number
from .student.settings import StudentConfig
from .tasks import TASKS, expand
from .teacher.settings import TeacherConfig

# Languages written without spaces between words: BERT's basic tokenizer would make a clause one word,
# and only Chinese has a word splitter here (jieba).
UNSPACED_LANGUAGES = {"ja": "Japanese", "th": "Thai", "lo": "Lao", "km": "Khmer", "my": "Burmese", "bo": "Tibetan"}


class ConfigError(PipelineError, ValueError):
    """A job configuration that cannot run; the message names the file, the key and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
