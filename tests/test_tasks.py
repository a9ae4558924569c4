"""Task presets: a job names the task and its data folder in the GLUE layout and nothing else;
every preset value can be overridden; the task's metrics are the standard ones."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from task_jobs import run_small_job

from pipeline.config import ConfigError, parse_config
from pipeline.ingest.stage import run_ingest
from pipeline.metrics import accuracy_f1
from pipeline.student.stage import markdown_table
from pipeline.tasks import TASKS

PAIRS = Path(__file__).resolve().parents[1] / "data" / "samples" / "synthetic_pairs.tsv"
RT = Path(__file__).resolve().parents[1] / "data" / "rt-polarity" / "train.tsv"

# Small files in the layouts of the GLUE benchmark's download (column order and names as there).
GLUE = {
    "cola": {
        # train / dev have no header: source, label, original label, sentence
        "train.tsv": "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.\nbc01\t1\t\tThe sailors rode the breeze.\n",
        "dev.tsv": "gj04\t1\t\tThe wagon rumbled down the road.\ngj04\t0\t*\tThe car honked down the road.\n",
        "test.tsv": "index\tsentence\n0\tBill whistled past the house.\n1\tThe car honked its way.\n",
    },
    "mrpc": {
        "train.tsv": "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t702876\t702977\tAmrozi accused his brother.\tReferring to him, Amrozi accused his brother.\n0\t2108705\t2108831\tShares rose 5 cents.\tShares fell sharply.\n",
        "dev.tsv": "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said so.\tHe had said so.\n",
        "test.tsv": "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1089874\t1089925\tPCCW's chief operating officer left.\tThe officer quit.\n",
    },
    "qqp": {
        "train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t1\t2\tHow do I learn Python?\tWhat is the best way to learn Python?\t1\n2\t3\t4\tWhy is the sky blue?\tHow tall is Everest?\t0\n",
        "dev.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n3\t5\t6\tIs tea good?\tIs tea healthy?\t1\n",
        "test.tsv": "id\tquestion1\tquestion2\n0\tWhat is AI?\tWhat is artificial intelligence?\n",
    },
    "mnli": {
        "train.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
        "0\t31193\t31193n\tgovernment\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tConceptually cream skimming has two dimensions.\tProduct and geography are what make it work.\tneutral\tneutral\n"
        "1\t101457\t101457e\ttelephone\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tyou know during the season\tYou lose the things.\tentailment\tentailment\n"
        "2\t134793\t134793c\tfiction\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tOne of our number will carry out your instructions.\tA member will refuse.\tcontradiction\tcontradiction\n",
        "dev_matched.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
        "0\t63735\t63735n\tslate\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tThe new rights are nice enough\tEveryone really likes the rights.\tneutral\tentailment\tneutral\tneutral\tneutral\tneutral\n",
        "dev_mismatched.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
        "0\t75290\t75290c\tletters\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tYour contribution helped.\tIt did not help.\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\n",
        "test_matched.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\n"
        "0\t31493\t31493\ttravel\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tHierbas is a drink.\tHierbas is a name.\n",
        "test_mismatched.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\n"
        "0\t16130\t16130\tfacetoface\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tWhat have you decided?\tWhat are you doing?\n",
    },
}
ROWS = {  # split -> (rows, labelled)
    "cola": {"train": (3, True), "dev": (2, True), "test": (2, False)},
    "mrpc": {"train": (2, True), "dev": (1, True), "test": (1, False)},
    "qqp": {"train": (2, True), "dev": (1, True), "test": (1, False)},
    "mnli": {
        "train": (3, True),
        "dev_matched": (1, True),
        "dev_mismatched": (1, True),
        "test_matched": (1, False),
        "test_mismatched": (1, False),
    },
}


def _folder(tmp_path, task):
    folder = tmp_path / task.upper()
    folder.mkdir()
    for name, text in GLUE[task].items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("task", sorted(GLUE))
def test_a_job_names_the_task_and_the_folder(tmp_path, task):
    folder = _folder(tmp_path, task)
    cfg = parse_config(
        {"name": task, "task": task, "data_dir": str(folder), "output_dir": str(tmp_path / "out")}, "job.yaml"
    )
    preset = TASKS[task]
    assert cfg.labels == list(preset.labels) and sorted(cfg.inputs) == sorted(ROWS[task])
    run_ingest(cfg, executor="local")
    for split, (rows, labelled) in ROWS[task].items():
        table = pq.read_table(tmp_path / "out" / "examples" / split)
        assert table.num_rows == rows, split
        labels = table.column("label").to_pylist()
        assert all(l in preset.labels for l in labels) if labelled else set(labels) == {None}
        pair = preset.splits[split].text_b is not None
        assert all((b is not None) == pair for b in table.column("text_b").to_pylist())
        assert not (tmp_path / "out" / "rejects" / split).exists() or not any(
            p.stat().st_size for p in (tmp_path / "out" / "rejects" / split).glob("*.jsonl")
        )
    if task == "mrpc":
        first = pq.read_table(tmp_path / "out/examples/train").to_pylist()[0]
        assert first["text_a"] == "Amrozi accused his brother." and first["label"] == "1"


def test_preset_values_can_be_overridden(tmp_path):
    folder = _folder(tmp_path, "mnli")
    job = {
        "name": "m",
        "task": "mnli",
        "data_dir": str(folder),
        "output_dir": str(tmp_path / "out"),
        "inputs": {"train": {"limit": 2}, "test_matched": None, "test_mismatched": None},
        "student": {"runs": [{"name": "b", "model": "bilstm", "data": "examples/train", "loss": "hard"}]},
    }
    cfg = parse_config(job, "job.yaml", check_files=False)
    assert sorted(cfg.inputs) == ["dev_matched", "dev_mismatched", "train"]
    assert cfg.inputs["train"].limit == 2 and cfg.inputs["train"].columns.text_b == "sentence2"
    assert cfg.student.dev_split == "dev_matched" and cfg.student.test_split == "dev_mismatched"
    cfg = parse_config({**job, "labels": ["a", "b", "c"], "student": {**job["student"], "dev_split": "train"}}, "j")
    assert cfg.labels == ["a", "b", "c"] and cfg.student.dev_split == "train"
    # GLUE's test labels are hidden: the student evaluates on dev only
    sst2 = parse_config(
        {**job, "task": "cola", "data_dir": str(_folder(tmp_path, "cola")), "inputs": {}}, "j", check_files=False
    )
    assert sst2.student.test_split is None and sst2.student.dev_split == "dev"


def test_a_missing_file_is_named(tmp_path):
    folder = _folder(tmp_path, "mrpc")
    (folder / "test.tsv").unlink()
    with pytest.raises(ConfigError, match=r"test\.tsv"):
        parse_config({"name": "m", "task": "mrpc", "data_dir": str(folder), "output_dir": str(tmp_path)}, "job.yaml")


@pytest.mark.parametrize("num_labels", [2, 3])
def test_metrics_equal_scikit_learn(num_labels):
    """GLUE's own evaluation computes these with scikit-learn: the same numbers here."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(num_labels)
    labels = rng.integers(0, num_labels, 500)
    pred = np.where(rng.random(500) < 0.7, labels, rng.integers(0, num_labels, 500))
    labels[:20] = -100  # unlabelled rows are left out
    got = accuracy_f1(pred, labels, num_labels)
    keep = labels >= 0
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(labels[keep], pred[keep]))
    assert got["mcc"] == pytest.approx(metrics.matthews_corrcoef(labels[keep], pred[keep]))
    assert got["macro_f1"] == pytest.approx(metrics.f1_score(labels[keep], pred[keep], average="macro"))
    if num_labels == 2:
        assert got["f1"] == pytest.approx(metrics.f1_score(labels[keep], pred[keep]))
    assert accuracy_f1(np.zeros(10, int), np.zeros(10, int), 2)["mcc"] == 0.0  # one class only: 0, not nan


