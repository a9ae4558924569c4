"""Student stage: streaming shuffle reader, BERT student construction, end-to-end runs from caches."""

import json
import shutil

import numpy as np
import pytest
import torch

from pipeline.cache import CacheError, open_cache
from pipeline.config import parse_config
from pipeline.student.bert import build_student, layer_map
from pipeline.student.errors import StudentError
from pipeline.student.reader import ShuffleReader
from pipeline.student.stage import run_student
from pipeline.teacher import TeacherConfig
from pipeline.teacher.stage import run_teacher
from pipeline.testing import random_teacher, write_augmented, write_examples

LABELS = ["negative", "positive"]
GOOD, BAD = ["fine", "moving", "bright", "warm"], ["dull", "flat", "tired", "cold"]


def _sentences(n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for _i in range(n):
        y = int(rng.integers(2))
        words = list(rng.choice(["the", "film", "is", "a", "story", "and", "plot"], size=int(rng.integers(2, 9))))
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(GOOD if y else BAD)))
        rows.append({"text_a": " ".join(words), "label": LABELS[y], "label_id": y})
    return rows


def _job(out, **student):
    runs = [
        {"name": "bilstm-hard", "model": "bilstm", "data": "examples/train", "loss": "hard"},
        {"name": "bilstm-kd-tang", "model": "bilstm", "data": "augmented/train/tang", "loss": "mse"},
        {
            "name": "bert-kd",
            "model": "bert",
            "data": "augmented/train/tang",
            "loss": "soft",
            "intermediate": "examples/train",
        },
    ]
    spec = {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}
    return parse_config(
        {
            "name": "t",
            "task": "sst2",
            "seed": 3,
            "output_dir": str(out),
            "labels": LABELS,
            "inputs": {"train": spec, "dev": spec, "test": spec},
            "teacher": {"inputs": ["examples/train", "augmented/train/tang"], "states_for": ["examples/train"]},
            "student": {
                "runs": runs,
                "seeds": [1, 2],
                "shuffle_buffer": 64,
                "threads": 1,
                "bilstm": {
                    "glove": str(out / "glove.txt"),
                    "glove_rows": 5,
                    "hidden": 16,
                    "mlp": 16,
                    "epochs": 2,
                    "batch_size": 16,
                },
                "bert": {"layers": 2, "intermediate_epochs": 1, "epochs": 1, "batch_size": 16},
                **student,
            },
        },
        check_files=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An output folder as the stages leave it: examples of 3 splits, two teacher caches of a tiny teacher."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("student")
    out = root / "out"
    teacher = random_teacher(root / "teacher", "tiny", seed=5, max_position_embeddings=64, labels=LABELS)
    out.mkdir()
    rng = np.random.default_rng(7)  # a small GloVe text file: the words of the corpus and a few others
    vocab = GOOD + BAD + ["the", "film", "is", "a", "story", "and", "plot", "extra", "words"]
    (out / "glove.txt").write_text("".join(f"{w} {' '.join(f'{x:.4f}' for x in rng.normal(size=8))}\n" for w in vocab))
    train = _sentences(60, 0)
    write_examples(out / "examples" / "train", train)
    write_examples(out / "examples" / "dev", _sentences(20, 1))
    write_examples(out / "examples" / "test", _sentences(24, 2))
    tang = [
        {
            **r,
            "variant": v,
            "parent_id": f"ex{i:06d}",
            "example_id": f"ex{i:06d}-{v}",
            "text_a": r["text_a"] if v == 0 else r["text_a"].replace("the", "[MASK]"),
        }
        for i, r in enumerate(train)
        for v in range(2)
    ]
    write_augmented(out / "augmented" / "train" / "tang", tang)
    cfg = _job(out)
    run_teacher(
        cfg,
        TeacherConfig(
            model=teacher,
            layers=[0, 2, 3],
            attentions=[2, 3],
            max_length=32,
            token_budget=128,
            shard_rows=32,
            cpu_threads=1,
            finetune={"enabled": False},
            inputs=["examples/train", "augmented/train/tang"],
            states_for=["examples/train"],
        ),
        use_ray=False,
    )
    torch.set_num_threads(before)
    return out


@pytest.fixture
def out(built, tmp_path):
    dest = tmp_path / "out"
    shutil.copytree(built, dest)
    return dest


def test_caches_store_states_only_where_asked(built):
    assert open_cache(str(built / "teacher/examples/train")).layers == [0, 2, 3]
    tang = open_cache(str(built / "teacher/augmented/train/tang"))
    assert tang.layers == [] and tang.attentions == [] and len(tang) == 120


def test_shuffle_reader_every_row_once_bounded_and_seeded(built):
    cache = open_cache(str(built / "teacher/augmented/train/tang"))
    reader = ShuffleReader(cache, ["logits"], batch_size=7, buffer_rows=16, seed=4)
    reads = []
    original = reader._read
    reader._read = lambda unit: reads.append(unit) or original(unit)
    batches = reader.epoch(0)
    first = next(batches)
    assert len(reads) < len(reader.units)  # the first batch leaves before the cache is read whole
    rows = first.column("row").to_pylist() + [r for b in batches for r in b.column("row").to_pylist()]
    assert sorted(rows) == list(range(120))  # every row exactly once per epoch
    again = [r for b in reader.epoch(0) for r in b.column("row").to_pylist()]
    other = [r for b in reader.epoch(1) for r in b.column("row").to_pylist()]
    assert again == rows and other != rows and sorted(other) == sorted(rows) and rows != sorted(rows)
    half = ShuffleReader(cache, ["logits"], batch_size=8, buffer_rows=16, seed=4, fraction=0.5)
    kept = sorted(r for b in half.epoch(0) for r in b.column("row").to_pylist())
    assert kept == sorted(r for b in half.epoch(3) for r in b.column("row").to_pylist())  # same rows every epoch
    assert len(kept) == half.num_rows and len(set(kept)) == len(kept) and 60 - 3 * 5.5 < len(kept) < 60 + 3 * 5.5
    assert min(kept) < 20 and max(kept) > 100  # spread over the whole cache, not its first rows
    limited = ShuffleReader(cache, ["logits"], batch_size=8, buffer_rows=16, seed=4, max_rows=50)
    assert sorted(r for b in limited.epoch(0) for r in b.column("row").to_pylist()) == list(range(50))


def test_bert_student_copies_mapped_teacher_layers(tmp_path):
    teacher = random_teacher(tmp_path / "t", "tiny", seed=1, labels=LABELS)
    g = layer_map(3, 2)
    assert g == [0, 2, 3]
    student = build_student(teacher, 2, "teacher", g)
    from transformers import AutoModelForSequenceClassification

    t = AutoModelForSequenceClassification.from_pretrained(teacher).state_dict()
    s = student.state_dict()
    assert torch.equal(
        s["bert.encoder.layer.0.attention.self.query.weight"], t["bert.encoder.layer.1.attention.self.query.weight"]
    )
    assert torch.equal(s["bert.encoder.layer.1.output.dense.weight"], t["bert.encoder.layer.2.output.dense.weight"])
    assert torch.equal(s["classifier.weight"], t["classifier.weight"])
    assert student.config.num_hidden_layers == 2
    rand = build_student(teacher, 2, "random", g, hidden_size=16, intermediate_size=32)
    assert rand.config.hidden_size == 16
    with pytest.raises(StudentError, match="layer_map"):
        layer_map(3, 2, [0, 1])
    with pytest.raises(StudentError, match="hidden size"):
        build_student(teacher, 2, "teacher", g, hidden_size=16)


def test_student_stage_end_to_end(out, capsys, torch_one_thread):
    cfg = _job(out)
    result = run_student(cfg)
    table = json.loads((out / "student/results.json").read_text())
    names = [r["name"] for r in table["rows"]]
    assert names == ["teacher", "bilstm-hard", "bilstm-kd-tang", "bert-kd"]
    for row in table["rows"][1:]:
        assert row["seeds"] == [1, 2] and 0.0 <= row["accuracy_mean"] <= 1.0 and row["accuracy_std"] is not None
        assert row["params"] > 0 and row["sentences_per_s"] > 0
    m = json.loads((out / "student/bert-kd-seed1/metrics.json").read_text())
    stages = [e["stage"] for e in m["history"]]
    assert stages == ["intermediate", "prediction"] and m["layer_map"] == [0, 2, 3]
    assert {"embedding_loss", "hidden_loss", "attention_loss"} <= set(m["history"][0])
    assert m["history"][0]["attention_loss"] > 0 and m["test"]["accuracy"] >= 0
    b = json.loads((out / "student/bilstm-kd-tang-seed2/metrics.json").read_text())
    assert b["train_rows"] == 120 and len(b["history"]) == 2 and b["params"] > b["params_without_embeddings"]
    assert (out / "student/bilstm-kd-tang-seed2/model.pt").exists()
    assert (out / "student/bert-kd-seed1/config.json").exists() and (out / "student/curves.png").stat().st_size > 1000
    assert "| bilstm-kd-tang |" in (out / "student/results.md").read_text()
    # the same seed gives the same run; a second stage run reuses every finished run
    again = run_student(cfg)
    assert all(r.get("reused") for runs in again["runs"].values() for r in runs)
    first = result["runs"]["bilstm-kd-tang"][0]
    (out / "student/bilstm-kd-tang-seed1/metrics.json").unlink()
    rerun = run_student(cfg, runs=["bilstm-kd-tang"])["runs"]["bilstm-kd-tang"][0]
    assert [e["train_loss"] for e in rerun["history"]] == [e["train_loss"] for e in first["history"]]
    assert rerun["test"] == first["test"]
    only = run_student(cfg, runs=["bilstm-hard"], seeds=[2])  # a subset of runs and seeds (other processes do the rest)
    assert list(only["runs"]) == ["bilstm-hard"] and [r["seed"] for r in only["runs"]["bilstm-hard"]] == [2]
    from pipeline.student.errors import StudentStageError

    with pytest.raises(StudentStageError, match="unknown seed"):
        run_student(cfg, seeds=[7])
    with pytest.raises(StudentStageError, match="unknown run"):
        run_student(cfg, runs=["nope"])
    run_student(cfg)  # every run and seed again (all reused): the full table for the report
    # the job report shows the real stage's table and curves
    from pipeline.report import write_job_report

    page = open(write_job_report(cfg), encoding="utf-8").read()
    assert all(f">{name}<" in page for name in ("bilstm-hard", "bilstm-kd-tang", "bert-kd", "teacher"))
    assert "student learning curves" in page


def test_distilled_bilstm_fits_the_teacher_logits(out, torch_one_thread):
    """MSE to the teacher's logits falls during training, and the saved student reproduces its reported loss."""
    cfg = _job(
        out,
        runs=[{"name": "kd", "model": "bilstm", "data": "augmented/train/tang", "loss": "mse", "epochs": 6}],
        seeds=[1],
        teacher_row=False,
    )
    metrics = run_student(cfg)["runs"]["kd"][0]
    losses = [e["train_loss"] for e in metrics["history"]]
    assert losses[-1] < 0.5 * losses[0]
    from pipeline.student.bilstm import BiLstmClassifier
    from pipeline.student.evaluate import EvalSet, predict_bilstm
    from pipeline.student.words import Vocab

    ckpt = torch.load(out / "student/kd-seed1/model.pt", weights_only=False, map_location="cpu")
    state = ckpt["state_dict"]
    model = BiLstmClassifier(state["embed.weight"].numpy(), 16, 16, 2)
    model.load_state_dict(state)
    table = open_cache(str(out / "teacher/augmented/train/tang")).read_table(["text_a", "logits"])
    teacher = np.stack(table.column("logits").to_numpy(zero_copy_only=False))
    data = EvalSet(table.column("text_a").to_pylist(), [None] * table.num_rows, np.zeros(table.num_rows, np.int64))
    student = predict_bilstm(model, Vocab(ckpt["vocab"]), data, 128, torch.device("cpu"))
    best = metrics["history"][metrics["best_epoch"] - 1]["train_loss"]
    assert np.mean((student - teacher) ** 2) < 2 * max(best, 1e-4)  # eval mode: no dropout, the fitted loss holds


def test_corrupt_shard_stops_the_student_naming_it(out, torch_one_thread):
    shard = sorted((out / "teacher/augmented/train/tang").glob("*.parquet"))[1]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheError, match=shard.name):
        run_student(_job(out))
    assert not (out / "student/results.json").exists()


