"""Task presets: per task the augmentation defaults, the label set, the metrics and the layout of
its data folder (file per split, columns, header), so a job can name the task and the folder
(``task: mrpc``, ``data_dir: glue/MRPC``) and nothing else. A regression task (STS-B) gets a
``score`` range instead of a label set. Every value can be overridden in the
job: a split given under ``inputs`` replaces the preset's split key by key.

The GLUE layouts are those of the GLUE benchmark's own download (the TSV files its data script
writes; test files carry no labels). TinyBERT's tries N are the reference script's; Tang's
``n_iter`` follows the paper (20 for SST-2, 10 for MNLI and QQP; 20 elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SplitLayout:
    file: str  # relative to data_dir
    text_a: str
    text_b: str | None = None
    label: str | None = None  # None: an unlabelled split (GLUE test files)
    header: bool = True

    def input_spec(self, data_dir: str) -> dict:
        columns = {"text_a": self.text_a, "text_b": self.text_b, "label": self.label}
        return {
            "path": f"{data_dir.rstrip('/')}/{self.file}",
            "columns": {k: v for k, v in columns.items() if v is not None},
            "header": self.header,
        }


@dataclass(frozen=True)
class TaskPreset:
    tinybert_n: int
    tang_n_iter: int
    labels: tuple[str, ...] | None = None  # None: regression (a numeric score within score_range)
    metrics: tuple[str, ...] = ("accuracy",)  # the first is the task's headline metric
    splits: dict[str, SplitLayout] = field(default_factory=dict)
    dev_split: str = "dev"
    test_split: str | None = "test"  # the student's final evaluation; None where its labels are hidden
    score_range: tuple[float, float] = (0.0, 5.0)  # regression only

    @property
    def regression(self) -> bool:
        return self.labels is None


def _single(text: str, label: str, test_text: str = "sentence") -> dict[str, SplitLayout]:
    return {
        "train": SplitLayout("train.tsv", text, label=label),
        "dev": SplitLayout("dev.tsv", text, label=label),
        "test": SplitLayout("test.tsv", test_text),
    }


def _pairs(a: str, b: str, label: str) -> dict[str, SplitLayout]:
    return {
        "train": SplitLayout("train.tsv", a, b, label),
        "dev": SplitLayout("dev.tsv", a, b, label),
        "test": SplitLayout("test.tsv", a, b),
    }


BINARY = ("0", "1")
ENTAILMENT = ("entailment", "not_entailment")

TASKS: dict[str, TaskPreset] = {
    "cola": TaskPreset(
        30,
        20,
        BINARY,
        ("mcc", "accuracy"),
        {  # no header in train / dev: source, label, original label, sentence
            "train": SplitLayout("train.tsv", "3", label="1", header=False),
            "dev": SplitLayout("dev.tsv", "3", label="1", header=False),
            "test": SplitLayout("test.tsv", "sentence"),
        },
        test_split=None,
    ),
    "sst2": TaskPreset(20, 20, BINARY, ("accuracy",), _single("sentence", "label"), test_split=None),
    "mrpc": TaskPreset(
        30,
        20,
        BINARY,
        ("f1", "accuracy"),
        _pairs("#1 String", "#2 String", "Quality"),
        test_split=None,
    ),
    "qqp": TaskPreset(
        10, 10, BINARY, ("f1", "accuracy"), _pairs("question1", "question2", "is_duplicate"), test_split=None
    ),
    "stsb": TaskPreset(
        30, 20, None, ("pearson", "spearman"), _pairs("sentence1", "sentence2", "score"), test_split=None
    ),
    "mnli": TaskPreset(
        10,
        10,
        ("contradiction", "entailment", "neutral"),
        ("accuracy",),
        {
            "train": SplitLayout("train.tsv", "sentence1", "sentence2", "gold_label"),
            "dev_matched": SplitLayout("dev_matched.tsv", "sentence1", "sentence2", "gold_label"),
            "dev_mismatched": SplitLayout("dev_mismatched.tsv", "sentence1", "sentence2", "gold_label"),
            "test_matched": SplitLayout("test_matched.tsv", "sentence1", "sentence2"),
            "test_mismatched": SplitLayout("test_mismatched.tsv", "sentence1", "sentence2"),
        },
        dev_split="dev_matched",
        test_split="dev_mismatched",
    ),
    "qnli": TaskPreset(20, 20, ENTAILMENT, ("accuracy",), _pairs("question", "sentence", "label"), test_split=None),
    "rte": TaskPreset(30, 20, ENTAILMENT, ("accuracy",), _pairs("sentence1", "sentence2", "label"), test_split=None),
    "wnli": TaskPreset(30, 20, BINARY, ("accuracy",), _pairs("sentence1", "sentence2", "label"), test_split=None),
    # the bundled Rotten Tomatoes sentences (data/rt-polarity): labelled test split of its own
    "rt-polarity": TaskPreset(
        20,
        20,
        ("negative", "positive"),
        ("accuracy",),
        {split: SplitLayout(f"{split}.tsv", "sentence", label="label") for split in ("train", "dev", "test")},
    ),
}


def expand(data: dict) -> dict:
    """A raw job mapping with ``data_dir`` set: the preset's inputs (a split under ``inputs`` in the
    job replaces the preset's keys of that split; ``null`` drops the split), its label set and the
    student's evaluation splits, unless the job gives them."""
    preset = TASKS.get(str(data.get("task")))
    data_dir = data.get("data_dir")
    if preset is None or not isinstance(data_dir, str):
        return data
    given = data.get("inputs") or {}
    if not isinstance(given, dict):
        return data  # the model's own validation names the problem
    inputs: dict = {split: layout.input_spec(data_dir) for split, layout in preset.splits.items()}
    for split, spec in given.items():
        if spec is None:
            inputs.pop(split, None)
        elif isinstance(spec, dict) and split in inputs:
            inputs[split] = {**inputs[split], **spec}
        else:
            inputs[split] = spec
    out = {**data, "inputs": inputs}
    if "labels" not in data and "score" not in data:
        if preset.regression:
            out["score"] = {"min": preset.score_range[0], "max": preset.score_range[1]}
        else:
            out["labels"] = list(preset.labels or ())
    student = data.get("student")
    if isinstance(student, dict):
        splits = {"dev_split": preset.dev_split, "test_split": preset.test_split}
        out["student"] = {**{k: v for k, v in splits.items() if v is None or v in inputs}, **student}
    return out
