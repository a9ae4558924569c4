"""Regression tasks (STS-B and any numeric target): a validated score from ingest to the students,
a one-output teacher head, squared-error losses and correlation metrics."""

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from task_jobs import run_small_job

from pipeline.config import ConfigError, load_config, parse_config
from pipeline.ingest.stage import run_ingest
from pipeline.metrics import average_ranks, correlations, pearson, spearman, task_scores
from pipeline.student import losses
from pipeline.student.stage import markdown_table

PAIRS = Path(__file__).resolve().parents[1] / "data" / "samples" / "synthetic_pairs.tsv"
STSB_HEAD = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"


def _stsb_folder(folder: Path, train: int, dev: int, test: int, bad_rows: tuple[str, ...] = ()) -> Path:
    """A folder in STS-B's GLUE layout (test without scores) from the bundled synthetic sentences:
    a hypothesis that follows from the premise scores 4-5, one that contradicts it 1.5-2.5, another
    premise 0-0.8."""
    rows = list(csv.DictReader(open(PAIRS, encoding="utf-8"), delimiter="\t"))

    def pair(i: int) -> tuple[str, str, float]:
        r = rows[i % len(rows)]
        if i % 5 == 4:  # an unrelated sentence
            return r["sentence1"], rows[(7 * i + 3) % len(rows)]["sentence2"], round(0.2 * (i // 5 % 5), 2)
        base = 4.0 if r["label"] == "entailment" else 1.5
        return r["sentence1"], r["sentence2"], base + 0.25 * (i % 4)

    def make(n: int, scored: bool, extra=()) -> str:
        lines = [STSB_HEAD + ("\tscore" if scored else "")]
        for i in range(n):
            a, b, score = pair(i)
            lines.append(
                f"{i}\tmain-news\tsynthetic\t2026\t{i}\tnone\tnone\t{a}\t{b}" + (f"\t{score}" if scored else "")
            )
        lines += [
            f"{n + k}\tmain-news\tsynthetic\t2026\t0\tnone\tnone\tA sentence.\tAnother.\t{v}"
            for k, v in enumerate(extra)
        ]
        return "\n".join(lines) + "\n"

    folder.mkdir()
    (folder / "train.tsv").write_text(make(train, True, bad_rows), encoding="utf-8")
    (folder / "dev.tsv").write_text(make(dev, True), encoding="utf-8")
    (folder / "test.tsv").write_text(make(test, False), encoding="utf-8")
    return folder


# --- config and ingest ----------------------------------------------------------------------------
def test_the_stsb_preset_is_a_regression_job(tmp_path):
    folder = _stsb_folder(tmp_path / "STS-B", 4, 2, 2)
    cfg = parse_config({"name": "s", "task": "stsb", "data_dir": str(folder), "output_dir": str(tmp_path)}, "j.yaml")
    assert cfg.regression and cfg.labels is None and cfg.output_names == ["score"]
    assert (cfg.score.min, cfg.score.max) == (0.0, 5.0)
    assert cfg.inputs["train"].columns.label == "score" and cfg.inputs["test"].columns.label is None
    job = {"name": "s", "task": "stsb", "data_dir": str(folder), "output_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match="loss soft .* needs classes"):
        parse_config(
            {**job, "student": {"runs": [{"name": "b", "model": "bilstm", "data": "examples/train", "loss": "soft"}]}},
            "j",
        )
    with pytest.raises(ConfigError, match="exclude each other"):
        parse_config({**job, "labels": ["0", "1"], "score": {"min": 0, "max": 5}}, "j")
    with pytest.raises(ConfigError, match=r"score\.min \(3\.0\) is above score\.max \(1\.0\)"):
        parse_config({**job, "score": {"min": 3, "max": 1}}, "j")
    open_range = parse_config({**job, "score": {}}, "j")  # no bounds: any finite number
    assert open_range.score.min is None and open_range.score.max is None


def test_ingest_validates_the_score_and_names_each_reject(tmp_path):
    folder = _stsb_folder(
        tmp_path / "STS-B", 6, 2, 2, bad_rows=("high", "5.5", "-0.1", "nan", "inf", "", "0", "5", "2.25")
    )
    cfg = parse_config(
        {"name": "s", "task": "stsb", "data_dir": str(folder), "output_dir": str(tmp_path / "out")}, "j.yaml"
    )
    summary = run_ingest(cfg, executor="local")
    train = pq.read_table(tmp_path / "out/examples/train")
    assert train.num_rows == 6 + 3  # 0, 5 and 2.25 are in range (bounds included)
    assert train.schema.field("score").type == "float" and set(train.column("label_id").to_pylist()) == {None}
    assert train.column("score").to_pylist()[-3:] == [0.0, 5.0, 2.25]
    assert train.column("label").to_pylist()[-3:] == ["0", "5", "2.25"]  # the label as written
    rejects = [json.loads(line) for f in sorted((tmp_path / "out/rejects/train").glob("*.jsonl")) for line in open(f)]
    reasons = [(r["reason"], r["detail"]) for r in rejects]
    assert reasons == [
        ("label_not_a_number", "label 'high' is not a number"),
        ("label_out_of_range", "label 5.5 is outside the score range [0.0, 5.0]"),
        ("label_out_of_range", "label -0.1 is outside the score range [0.0, 5.0]"),
        ("label_not_a_number", "label 'nan' is not a finite number"),
        ("label_not_a_number", "label 'inf' is not a finite number"),
        ("missing_label", "label is empty"),
    ]
    split = summary["train"]
    assert split.rows_in == 15 and split.kept == 9 and split.rejected == 6
    assert split.rejected_by_reason == {"label_not_a_number": 3, "label_out_of_range": 2, "missing_label": 1}
    test = pq.read_table(tmp_path / "out/examples/test")
    assert test.num_rows == 2 and set(test.column("score").to_pylist()) == {None}


# --- metrics -------------------------------------------------------------------------------------
def test_correlations_match_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 6, 200).astype(float)  # many ties, as STS-B's scores have
    pred = gold + rng.normal(0, 1.5, 200)
    pred[:20] = pred[0]  # tied predictions too
    assert pearson(pred, gold) == pytest.approx(stats.pearsonr(pred, gold)[0], abs=1e-12)
    assert spearman(pred, gold) == pytest.approx(stats.spearmanr(pred, gold)[0], abs=1e-12)
    np.testing.assert_allclose(average_ranks(gold), stats.rankdata(gold))


def test_correlations_by_hand():
    assert average_ranks(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]
    # Pearson of (1, 2, 3) and (1, 2, 4): covariance 3 / sqrt(2 * 4.667) = 0.98198
    assert pearson(np.array([1.0, 2, 3]), np.array([1.0, 2, 4])) == pytest.approx(3 / np.sqrt(2 * 14 / 3))
    assert spearman(np.array([1.0, 2, 3]), np.array([1.0, 2, 40])) == pytest.approx(1.0)
    assert pearson(np.ones(5), np.arange(5.0)) == 0.0  # a constant prediction: 0, not nan
    got = correlations(np.array([1.0, 2.0, 9.0, 3.0]), np.array([1.0, 2.0, np.nan, 4.0]))  # the NaN row is unscored
    assert got["pearson"] == pytest.approx(pearson(np.array([1.0, 2, 3]), np.array([1.0, 2, 4])))
    assert got["mse"] == pytest.approx(1 / 3)
    scores = task_scores(np.array([[0.5], [1.5], [2.5]]), np.array([0.0, 2.0, 3.0]), regression=True)
    assert set(scores) == {"pearson", "spearman", "mse"} and scores["spearman"] == pytest.approx(1.0)


# --- losses -------------------------------------------------------------------------------------
def test_regression_losses_by_hand():
    student = torch.tensor([[1.0], [2.0], [4.0]])
    teacher = torch.tensor([[1.5], [2.0], [3.0]])
    gold = torch.tensor([2.0, float("nan"), 3.0])  # the second row has no score
    hard = losses.prediction_loss("hard", student, teacher, gold)
    assert hard.item() == pytest.approx((1.0 + 1.0) / 2)  # (1-2)², (4-3)² over the two scored rows
    mse = losses.prediction_loss("mse", student, teacher, gold)
    assert mse.item() == pytest.approx((0.25 + 0.0 + 1.0) / 3)  # every row has a teacher prediction
    mix = losses.prediction_loss("mix", student, teacher, gold, alpha=0.25, temperature=4.0)
    assert mix.item() == pytest.approx(0.25 * 1.0 + 0.75 * 1.25 / 3)  # no temperature in regression
    none = losses.prediction_loss("hard", student.requires_grad_(), teacher, torch.full((3,), float("nan")))
    assert none.item() == 0.0 and none.requires_grad
    with pytest.raises(ValueError, match="needs classes"):
        losses.prediction_loss("soft", student, teacher, gold)


def test_the_table_of_a_regression_task():
    row = {
        "name": "s",
        "data": "examples/train",
        "loss": "mse",
        "seeds": [1, 2, 3],
        "pearson_mean": 0.8512,
        "pearson_std": 0.012,
        "spearman_mean": 0.84,
        "mse_mean": 0.61234,
        "metric": "pearson",
        "metric_mean": 0.8512,
        "metric_std": 0.012,
        "params": 2e6,
        "sentences_per_s": 500.0,
    }
    table = markdown_table([row])
    assert "| test Pearson (mean ± std) | Spearman | MSE |" in table
    assert "| 85.12 ± 1.20 (3 seeds) | 84.00 | 0.6123 |" in table and "accuracy" not in table


# --- end to end ---------------------------------------------------------------------------------
def test_stsb_job_end_to_end(tmp_path, torch_one_thread):
    """STS-B's layout through every stage with the bundled MiniLM teacher (fine-tuned with a
    one-output head) and both students, each learning from the teacher's predicted score; the
    unlabelled test split is augmented and cached with the teacher's prediction as its only target."""
    from pipeline.cache import open_cache

    _stsb_folder(tmp_path / "STS-B", train=60, dev=15, test=8, bad_rows=("high",))
    runs = [
        {"name": "bilstm", "model": "bilstm", "data": "augmented/train/tinybert", "loss": "mse"},
        {"name": "bilstm-test", "model": "bilstm", "data": "augmented/test/tinybert", "loss": "mse"},
        {"name": "bert", "model": "bert", "data": "examples/train", "loss": "mix", "intermediate": "examples/train"},
    ]
    cached = ["augmented/train/tinybert", "augmented/test/tinybert"]
    out = run_small_job(
        tmp_path, "stsb", tmp_path / "STS-B", splits=["train", "test"], cached=cached, epochs=2, runs=runs
    )
    ft = json.loads((out / "teacher/model/finetune_metrics.json").read_text())
    assert ft["regression"] and ft["metric"] == "pearson" and -1 <= ft["dev_pearson"] <= 1
    cache = open_cache(str(out / "teacher/augmented/train/tinybert"))
    assert cache.labels == ["score"] and cache.manifest["teacher"]["problem_type"] == "regression"
    table = cache.read_table()
    assert table.schema.field("logits").type.list_size == 1
    variants = table.filter(pa.array(table.column("variant").to_numpy() > 0))
    parents = {r["example_id"]: r["score"] for r in table.to_pylist() if r["variant"] == 0}
    assert all(parents[r["parent_id"]] == r["score"] for r in variants.to_pylist())  # a variant keeps its score
    unlabelled = open_cache(str(out / "teacher/augmented/test/tinybert")).read_table()
    assert unlabelled.num_rows > 8 and set(unlabelled.column("score").to_pylist()) == {None}
    assert np.isfinite(np.asarray(unlabelled.column("logits").to_pylist())).all()
    rows = {r["name"]: r for r in json.loads((out / "student/results.json").read_text())["rows"]}
    assert set(rows) == {"teacher", "bilstm", "bilstm-test", "bert"}
    for r in rows.values():  # STS-B's test scores are hidden: every row is scored on dev
        assert r["metric"] == "pearson" and r["eval_split"] == "dev"
        assert -1 <= r["pearson_mean"] <= 1 and r["mse_mean"] >= 0
    history = json.loads((out / "student/bert-seed1/metrics.json").read_text())["history"]
    assert {"dev_pearson", "dev_spearman", "dev_mse"} <= set(history[-1])
    assert "| dev Pearson (mean ± std) | Spearman | MSE |" in (out / "student/results.md").read_text()
    html = (out / "report.html").read_text()
    assert "Pearson" in html and "teacher prediction against the gold score" in html


def test_the_stsb_result_job_parses():
    """jobs/stsb.yaml (its data is written by data/make_stsb.py, not committed)."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "jobs" / "stsb.yaml", check_files=False)
    assert cfg.regression and cfg.student.test_split == "test"
    assert cfg.inputs["test"].columns.label == "score" and cfg.inputs["test"].columns.text_b == "sentence2"
