"""Sentence pairs through the teacher and student stages: the teacher fine-tunes and caches with
segment ids, the BiLSTM pair student (shared encoder, [a, b, |a-b|, a*b]) and the small BERT
student (text_a [SEP] text_b) train from the caches, on a task that needs both texts."""

import json

import numpy as np
import pyarrow.compute as pc
import pytest
import torch

from pipeline.cache import open_cache
from pipeline.config import parse_config
from pipeline.student.stage import run_student
from pipeline.teacher import TeacherConfig
from pipeline.teacher.stage import run_teacher
from pipeline.testing import random_teacher, write_augmented, write_examples

pytestmark = pytest.mark.usefixtures("torch_one_thread")

LABELS = ["entailment", "not_entailment"]
POS, NEG = ["good", "great", "fine", "warm"], ["bad", "dull", "poor", "cold"]
FILLER = ["the", "movie", "film", "was", "is", "a", "story", "plot", "really", "quite"]


def pairs(n: int, seed: int, agree: bool = False) -> list[dict]:
    """The label says whether either text is positive: neither text alone tells it (a negative first
    text leaves it to the second), and a model that reads one text only stays near 75%. With
    ``agree``: whether both texts have the same sentiment (a similarity task; one text: 50%)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        a_pos, b_pos = bool(rng.integers(2)), bool(rng.integers(2))
        texts = []
        for positive in (a_pos, b_pos):
            words = list(rng.choice(FILLER, size=int(rng.integers(2, 6))))
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(POS if positive else NEG)))
            texts.append(" ".join(words))
        y = 0 if (a_pos == b_pos if agree else a_pos or b_pos) else 1
        rows.append({"text_a": texts[0], "text_b": texts[1], "label": LABELS[y], "label_id": y})
    return rows


def _job(out):
    spec = {"path": "unused.tsv", "columns": {"text_a": "s1", "text_b": "s2", "label": "l"}}
    runs = [
        {"name": "bilstm-hard", "model": "bilstm", "data": "examples/train", "loss": "hard", "epochs": 12},
        {"name": "bilstm-kd", "model": "bilstm", "data": "augmented/train/tang", "loss": "mse", "epochs": 8},
        {
            "name": "bert-kd",
            "model": "bert",
            "data": "augmented/train/tang",
            "loss": "soft",
            "intermediate": "examples/train",
        },
    ]
    return parse_config(
        {
            "name": "pairs",
            "task": "rte",
            "seed": 2,
            "output_dir": str(out),
            "labels": LABELS,
            "inputs": {"train": spec, "dev": spec, "test": spec},
            "teacher": {
                "inputs": ["examples/train", "augmented/train/tang"],
                "states_for": ["examples/train"],
            },
            "student": {
                "runs": runs,
                "seeds": [1],
                "shuffle_buffer": 64,
                "threads": 1,
                "bilstm": {
                    "glove": str(out / "glove.txt"),
                    "hidden": 24,
                    "mlp": 24,
                    "epochs": 3,
                    "batch_size": 16,
                    "lr": 3e-3,
                },
                "bert": {"layers": 2, "intermediate_epochs": 1, "epochs": 1, "batch_size": 16},
            },
        },
        check_files=False,
    )


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pairs")
    out = root / "out"
    out.mkdir()
    rng = np.random.default_rng(3)
    words = POS + NEG + FILLER
    (out / "glove.txt").write_text("".join(f"{w} {' '.join(f'{x:.4f}' for x in rng.normal(size=8))}\n" for w in words))
    train = pairs(320, 0)
    write_examples(out / "examples/train", train)
    write_examples(out / "examples/dev", pairs(80, 1))
    write_examples(out / "examples/test", pairs(80, 2))
    variants = []
    for i, r in enumerate(train):  # an augmented corpus: each variant changes one text, keeps the other
        variants.append({**r, "parent_id": f"ex{i:06d}", "example_id": f"ex{i:06d}-0", "variant": 0})
        variants.append(
            {**r, "text_a": r["text_a"].replace("the", "a"), "parent_id": f"ex{i:06d}", "example_id": f"ex{i:06d}-1"}
        )
    write_augmented(out / "augmented/train/tang", variants)
    encoder = random_teacher(root / "encoder", "tiny", num_labels=2, seed=4, max_position_embeddings=64)
    cfg = _job(out)
    tc = TeacherConfig(
        model=encoder,
        finetune={"enabled": True, "epochs": 8, "lr": 3e-3, "batch_size": 16, "max_length": 32},
        layers="tinybert",
        student_layers=2,
        attentions=[2, 3],
        max_length=32,
        token_budget=256,
        cpu_threads=1,
        inputs=["examples/train", "augmented/train/tang"],
        states_for=["examples/train"],
    )
    result = run_teacher(cfg, tc, use_ray=False)
    assert result["finetune"]["dev_accuracy"] >= 0.95, result["finetune"]  # it learned the pair relation
    torch.set_num_threads(before)
    return out


def test_teacher_caches_pairs_with_segment_ids(out):
    cache = open_cache(str(out / "teacher/examples/train"))
    table = cache.read_table(["text_b", "input_ids", "token_type_ids", "logits", "label_id"])
    assert table.column("text_b").null_count == 0
    for ids, types in zip(table.column("input_ids").to_pylist()[:20], table.column("token_type_ids").to_pylist()[:20]):
        first_sep = ids.index(102)  # [SEP] closes text_a; text_b's tokens and its [SEP] are segment 1
        assert set(types[: first_sep + 1]) == {0} and set(types[first_sep + 1 :]) == {1}
    logits = np.stack(table.column("logits").to_numpy(zero_copy_only=False))
    y = table.column("label_id").to_numpy()
    assert (logits.argmax(1) == y).mean() >= 0.95  # the cached logits are the fine-tuned pair teacher's
    assert pc.sum(pc.list_value_length(table.column("token_type_ids"))).as_py() == cache.manifest["tokens"]


def test_pair_students_train_from_the_caches(out):
    cfg = _job(out)
    result = run_student(cfg)
    rows = {r["name"]: r for r in json.loads((out / "student/results.json").read_text())["rows"]}
    assert set(rows) == {"teacher", "bilstm-hard", "bilstm-kd", "bert-kd"}
    # one text alone gives at most about 75%: the pair students read both
    assert all(rows[name]["accuracy_mean"] >= 0.9 for name in ("bilstm-hard", "bilstm-kd", "bert-kd"))
    for name in ("bilstm-hard", "bilstm-kd", "bert-kd"):
        run = result["runs"][name][0]
        assert run["test"]["accuracy"] == rows[name]["accuracy_mean"] and len(run["history"]) >= 1
    saved = torch.load(out / "student/bilstm-kd-seed1/model.pt", weights_only=True)
    assert saved["pair"] is True
    assert saved["state_dict"]["head.1.weight"].shape[1] == 4 * 2 * 24  # [a, b, |a-b|, a*b], 2 × 24 units
    m = json.loads((out / "student/bert-kd-seed1/metrics.json").read_text())
    assert [e["stage"] for e in m["history"]] == ["intermediate", "prediction"]


def test_siamese_bilstm_learns_a_similarity_task(tmp_path):
    """pair_head: siamese: each text encoded alone, their cosine decides; it learns whether two texts
    agree (a relation of the two, not of either text alone: chance is 50%)."""
    out = tmp_path / "out"
    out.mkdir()
    rng = np.random.default_rng(3)
    (out / "glove.txt").write_text(
        "".join(f"{w} {' '.join(f'{x:.4f}' for x in rng.normal(size=8))}\n" for w in POS + NEG + FILLER)
    )
    for split, n, seed in (("train", 400, 10), ("dev", 80, 11), ("test", 80, 12)):
        write_examples(out / "examples" / split, pairs(n, seed, agree=True))
    teacher = random_teacher(tmp_path / "teacher", "tiny", num_labels=2, seed=4, max_position_embeddings=64)
    cfg = _job(out)
    bilstm = {"pair_head": "siamese", "hidden": 48, "mlp": 48, "lr": 1e-2, "epochs": 15}
    cfg = cfg.model_copy(
        update={
            "student": cfg.student.model_copy(
                update={
                    "runs": [cfg.student.runs[0].model_copy(update={"name": "siamese"})],
                    "bilstm": cfg.student.bilstm.model_copy(update=bilstm),
                }
            )
        }
    )
    tc = TeacherConfig(
        model=teacher, layers=[], max_length=32, cpu_threads=1, finetune={"enabled": False}, inputs=["examples/train"]
    )
    run_teacher(cfg, tc, use_ray=False)
    result = run_student(cfg)["runs"]["siamese"][0]
    assert result["test"]["accuracy"] >= 0.9
    saved = torch.load(out / "student/siamese-seed1/model.pt", weights_only=True)
    assert saved["settings"]["pair_head"] == "siamese" and saved["state_dict"]["head.weight"].shape == (2, 1)
