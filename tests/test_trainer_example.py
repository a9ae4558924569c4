"""examples/distil_with_trainer.py: the Hugging Face Trainer distils a student from a teacher cache,
the cache's teacher logits reach the loss, and a student with another vocabulary is refused."""

import importlib.util
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.teacher import TeacherConfig
from pipeline.teacher.stage import run_teacher
from pipeline.testing import SHAPES, cache_job, random_teacher, write_augmented

ROOT = Path(__file__).resolve().parents[1]
INPUT = "augmented/train/tang"
LABELS = ["negative", "positive"]
ROWS = 40

# neither is a dependency of the pipeline itself (the Trainer needs accelerate)
pytest.importorskip("datasets")
pytest.importorskip("accelerate")

# examples/ is not a package: load the script as a module of its own
_spec = importlib.util.spec_from_file_location("distil_with_trainer", ROOT / "examples" / "distil_with_trainer.py")
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)


def _label_id(i: int) -> int | None:
    # every fifth row unlabelled (null), one more marked -1: both mean "no label" to the collator
    if i % 5 == 0:
        return None
    return -1 if i == 7 else i % 2


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny teacher's cache of 40 rows (hidden layer 2 stored) and a student sharing its vocabulary."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("trainer")
    teacher = random_teacher(root / "teacher", "tiny", num_labels=2, seed=3, max_position_embeddings=64)
    student = random_teacher(root / "student", "tiny", num_labels=2, seed=4, max_position_embeddings=64)
    cfg = cache_job(root / "out", LABELS)
    rows = [
        {
            "text_a": "a " + "very " * (i % 4) + f"{'fine' if i % 2 else 'dull'} film number {i}",
            "label": None if _label_id(i) in (None, -1) else LABELS[i % 2],
            "label_id": _label_id(i),
        }
        for i in range(ROWS)
    ]
    write_augmented(root / "out" / INPUT, rows)
    tc = TeacherConfig(
        model=teacher,
        layers=[2],
        max_length=32,
        token_budget=64,
        shard_rows=16,
        cpu_threads=1,
        finetune={"enabled": False},
    )
    run_teacher(cfg, tc, inputs=[INPUT], use_ray=False)
    torch.set_num_threads(before)
    cache = root / "out" / "teacher" / INPUT
    # read straight from the shards, not through `datasets`, to check what the example makes of them
    table = pa.concat_tables([pq.read_table(f) for f in sorted(cache.glob("shard-*.parquet"))])
    return {"cache": str(cache), "student": student, "table": table}


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """`datasets`' Arrow copies go to tmp_path, not the home directory."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    return str(tmp_path / "hf")


def test_collator_pads_and_carries_the_teacher_logits(built, hf_cache):
    ds, manifest = example.load_cache(built["cache"], hf_cache)
    assert set(ds.column_names) == {"input_ids", "token_type_ids", "logits", "label_id"}  # no hidden states
    table = built["table"]
    short, long = 0, 3  # "a dull film number 0" and "a very very very fine film number 3"
    batch = example.CacheCollator(manifest["tokenizer"]["pad_token_id"])([ds[short], ds[long]])

    tokens = table.column("num_tokens").to_pylist()
    assert tokens[long] > tokens[short]
    assert batch["input_ids"].shape == (2, tokens[long]) and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].sum(1).tolist() == [tokens[short], tokens[long]]
    assert batch["input_ids"][0, tokens[short] :].eq(manifest["tokenizer"]["pad_token_id"]).all()
    assert batch["input_ids"][1].tolist() == table.column("input_ids")[long].as_py()
    assert batch["token_type_ids"].shape == batch["input_ids"].shape

    want = torch.tensor([table.column("logits")[i].as_py() for i in (short, long)], dtype=torch.float32)
    assert batch["teacher_logits"].dtype == torch.float32
    torch.testing.assert_close(batch["teacher_logits"], want, rtol=0, atol=0)
    # row 0 has a null label_id, row 3 the label 1
    assert batch["labels"].tolist() == [-100, 1]
    assert example.CacheCollator(0)([ds[7]])["labels"].tolist() == [-100]  # label_id -1


def test_loss_is_minimal_when_the_student_matches_the_teacher():
    torch.manual_seed(0)
    teacher = torch.randn(8, 3) * 3
    labels = torch.tensor([0, 1, 2, -100, 0, 1, 2, -100])
    matched = example.distillation_loss(teacher.clone(), teacher, labels, temperature=2.0, alpha=1.0)
    assert abs(matched.item()) < 1e-6
    other = example.distillation_loss(teacher + torch.randn(8, 3), teacher, labels, temperature=2.0, alpha=1.0)
    assert other.item() > 1e-3

    # alpha = 0: the cross-entropy over the labelled rows only
    student = torch.randn(8, 3)
    hard = example.distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.0)
    torch.testing.assert_close(hard, torch.nn.functional.cross_entropy(student[labels >= 0], labels[labels >= 0]))
    # no label in the batch: the soft term alone, not the NaN of an empty cross-entropy
    none = torch.full((8,), -100)
    soft = example.distillation_loss(student, teacher, none, temperature=2.0, alpha=0.5)
    torch.testing.assert_close(soft, 0.5 * example.distillation_loss(student, teacher, None, 2.0, 1.0))


def test_main_distils_a_few_steps(built, hf_cache, tmp_path, monkeypatch, torch_one_thread):
    seen = []
    loss = example.distillation_loss

    def spy(student_logits, teacher_logits, labels, temperature, alpha):
        seen.append((teacher_logits.detach().clone(), labels.detach().clone(), temperature, alpha))
        return loss(student_logits, teacher_logits, labels, temperature, alpha)

    monkeypatch.setattr(example, "distillation_loss", spy)
    out = tmp_path / "student"
    argv = ["--cache", built["cache"], "--student", built["student"], "--output-dir", str(out)]
    argv += ["--max-steps", "3", "--batch-size", "8", "--temperature", "3", "--alpha", "0.7", "--logging-steps", "1"]
    assert example.main([*argv, "--cpu", "--hf-cache", hf_cache]) == 0

    # every batch's teacher logits are rows of the cache's logits column
    cache_logits = {tuple(r) for r in built["table"].column("logits").to_pylist()}
    assert len(seen) == 3
    for teacher_logits, labels, temperature, alpha in seen:
        assert teacher_logits.shape == (8, 2) and (temperature, alpha) == (3.0, 0.7)
        assert {tuple(r) for r in teacher_logits.tolist()} <= cache_logits
        assert labels.shape == (8,) and set(labels.tolist()) <= {-100, 0, 1}

    losses = [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(losses) == 3 and all(math.isfinite(l) for l in losses)
    assert math.isfinite(json.loads((out / "train_results.json").read_text())["train_loss"])
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_a_student_with_another_vocabulary_is_refused(built, hf_cache, tmp_path, capsys):
    from transformers import BertConfig, BertForSequenceClassification

    BertForSequenceClassification(BertConfig(vocab_size=1000, num_labels=2, **SHAPES["tiny"])).save_pretrained(
        tmp_path / "small-vocab"
    )
    argv = ["--cache", built["cache"], "--student", str(tmp_path / "small-vocab"), "--output-dir", str(tmp_path / "o")]
    assert example.main([*argv, "--cpu", "--hf-cache", hf_cache]) == 2
    assert "must share the teacher's vocabulary" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
