"""MiniLM: relations and their KL against values computed by hand; the compact teacher form (a
layer's input hidden state + its projections, stored once) reproduces the layer's attention maps;
the small BERT student learns them with a head count of its own (v2)."""

import math

import numpy as np
import pytest
import torch

from pipeline.cache import CacheError, open_cache
from pipeline.config import ConfigError, parse_config
from pipeline.student.minilm import log_relation, minilm_loss, project, relation_kl
from pipeline.teacher.settings import TeacherConfig
from pipeline.teacher.stage import run_teacher
from pipeline.testing import cache_job, random_teacher, write_examples


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_relation_and_kl_by_hand():
    # one row, 3 tokens (the last is padding), width 2, one head
    a = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])
    mask = torch.tensor([[1, 1, 0]])
    got = log_relation(a, a, 1, mask).exp()[0, 0]
    d = math.sqrt(2)
    row0 = _softmax(np.array([1.0, 0.0]) / d)  # a0·a0 = 1, a0·a1 = 0; the padded key gets 0
    row1 = _softmax(np.array([0.0, 4.0]) / d)
    np.testing.assert_allclose(got[0].numpy(), [*row0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(got[1].numpy(), [*row1, 0.0], rtol=1e-6)
    # KL(t || s) per real query, averaged over the two real queries (the padded query is left out)
    b = torch.tensor([[[0.5, 0.5], [1.0, -1.0], [-9.0, 3.0]]])
    t, s = log_relation(a, a, 1, mask), log_relation(b, b, 1, mask)
    s0 = _softmax(np.array([0.5, 0.0]) / d)
    s1 = _softmax(np.array([0.0, 2.0]) / d)
    kl = (np.sum(row0 * np.log(row0 / s0)) + np.sum(row1 * np.log(row1 / s1))) / 2
    assert relation_kl(t, s, mask).item() == pytest.approx(kl, rel=1e-5)
    assert relation_kl(t, t, mask).item() == pytest.approx(0.0, abs=1e-7)
    # two relation heads split the width: head h uses columns [h]
    two = log_relation(a, a, 2, mask).exp()[0]
    np.testing.assert_allclose(two[1, 1].numpy(), [*_softmax(np.array([0.0, 4.0])), 0.0], rtol=1e-6)


def test_v1_and_v2_terms():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    teacher = tuple(torch.randn(2, 4, 8) for _ in range(3))
    student = tuple(torch.randn(2, 4, 4, requires_grad=True) for _ in range(3))  # another width
    v2 = minilm_loss(teacher, student, mask, version="v2", teacher_heads=4, student_heads=2, relation_heads=2)
    assert set(v2) == {"query", "key", "value"}
    q = relation_kl(log_relation(teacher[0], teacher[0], 2, mask), log_relation(student[0], student[0], 2, mask), mask)
    assert v2["query"].item() == pytest.approx(q.item())
    sum(v2.values()).backward()
    assert student[0].grad is not None and teacher[0].grad is None  # the teacher is a target only
    with pytest.raises(ValueError, match="v1 matches attention heads one to one"):
        minilm_loss(teacher, student, mask, version="v1", teacher_heads=4, student_heads=2)
    same = tuple(torch.randn(2, 4, 8) for _ in range(3))
    v1 = minilm_loss(teacher, same, mask, version="v1", teacher_heads=4, student_heads=4)
    att = relation_kl(log_relation(teacher[0], teacher[1], 4, mask), log_relation(same[0], same[1], 4, mask), mask)
    assert set(v1) == {"attention", "value"} and v1["attention"].item() == pytest.approx(att.item())
    assert minilm_loss(teacher, teacher, mask, version="v1", teacher_heads=4, student_heads=4)["value"].item() < 1e-6


def test_compact_form_reproduces_the_attention_maps(tmp_path):
    """Q and K projected from a layer's input hidden state give the model's own attention
    probabilities: the maps need not be stored."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = random_teacher(tmp_path / "t", "tiny", seed=3, max_position_embeddings=64)
    model = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(["a short one", "a somewhat longer sentence here"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(**enc, output_hidden_states=True, output_attentions=True)
    for layer in (1, 3):
        attn = model.bert.encoder.layer[layer - 1].attention.self
        weights = {k: v for k, v in attn.state_dict().items()}
        q, k, _ = project(out.hidden_states[layer - 1], weights)
        maps = log_relation(q, k, 4, enc["attention_mask"]).exp()
        real = enc["attention_mask"].bool()
        expected = out.attentions[layer - 1]
        for row in range(2):
            n = int(real[row].sum())
            np.testing.assert_allclose(maps[row, :, :n, :n].numpy(), expected[row, :, :n, :n].numpy(), atol=1e-6)


def test_teacher_caches_the_compact_form(tmp_path, torch_one_thread):
    from safetensors.torch import load_file  # noqa: F401  (the format: tensors only)
    from transformers import AutoModelForSequenceClassification

    teacher = random_teacher(
        tmp_path / "t", "tiny", seed=4, max_position_embeddings=64, labels=["negative", "positive"]
    )
    out = tmp_path / "out"
    write_examples(
        out / "examples/train", [{"text_a": f"sentence number {i} is fine", "label_id": i % 2} for i in range(12)]
    )
    tc = TeacherConfig(
        model=teacher,
        layers=[0],
        minilm_layers=[3],
        hidden_mantissa_bits=10,
        max_length=32,
        cpu_threads=1,
        finetune={"enabled": False},
        inputs=["examples/train"],
    )
    run_teacher(cache_job(out), tc, use_ray=False)
    cache = open_cache(str(out / "teacher/examples/train"))
    assert cache.layers == [0, 2] and cache.minilm_layers == [3]  # hidden_2 is layer 3's input
    weights = cache.minilm_weights(3)
    model = AutoModelForSequenceClassification.from_pretrained(teacher).eval()
    for name, value in model.bert.encoder.layer[2].attention.self.state_dict().items():
        torch.testing.assert_close(weights[name], value, rtol=0, atol=0)
    # relations from the cached (float16) input agree with the model's attention maps
    batch = next(cache.iter_torch_batches(batch_size=12, columns=["input_ids", "num_tokens", "hidden_2"]))
    q, k, _ = project(batch["hidden_2"], weights)
    maps = log_relation(q, k, 4, batch["attention_mask"]).exp()
    eager = AutoModelForSequenceClassification.from_pretrained(teacher, attn_implementation="eager").eval()
    with torch.inference_mode():
        ref = eager(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True)
    n = batch["attention_mask"].sum(1)
    for r in range(12):
        m = int(n[r])
        np.testing.assert_allclose(maps[r, :, :m, :m].numpy(), ref.attentions[2][r, :, :m, :m].numpy(), atol=2e-3)
    # a damaged projections file is named
    (out / "teacher/examples/train/minilm-layer-3.safetensors").write_bytes(b"junk")
    with pytest.raises(CacheError, match="minilm-layer-3.safetensors: SHA-256 differs"):
        open_cache(str(out / "teacher/examples/train")).minilm_weights(3)
    with pytest.raises(CacheError, match="no MiniLM projections of layer 2"):
        cache.minilm_weights(2)


def test_config_asks_for_the_projections():
    spec = {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}
    job = {
        "name": "t",
        "task": "sst2",
        "output_dir": "/tmp/x",
        "labels": ["a", "b"],
        "inputs": {"train": spec, "dev": spec},
        "student": {
            "test_split": None,
            "runs": [{"name": "m", "model": "bert", "data": "examples/train", "intermediate": "examples/train"}],
            "bert": {"minilm": {"version": "v2", "relation_heads": 4}},
        },
    }
    with pytest.raises(ConfigError, match="bert.minilm needs the MiniLM projections"):
        parse_config({**job, "teacher": {}}, "j", check_files=False)
    assert parse_config({**job, "teacher": {"minilm_layers": [6]}}, "j", check_files=False).teacher.minilm_layers == [6]


def test_student_learns_minilm_relations_with_its_own_heads(tmp_path, torch_one_thread):
    """A random small BERT (width 16, 2 heads) learns the teacher's (width 32, 4 heads) layer-3
    relations over 4 relation heads (v2); the intermediate loss falls."""
    from pipeline.student.stage import run_student

    labels = ["negative", "positive"]
    teacher = random_teacher(tmp_path / "t", "tiny", seed=4, max_position_embeddings=64, labels=labels)
    out = tmp_path / "out"
    rng = np.random.default_rng(0)
    words = ["the", "film", "is", "fine", "dull", "a", "story", "plot", "moving", "flat"]
    rows = [
        {
            "text_a": " ".join(rng.choice(words, size=int(rng.integers(3, 12)))),
            "label": labels[i % 2],
            "label_id": i % 2,
        }
        for i in range(64)
    ]
    write_examples(out / "examples/train", rows)
    write_examples(out / "examples/dev", rows[:16])
    spec = {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}
    cfg = parse_config(
        {
            "name": "t",
            "task": "sst2",
            "seed": 1,
            "output_dir": str(out),
            "labels": labels,
            "inputs": {"train": spec, "dev": spec},
            "teacher": {"minilm_layers": [3], "inputs": ["examples/train"]},
            "student": {
                "test_split": None,
                "seeds": [1],
                "threads": 1,
                "teacher_row": False,
                "runs": [
                    {
                        "name": "mini",
                        "model": "bert",
                        "data": "examples/train",
                        "loss": "soft",
                        "intermediate": "examples/train",
                    }
                ],
                "bert": {
                    "layers": 2,
                    "init": "random",
                    "hidden_size": 16,
                    "num_attention_heads": 2,
                    "minilm": {"version": "v2", "relation_heads": 4},
                    "intermediate_epochs": 4,
                    "intermediate_lr": 5e-3,
                    "epochs": 1,
                    "batch_size": 16,
                },
            },
        },
        check_files=False,
    )
    tc = TeacherConfig(
        model=teacher,
        layers=[0],
        minilm_layers=[3],
        max_length=32,
        cpu_threads=1,
        finetune={"enabled": False},
        inputs=["examples/train"],
    )
    run_teacher(cfg, tc, use_ray=False)
    history = run_student(cfg)["runs"]["mini"][0]["history"]
    steps = [h for h in history if h["stage"] == "intermediate"]
    assert len(steps) == 4 and set(steps[0]) >= {"query_loss", "key_loss", "value_loss"}
    total = [h["query_loss"] + h["key_loss"] + h["value_loss"] for h in steps]
    assert all(np.isfinite(total)) and total[-1] < total[0]