def test_distilbert_cosine_intermediate_step(out, torch_one_thread):
    """bert.hidden_loss: cosine with hidden_layers: last (DistilBERT's loss) runs through the stage:
    the intermediate step logs the hidden-state loss only (1 - cos, in [0, 2])."""
    cfg = _job(
        out,
        bert={
            "layers": 2,
            "intermediate_epochs": 2,
            "epochs": 1,
            "batch_size": 16,
            "hidden_loss": "cosine",
            "hidden_layers": "last",
            "attention_loss": False,
        },
    )
    run = run_student(cfg, runs=["bert-kd"], seeds=[1])["runs"]["bert-kd"][0]
    inter = [e for e in run["history"] if e["stage"] == "intermediate"]
    assert len(inter) == 2 and set(inter[0]) == {"epoch", "stage", "hidden_loss", "seconds"}
    assert all(0.0 < e["hidden_loss"] < 2.0 for e in inter)


def test_student_config_errors(tmp_path):
    from pipeline.config import ConfigError

    base = _job(tmp_path).model_dump(mode="json")
    bad = json.loads(json.dumps(base))
    bad["student"]["runs"][0]["data"] = "augmented/train/tinybert"
    with pytest.raises(ConfigError, match="not in teacher.inputs"):
        parse_config(bad, check_files=False)
    bad = json.loads(json.dumps(base))
    bad["student"]["runs"][2]["intermediate"] = "augmented/train/tang"
    with pytest.raises(ConfigError, match="states_for"):
        parse_config(bad, check_files=False)
    bad = json.loads(json.dumps(base))
    bad["student"]["runs"][0]["intermediate"] = "examples/train"
    with pytest.raises(ConfigError, match="bert students only"):
        parse_config(bad, check_files=False)
