"""Fine-tuning: a tiny model learns a separable task; metrics written; seeded; the stage reuses it."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pipeline.cache import open_cache
from pipeline.config import parse_config
from pipeline.teacher import TeacherConfig
from pipeline.teacher.finetune import LabelledTexts, finetune_classifier
from pipeline.teacher.settings import FinetuneConfig
from pipeline.teacher.stage import TeacherError, run_teacher
from pipeline.testing import random_teacher, write_augmented, write_examples

# Tiny models: one torch thread (two threads crawl when another process holds the other core).
pytestmark = pytest.mark.usefixtures("torch_one_thread")

POS, NEG = ["good", "great", "excellent", "wonderful"], ["bad", "awful", "terrible", "poor"]
FILLER = ["the", "movie", "was", "a", "plot", "with", "actors", "and", "really", "quite", "long", "scenes", "in", "it"]
SETTINGS = FinetuneConfig(epochs=5, lr=3e-3, batch_size=16, max_length=24, warmup_ratio=0.1)


def synthetic(n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for _i in range(n):
        y = int(rng.integers(0, 2))
        words = list(rng.choice(FILLER, size=int(rng.integers(3, 9))))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POS if y else NEG)))
        rows.append({"text_a": " ".join(words), "label": ["negative", "positive"][y], "label_id": y})
    return rows


def labelled(rows):
    return LabelledTexts([r["text_a"] for r in rows], None, [r["label_id"] for r in rows])


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A tiny random encoder with a 2-label head (the head is re-initialised by fine-tuning)."""
    return random_teacher(tmp_path_factory.mktemp("enc"), "tiny", num_labels=2, seed=4, max_position_embeddings=64)


def test_tiny_model_learns_and_is_seeded(tmp_path, encoder):
    train, dev = labelled(synthetic(256, 0)), labelled(synthetic(64, 1))
    labels = ["negative", "positive"]
    m1 = finetune_classifier(encoder, str(tmp_path / "a"), train, dev, labels, SETTINGS, seed=7, device="cpu")
    assert m1["dev_accuracy"] >= 0.9
    assert m1["best_epoch"] in range(1, 6) and len(m1["epochs"]) == 5
    assert m1["dev_accuracy"] == max(e["dev_accuracy"] for e in m1["epochs"])
    saved = json.loads((tmp_path / "a" / "finetune_metrics.json").read_text())
    assert saved["dev_accuracy"] == m1["dev_accuracy"] and saved["seed"] == 7
    assert (tmp_path / "a" / "config.json").exists() and (tmp_path / "a" / "tokenizer.json").exists()
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}

    finetune_classifier(encoder, str(tmp_path / "b"), train, dev, labels, SETTINGS, seed=7, device="cpu")
    finetune_classifier(encoder, str(tmp_path / "c"), train, dev, labels, SETTINGS, seed=8, device="cpu")
    wa, wb, wc = (load_file(tmp_path / d / "model.safetensors") for d in "abc")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # same seed → same weights
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)  # another seed → other weights


def job(tmp_path, splits=("train", "dev")):
    return parse_config(
        {
            "name": "t",
            "task": "sst2",
            "seed": 3,
            "output_dir": str(tmp_path / "out"),
            "labels": ["negative", "positive"],
            "inputs": {s: {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}} for s in splits},
        },
        check_files=False,
    )


def test_stage_finetunes_then_caches_and_reuses_the_model(tmp_path, encoder):
    cfg = job(tmp_path)
    write_examples(tmp_path / "out/examples/train", synthetic(192, 2))
    write_examples(tmp_path / "out/examples/dev", synthetic(48, 3))
    write_augmented(tmp_path / "out/augmented/train/tinybert", synthetic(30, 4))
    tc = TeacherConfig(
        model=encoder,
        finetune={"enabled": True, **SETTINGS.model_dump(exclude={"enabled"})},
        layers="tinybert",
        max_length=24,
        token_budget=256,
        cpu_threads=1,
    )
    result = run_teacher(cfg, tc, inputs=["augmented/train/tinybert"], use_ray=False)
    assert result["finetune"]["dev_accuracy"] >= 0.9 and not result["finetune"]["reused"]
    model_dir = tmp_path / "out/teacher/model"
    metrics_file = model_dir / "finetune_metrics.json"
    stamp = metrics_file.stat().st_mtime_ns
    cache = open_cache(str(tmp_path / "out/teacher/augmented/train/tinybert"))
    assert cache.layers == [0, 1, 2, 3]  # TinyBERT mapping of a 3-layer teacher for a 4-layer student
    assert cache.manifest["teacher"]["finetuned"] and cache.manifest["teacher"]["path"] == str(model_dir)
    logits = np.stack(cache.read_table(["logits"]).column("logits").to_numpy(zero_copy_only=False))
    y = np.array([r["label_id"] for r in synthetic(30, 4)])
    assert (logits.argmax(1) == y).mean() >= 0.9  # the cached logits are the fine-tuned teacher's

    again = run_teacher(cfg, tc, inputs=["augmented/train/tinybert"], use_ray=False)
    assert again["finetune"]["reused"] and metrics_file.stat().st_mtime_ns == stamp
    assert again["inputs"]["augmented/train/tinybert"]["shards_computed"] == 0


def test_stage_holds_out_dev_without_dev_split_and_needs_a_head(tmp_path, encoder):
    cfg = job(tmp_path, splits=("train",))
    write_examples(tmp_path / "out/examples/train", synthetic(60, 5))
    write_augmented(tmp_path / "out/augmented/train/tang", synthetic(5, 6))
    short = {"epochs": 1, "batch_size": 16, "max_length": 24, "lr": 1e-3}
    tc = TeacherConfig(model=encoder, finetune={"enabled": True, **short}, layers=[], max_length=24, cpu_threads=1)
    result = run_teacher(cfg, tc, inputs=["augmented/train/tang"], use_ray=False)
    assert result["finetune"]["dev_examples"] == 6 and result["finetune"]["train_examples"] == 54
    assert "held out" in result["finetune"]["dev_source"]

    from transformers import BertModel

    bare = tmp_path / "bare"
    BertModel.from_pretrained(encoder).save_pretrained(bare)  # an encoder without a classification head
    (bare / "config.json").write_text((bare / "config.json").read_text())
    from pipeline.testing import save_tokenizer

    save_tokenizer(bare)
    with pytest.raises(TeacherError, match="no sequence-classification head"):
        run_teacher(
            cfg,
            TeacherConfig(model=str(bare), finetune={"enabled": False}, max_length=24),
            inputs=["augmented/train/tang"],
            use_ray=False,
        )