def test_the_table_shows_the_task_metric():
    row = {
        "name": "s",
        "data": "examples/train",
        "loss": "hard",
        "seeds": [1, 2],
        "accuracy_mean": 0.8,
        "accuracy_std": 0.01,
        "macro_f1_mean": 0.7,
        "mcc_mean": 0.412,
        "mcc_std": 0.02,
        "metric": "mcc",
        "metric_mean": 0.412,
        "metric_std": 0.02,
        "params": 1e6,
        "sentences_per_s": 100.0,
    }
    table = markdown_table([row])
    assert "| test MCC (mean ± std) | accuracy | macro-F1 |" in table
    assert "| 41.20 ± 2.00 (2 seeds) | 80.00 | 70.00 |" in table
    plain = markdown_table([{**row, "metric": "accuracy"}])
    assert "test MCC" not in plain and "| 80.00 ± 1.00 (2 seeds) | 70.00 |" in plain


def _mnli_folder(folder, train: int, dev: int, test: int):
    """A small folder in MNLI's layout from the bundled synthetic sentences: a premise, and a
    hypothesis that repeats it, negates it or is another premise."""
    import csv

    rows = list(csv.DictReader(open(PAIRS, encoding="utf-8"), delimiter="\t"))
    premises = [r["sentence1"] for r in rows[::2]]
    head = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2"

    def make(n, labelled):
        lines = [head + ("\tlabel1\tgold_label" if labelled else "")]
        for i in range(n):
            p = premises[i % len(premises)]
            kind = ("entailment", "contradiction", "neutral")[i % 3]
            h = {"entailment": p, "contradiction": f"It is not true that {p[0].lower()}{p[1:]}"}.get(
                kind, premises[(7 * i + 3) % len(premises)]
            )
            tail = f"\t{kind}\t{kind}" if labelled else ""
            lines.append(f"{i}\t{i}\t{i}x\tfiction\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t{p}\t{h}{tail}")
        return "\n".join(lines) + "\n"

    folder.mkdir()
    for name, n, labelled in [
        ("train.tsv", train, True),
        ("dev_matched.tsv", dev, True),
        ("dev_mismatched.tsv", dev, True),
        ("test_matched.tsv", test, False),
        ("test_mismatched.tsv", test, False),
    ]:
        (folder / name).write_text(make(n, labelled), encoding="utf-8")


