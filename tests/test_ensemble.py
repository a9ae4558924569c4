"""Teacher ensembles: each teacher's logits in a cache of its own beside the main cache, listed in
ensemble.json; adding a teacher computes only its cache, removing one rewrites the listing; the
combination is a view (readers, student stage), tested by hand."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.cache import CacheError, open_cache
from pipeline.cache.ensemble import ENSEMBLE_NAME, combine, open_ensemble
from pipeline.config import ConfigError, parse_config
from pipeline.teacher.settings import TeacherConfig
from pipeline.teacher.stage import run_teacher
from pipeline.testing import random_teacher, write_examples

LABELS = ["negative", "positive"]
GOOD, BAD = ["fine", "moving", "bright"], ["dull", "flat", "cold"]


# --- combining, by hand ----------------------------------------------------------------------------
def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_combine_by_hand():
    z = np.array([[[2.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [3.0, -1.0]], [[1.0, 1.0], [1.0, 2.0]]])  # 3 teachers, 2 rows
    # logit_mean: the mean of the logits; weighted
    np.testing.assert_allclose(combine(z, "logit_mean"), [[1.0, 1 / 3], [4 / 3, 2 / 3]], rtol=1e-6)
    np.testing.assert_allclose(combine(z, "logit_mean", [2, 1, 1]), [[5 / 4, 1 / 4], [1.0, 3 / 4]], rtol=1e-6)
    # prob_mean: softmax of the result (at T) is the mean of the teachers' softmax(z / T)
    for t in (1.0, 2.0, 5.0):
        got = combine(z, "prob_mean", temperature=t)
        np.testing.assert_allclose(_softmax(got / t), _softmax(z / t).mean(0), rtol=1e-5)
        weighted = combine(z, "prob_mean", [0.5, 0.25, 0.25], temperature=t)
        expected = 0.5 * _softmax(z[0] / t) + 0.25 * _softmax(z[1] / t) + 0.25 * _softmax(z[2] / t)
        np.testing.assert_allclose(_softmax(weighted / t), expected, rtol=1e-5)
    # row 0 by hand at T = 1: p = mean of (0.8808, 0.1192), (0.5, 0.5), (0.5, 0.5)
    p0 = (np.array([np.e**2, 1]) / (np.e**2 + 1) + 1.0) / 3
    np.testing.assert_allclose(combine(z, "prob_mean")[0], np.log(p0), rtol=1e-5)
    # one output (regression): the mean prediction either way
    scores = np.array([[[1.0]], [[2.0]], [[4.5]]])
    assert combine(scores, "prob_mean")[0, 0] == pytest.approx(2.5) == combine(scores, "logit_mean")[0, 0]
    with pytest.raises(ValueError, match="weights must be 3"):
        combine(z, "prob_mean", [1, 1])
    with pytest.raises(ValueError, match="unknown combination"):
        combine(z, "median")


def test_config_checks_teachers():
    spec = {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}
    job = {
        "name": "t",
        "task": "sst2",
        "output_dir": "/tmp/x",
        "labels": LABELS,
        "inputs": {"train": spec, "dev": spec},
    }
    run = {"name": "r", "model": "bilstm", "data": "examples/train"}
    teacher = {"ensemble": [{"name": "b", "seed": 2}]}
    ok = parse_config(
        {**job, "teacher": teacher, "student": {"runs": [{**run, "teachers": ["main", "b"]}], "test_split": None}},
        "j",
        False,
    )
    assert ok.student.runs[0].teachers == ["main", "b"] and ok.teacher.ensemble[0].seed == 2
    with pytest.raises(ConfigError, match=r"names teachers \['c'\]"):
        parse_config(
            {**job, "teacher": teacher, "student": {"runs": [{**run, "teachers": ["main", "c"]}], "test_split": None}},
            "j",
            False,
        )
    with pytest.raises(ConfigError, match="one number per teacher"):
        parse_config(
            {**job, "student": {"runs": [{**run, "teachers": ["main"], "weights": [1, 2]}], "test_split": None}},
            "j",
            False,
        )
    with pytest.raises(ConfigError, match="not 'main'"):
        parse_config({**job, "teacher": {"ensemble": [{"name": "main"}]}}, "j", False)


# --- the teacher stage -------------------------------------------------------------------------------
def _rows(n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        y = int(rng.integers(2))
        words = list(rng.choice(["the", "film", "is", "a", "story"], size=int(rng.integers(2, 7))))
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(GOOD if y else BAD)))
        rows.append({"text_a": " ".join(words), "label": LABELS[y], "label_id": y})
    return rows


def _job(out, members, runs=None):
    spec = {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}
    data = {
        "name": "t",
        "task": "sst2",
        "seed": 3,
        "output_dir": str(out),
        "labels": LABELS,
        "inputs": {"train": spec, "dev": spec},
        "teacher": {"ensemble": members},
    }
    if runs:
        data["student"] = {
            "runs": runs,
            "seeds": [1],
            "threads": 1,
            "test_split": None,
            "bilstm": {"glove": str(out / "glove.txt"), "glove_rows": 5, "hidden": 8, "mlp": 8, "epochs": 1},
        }
    return parse_config(data, check_files=False)


def _teacher(out, members, models):
    tc = TeacherConfig(
        model=models["main"],
        layers=[0, 2],
        max_length=32,
        shard_rows=16,
        cpu_threads=1,
        finetune={"enabled": False},
        inputs=["examples/train"],
        ensemble=[{"name": m, "model": models[m]} for m in members],
    )
    return run_teacher(_job(out, [{"name": m, "model": models[m]} for m in members]), tc, use_ray=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {
        name: random_teacher(root / name, "tiny", seed=seed, max_position_embeddings=64, labels=LABELS)
        for name, seed in (("main", 0), ("b", 1), ("c", 2), ("d", 3))
    }


def _shards(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.parquet"))}


def test_members_add_and_remove(tmp_path, models, torch_one_thread):
    out = tmp_path / "out"
    write_examples(out / "examples/train", _rows(40, 0))
    _teacher(out, ["b", "c"], models)
    cache = out / "teacher/examples/train"
    listing = json.loads((cache / ENSEMBLE_NAME).read_text())
    assert [m["name"] for m in listing["members"]] == ["main", "b", "c"]
    assert listing["members"][1]["path"] == "members/b" and listing["members"][1]["column"] == "logits_b"
    ens = open_ensemble(str(cache))
    stacked = ens.logits()
    assert stacked.shape == (3, 40, 2) and not np.allclose(stacked[0], stacked[1])
    # plain pyarrow: each teacher's cache is a folder of Parquet shards; rows join on `row`
    for k, name in enumerate(["main", "b", "c"]):
        folder = cache if name == "main" else cache / "members" / name
        table = pa.concat_tables(
            [pq.read_table(f, columns=["row", "logits"]) for f in sorted(folder.glob("shard-*.parquet"))]
        )
        values = np.asarray(table.column("logits").to_pylist(), dtype=np.float32)
        np.testing.assert_array_equal(values[np.argsort(table.column("row").to_numpy())], stacked[k])
    joined = ens.read_table(columns=["example_id", "logits"])  # the view: one column per further teacher
    assert joined.column_names == ["row", "example_id", "logits", "logits_b", "logits_c"]
    assert joined.schema.field("logits_b").type == joined.schema.field("logits").type
    for k, column in enumerate(["logits", "logits_b", "logits_c"]):
        np.testing.assert_array_equal(np.asarray(joined.column(column).to_pylist(), dtype=np.float32), stacked[k])
    members_only = open_cache(str(cache / "members/b"))
    assert (
        members_only.layers == []
        and members_only.manifest["teacher"]["weights_sha256"] == listing["members"][1]["weights_sha256"]
    )

    # adding a teacher: only its cache is computed; the others' files stay byte for byte
    before = {name: _shards(cache if name == "main" else cache / "members" / name) for name in ("main", "b", "c")}
    summary = _teacher(out, ["b", "c", "d"], models)
    for name in ("main", "b", "c"):
        assert _shards(cache if name == "main" else cache / "members" / name) == before[name], name
    assert summary["inputs"]["examples/train"]["shards_reused"] == 3
    assert summary["ensemble"]["b"]["inputs"]["examples/train"]["shards_computed"] == 0
    assert summary["ensemble"]["d"]["inputs"]["examples/train"]["shards_computed"] == 3
    assert open_ensemble(str(cache)).names == ["main", "b", "c", "d"]

    # removing one rewrites the listing only (its cache stays, and is reused if it comes back)
    _teacher(out, ["d"], models)
    assert open_ensemble(str(cache)).names == ["main", "d"] and (cache / "members/c/manifest.json").exists()
    _teacher(out, [], models)
    assert not (cache / ENSEMBLE_NAME).exists() and open_ensemble(str(cache)).names == ["main"]


def test_a_member_with_another_label_order_is_refused(tmp_path, models, torch_one_thread):
    out = tmp_path / "out"
    write_examples(out / "examples/train", _rows(10, 0))
    flipped = random_teacher(tmp_path / "flipped", "tiny", seed=1, max_position_embeddings=64, labels=LABELS[::-1])
    with pytest.raises(CacheError, match="label order"):
        _teacher(out, ["b"], {**models, "b": flipped})


def test_student_learns_from_the_combined_teachers(tmp_path, models, torch_one_thread):
    from pipeline.student.stage import _Context, _teacher_targets, run_student

    out = tmp_path / "out"
    write_examples(out / "examples/train", _rows(40, 0))
    write_examples(out / "examples/dev", _rows(12, 1))
    rng = np.random.default_rng(7)
    words = GOOD + BAD + ["the", "film", "is", "a", "story"]
    (out / "glove.txt").write_text("".join(f"{w} {' '.join(f'{x:.4f}' for x in rng.normal(size=8))}\n" for w in words))
    _teacher(out, ["b", "c"], models)
    runs = [
        {"name": "one", "model": "bilstm", "data": "examples/train", "loss": "soft", "temperature": 2.0},
        {
            "name": "three",
            "model": "bilstm",
            "data": "examples/train",
            "loss": "soft",
            "temperature": 2.0,
            "teachers": ["main", "b", "c"],
            "weights": [2, 1, 1],
        },
    ]
    cfg = _job(out, [{"name": "b"}, {"name": "c"}], runs)
    ctx = _Context(cfg, cfg.student, None)
    collate, columns = _teacher_targets(ctx, cfg.student.runs[1], lambda t: {"rows": t.column("row").to_pylist()})
    assert columns == []  # the main cache's logits column is not read: the combination replaces it
    table = pa.table({"row": pa.array([5, 0, 39], pa.int64())})
    got = collate(table)["logits"]
    stacked = open_ensemble(str(out / "teacher/examples/train")).logits()
    np.testing.assert_allclose(got.numpy(), combine(stacked[:, [5, 0, 39]], "prob_mean", [2, 1, 1], 2.0), rtol=1e-6)
    plain, columns = _teacher_targets(ctx, cfg.student.runs[0], lambda t: {})
    assert columns == ["logits"] and "logits" not in plain(table)
    rows = {r["name"]: r for r in run_student(cfg)["rows"]}
    assert {"teacher", "teacher b", "teacher c", "teachers main+b+c (prob_mean, weights 2/1/1)", "one", "three"} == set(
        rows
    )
    # the ensemble row is the combination of the three teachers' own predictions on dev
    assert 0 <= rows["teachers main+b+c (prob_mean, weights 2/1/1)"]["accuracy_mean"] <= 1
    assert torch.isfinite(torch.tensor(rows["three"]["accuracy_mean"]))
    # the report: each teacher and the combinations on the cache's originals, and their agreement
    from pipeline.report import write_report
    from pipeline.report.collect import collect_teacher_and_cache

    teacher, cache = collect_teacher_and_cache(out)
    assert [c["name"] for c in cache.data["caches"]] == ["examples/train"]  # a member's cache is not a cache apart
    ens = teacher.data["caches"][0]["ensemble"]
    assert list(ens["scores"]) == ["main", "b", "c", "ensemble (prob_mean)", "ensemble (logit_mean)"]
    pred = stacked.argmax(-1)
    gold = np.array([r["label_id"] for r in _rows(40, 0)])
    assert ens["scores"]["b"]["accuracy"] == pytest.approx(np.mean(pred[1] == gold))
    assert ens["all_agree"] == pytest.approx(np.mean((pred == pred[0]).all(0)))
    html = open(write_report(str(out))).read()
    assert "Ensemble: examples/train" in html and "ensemble (logit_mean)" in html


def test_the_ensemble_result_job_parses():
    from pathlib import Path

    from pipeline.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "jobs" / "rt-ensemble.yaml", check_files=False)
    assert [m.name for m in cfg.teacher.ensemble] == ["s2", "s3"] and [m.seed for m in cfg.teacher.ensemble] == [2, 3]
    assert {tuple(r.teachers or ["main"]) for r in cfg.student.runs} == {("main",), ("main", "s2", "s3")}
