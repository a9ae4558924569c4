"""pipeline init: a job file written from a data folder, with its columns and label set read
from the files, that validates as written."""

import json
from pathlib import Path

import yaml

from pipeline.cli import main
from pipeline.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_glue_style_folder(tmp_path, capsys):
    out = tmp_path / "rt.yaml"
    assert main(["init", "rt", "--data", str(ROOT / "data/rt-polarity"), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    cfg = load_config(out)
    assert cfg.labels == ["negative", "positive"]
    assert list(cfg.inputs) == ["train", "dev", "test"]
    assert cfg.inputs["train"].columns.text_a == "sentence" and cfg.inputs["train"].columns.label == "label"
    assert cfg.teacher is not None and cfg.student is not None and cfg.student.test_split == "test"
    text = out.read_text(encoding="utf-8")
    assert text.count("#") >= 10  # a comment on the knobs
    # a second init does not overwrite without --force
    assert main(["init", "rt", "--data", str(ROOT / "data/rt-polarity"), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_pairs_numeric_labels_and_an_unlabelled_test_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [("how do i cook rice", "how to cook rice", "1"), ("what is ai", "who is al", "0")] * 3
    (data / "train.tsv").write_text(
        "question1\tquestion2\tis_duplicate\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8"
    )
    (data / "validation.csv").write_text('question1,question2,is_duplicate\n"a, b",c,0\nd,e,1\n', encoding="utf-8")
    (data / "test.jsonl").write_text(json.dumps({"question1": "x", "question2": "y"}) + "\n", encoding="utf-8")
    out = tmp_path / "qqp.yaml"
    assert main(["init", "qqp", "--data", str(data), "--out", str(out)]) == 0
    cfg = load_config(out)
    assert cfg.task == "qqp" and cfg.labels == ["0", "1"]  # numbers in numeric order: id i is label i
    assert cfg.inputs["train"].columns.text_b == "question2"
    assert cfg.inputs["dev"].path.endswith("validation.csv") and cfg.inputs["dev"].columns.label == "is_duplicate"
    assert cfg.inputs["test"].columns.label is None  # the test file has no labels
    assert cfg.student is not None and cfg.student.test_split == "dev"


def test_no_label_set_when_values_are_too_many(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = "".join(f"sentence number {i}\tcategory {i}\n" for i in range(150))
    (data / "train.tsv").write_text("sentence\tlabel\n" + lines, encoding="utf-8")
    out = tmp_path / "free.yaml"
    assert main(["init", "free", "--data", str(data), "--out", str(out)]) == 0
    job = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert "labels" not in job and "score" not in job and "label" not in job["inputs"]["train"]["columns"]
    assert "teacher" not in job  # nothing to fine-tune on without labels
    load_config(out)


def test_numeric_scores_make_a_regression_job(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = "".join(f"sentence number {i}\t{i / 7:.3f}\n" for i in range(150))
    (data / "train.tsv").write_text("sentence\tscore\n" + lines, encoding="utf-8")
    out = tmp_path / "scores.yaml"
    assert main(["init", "scores", "--data", str(data), "--out", str(out)]) == 0
    cfg = load_config(out)
    assert cfg.regression and cfg.labels is None and (cfg.score.min, cfg.score.max) == (None, None)
    assert "0 to 21.286 in train" in out.read_text(encoding="utf-8")
    assert cfg.inputs["train"].columns.label == "score" and cfg.student.runs[0].loss == "mse"
    # a few decimal scores are a score too; a few integers (star ratings, 0 / 1) stay a label set
    (data / "train.tsv").write_text("sentence\tscore\na\t0.5\nb\t3.8\nc\t5.0\n", encoding="utf-8")
    assert main(["init", "scores", "--data", str(data), "--out", str(out), "--force"]) == 0
    assert load_config(out).regression
    (data / "train.tsv").write_text("sentence\tscore\na\t1\nb\t3\nc\t5\n", encoding="utf-8")
    assert main(["init", "scores", "--data", str(data), "--out", str(out), "--force"]) == 0
    assert load_config(out).labels == ["1", "3", "5"]
    # STS-B's preset: its range
    assert main(["init", "stsb", "--data", str(data), "--out", str(out), "--force"]) == 0
    stsb = load_config(out)
    assert stsb.task == "stsb" and (stsb.score.min, stsb.score.max) == (0.0, 5.0)


def test_unusable_folders_are_named(tmp_path, capsys):
    assert main(["init", "x", "--data", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\na\tb\n", encoding="utf-8")
    assert main(["init", "x", "--data", str(tmp_path)]) == 2
    assert "no train file" in capsys.readouterr().err
    (tmp_path / "train.tsv").write_text("foo\tbar\n1\t2\n", encoding="utf-8")
    assert main(["init", "x", "--data", str(tmp_path), "--out", str(tmp_path / "x.yaml")]) == 2
    assert "no text column" in capsys.readouterr().err