def test_nli_job_end_to_end_with_an_unlabelled_split(tmp_path, torch_one_thread):
    """MNLI's layout, three classes, pairs, through every stage with the bundled MiniLM teacher and
    both students; the unlabelled test split is augmented and cached, and a student learns from
    the teacher's soft labels on it alone."""
    from pipeline.cache import open_cache

    _mnli_folder(tmp_path / "MNLI", train=60, dev=15, test=9)
    runs = [
        {"name": "bilstm", "model": "bilstm", "data": "augmented/test_matched/tinybert", "loss": "mse"},
        {"name": "bert", "model": "bert", "data": "examples/train", "loss": "soft", "intermediate": "examples/train"},
    ]
    out = run_small_job(
        tmp_path,
        "mnli",
        tmp_path / "MNLI",
        splits=["train", "test_matched"],
        cached=["augmented/test_matched/tinybert"],
        epochs=1,
        runs=runs,
    )
    unlabelled = open_cache(str(out / "teacher/augmented/test_matched/tinybert")).read_table()
    assert unlabelled.num_rows > 9 and set(unlabelled.column("label").to_pylist()) == {None}
    assert unlabelled.schema.field("logits").type.list_size == 3  # the teacher's soft labels: its only target
    rows = {r["name"]: r for r in json.loads((out / "student/results.json").read_text())["rows"]}
    assert set(rows) == {"teacher", "bilstm", "bert"} and all(0 <= r["accuracy_mean"] <= 1 for r in rows.values())
    assert json.loads((out / "student/bilstm-seed1/metrics.json").read_text())["train_rows"] == unlabelled.num_rows
    assert (out / "report.html").stat().st_size > 10_000


def test_single_sentence_job_end_to_end(tmp_path, torch_one_thread):
    """CoLA's layout (train / dev without a header, test with one and no labels), one sentence per
    example, Matthews correlation as the headline: every stage, both students, scored on dev."""
    import csv

    sentences = [r["sentence"] for r in csv.DictReader(open(RT, encoding="utf-8"), delimiter="\t")][:84]

    def line(i: int, s: str) -> str:  # acceptable: a review sentence; not: its words reversed
        label = i % 2
        text = s if label else " ".join(reversed(s.split()))
        return f"gj04\t{label}\t{'' if label else '*'}\t{text}"

    folder = tmp_path / "CoLA"
    folder.mkdir()
    (folder / "train.tsv").write_text(
        "\n".join(line(i, s) for i, s in enumerate(sentences[:60])) + "\n", encoding="utf-8"
    )
    (folder / "dev.tsv").write_text(
        "\n".join(line(i, s) for i, s in enumerate(sentences[60:75])) + "\n", encoding="utf-8"
    )
    test = "".join(f"{i}\t{s}\n" for i, s in enumerate(sentences[75:]))
    (folder / "test.tsv").write_text("index\tsentence\n" + test, encoding="utf-8")
    runs = [
        {"name": "bilstm", "model": "bilstm", "data": "augmented/train/tinybert", "loss": "mse"},
        {
            "name": "bert",
            "model": "bert",
            "data": "augmented/train/tinybert",
            "loss": "soft",
            "intermediate": "examples/train",
        },
    ]
    out = run_small_job(
        tmp_path, "cola", folder, splits=["train"], cached=["augmented/train/tinybert"], epochs=1, runs=runs
    )
    rows = {r["name"]: r for r in json.loads((out / "student/results.json").read_text())["rows"]}
    assert set(rows) == {"teacher", "bilstm", "bert"}
    for r in rows.values():
        assert r["metric"] == "mcc" and r["eval_split"] == "dev" and -1 <= r["mcc_mean"] <= 1
    assert "| dev MCC (mean ± std) | accuracy | macro-F1 |" in (out / "student/results.md").read_text()
    assert set(pq.read_table(out / "examples/test").column("label").to_pylist()) == {None}
