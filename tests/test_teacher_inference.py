"""Teacher inference: cached logits / hidden states / attentions equal a plain forward per example."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.cache import open_cache
from pipeline.cache.layers import LayerError, resolve_attentions, resolve_layers, tinybert_layers
from pipeline.config import parse_config
from pipeline.teacher import TeacherConfig
from pipeline.teacher.batching import padded_length, plan_batches, tokenize
from pipeline.teacher.rows import round_mantissa
from pipeline.teacher.stage import run_teacher
from pipeline.testing import random_teacher, write_augmented

# Tiny models: one torch thread (two threads crawl when another process holds the other core).
pytestmark = pytest.mark.usefixtures("torch_one_thread")

WORDS = [
    "the",
    "film",
    "is",
    "a",
    "quietly",
    "moving",
    "portrait",
    "of",
    "grief",
    "and",
    "an",
    "unexpectedly",
    "funny",
    "one",
    "too",
    "but",
    "the",
    "second",
    "half",
    "drags",
    "while",
    "its",
    "lead",
    "performance",
    "never",
    "quite",
    "lands",
]


def corpus(n=37, seed=3):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 30))))
        b = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) if i % 3 == 0 else None
        rows.append({"example_id": f"e{i}", "text_a": a, "text_b": b, "label": "positive", "label_id": 1})
    return rows


def job(tmp_path):
    return parse_config(
        {
            "name": "t",
            "task": "sst2",
            "seed": 1,
            "output_dir": str(tmp_path / "out"),
            "labels": ["negative", "positive"],
            "inputs": {"train": {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}},
        },
        check_files=False,
    )


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    return random_teacher(tmp_path_factory.mktemp("tiny"), "tiny", num_labels=2, seed=0, max_position_embeddings=64)


def _plain_forward(model_dir, rows, attn_impl):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation=attn_impl).eval()
    out = []
    with torch.inference_mode():
        for r in rows:
            enc = tok(r["text_a"], r["text_b"], truncation=True, max_length=48, return_tensors="pt")
            res = model(**enc, output_hidden_states=True, output_attentions=attn_impl == "eager")
            out.append((enc["input_ids"][0].numpy(), res))
    return out


@pytest.mark.parametrize(
    "attentions,bits",
    [([2], 10), ([], 7), ([2], 7)],
    ids=["eager+attentions-exact", "sdpa-default", "eager+attentions-default"],
)
def test_cache_equals_plain_forward(tmp_path, tiny_teacher, attentions, bits):
    rows = corpus()
    cfg = job(tmp_path)
    write_augmented(tmp_path / "out/augmented/train/tinybert", rows, part_rows=15)
    tc = TeacherConfig(
        model=tiny_teacher,
        layers=[0, 1, 3],
        attentions=attentions,
        max_length=48,
        token_budget=96,
        shard_rows=10,
        row_group_bytes=1 << 16,
        cpu_threads=1,
        finetune={"enabled": False},
        hidden_mantissa_bits=bits,
    )
    run_teacher(cfg, tc, inputs=["augmented/train/tinybert"], use_ray=False)
    rel = 2.0 ** -(bits + 1) + 2.0**-11  # rounding to `bits` mantissa bits, then float16's own
    table = open_cache(str(tmp_path / "out/teacher/augmented/train/tinybert")).read_table()
    assert table.column("example_id").to_pylist() == [r["example_id"] for r in rows]  # input order restored
    assert table.column("row").to_pylist() == list(range(len(rows)))
    ref = _plain_forward(tiny_teacher, rows, "eager" if attentions else "sdpa")
    H = 32
    for i, (ids, res) in enumerate(ref):
        n = len(ids)
        assert table.column("num_tokens")[i].as_py() == n
        assert table.column("input_ids")[i].as_py() == ids.tolist()
        np.testing.assert_allclose(table.column("logits")[i].as_py(), res.logits[0].numpy(), rtol=1e-4, atol=1e-5)
        for layer in (0, 1, 3):
            stored = np.asarray(table.column(f"hidden_{layer}")[i].values.to_numpy(zero_copy_only=False))
            assert stored.dtype == np.float16 and stored.size == n * H  # exactly the real tokens, no padding
            np.testing.assert_allclose(
                stored.reshape(n, H).astype(np.float32), res.hidden_states[layer][0].numpy(), rtol=rel + 1e-3, atol=2e-3
            )
        if attentions:
            stored = table.column("attention_2")[i].values.to_numpy(zero_copy_only=False)
            assert stored.size == 4 * n * n
            np.testing.assert_allclose(
                stored.reshape(4, n, n).astype(np.float32), res.attentions[1][0].numpy(), atol=rel + 5e-4
            )
        else:
            assert "attention_2" not in table.column_names


def test_pairs_get_segment_ids(tmp_path, tiny_teacher):
    rows = corpus(9)
    cfg = job(tmp_path)
    write_augmented(tmp_path / "out/augmented/train/tinybert", rows)
    run_teacher(
        cfg,
        TeacherConfig(model=tiny_teacher, layers=[], max_length=48, cpu_threads=1, finetune={"enabled": False}),
        inputs=["augmented/train/tinybert"],
        use_ray=False,
    )
    table = open_cache(str(tmp_path / "out/teacher/augmented/train/tinybert")).read_table()
    assert not [c for c in table.column_names if c.startswith("hidden_")]  # logits only
    for r, tt in zip(rows, table.column("token_type_ids").to_pylist()):
        assert (1 in tt) == (r["text_b"] is not None)


def test_tinybert_layer_mapping():
    assert tinybert_layers(12) == [0, 3, 6, 9, 12]
    assert tinybert_layers(6) == [0, 2, 3, 5, 6]
    assert tinybert_layers(24) == [0, 6, 12, 18, 24]
    assert tinybert_layers(12, 6) == [0, 2, 4, 6, 8, 10, 12]
    assert tinybert_layers(2) == [0, 1, 2]
    assert resolve_layers("tinybert", 6) == [0, 2, 3, 5, 6]
    with pytest.raises(LayerError, match="0..6"):
        resolve_layers([0, 7], 6)
    with pytest.raises(LayerError, match="1..6"):
        resolve_attentions([0], 6)


def test_batches_cover_rows_once_within_budget(tiny_teacher):
    from transformers import AutoTokenizer

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=500)
    batches = plan_batches(lengths, token_budget=1024, max_length=128)
    seen = np.concatenate([rows for rows, _ in batches])
    assert sorted(seen.tolist()) == list(range(500))
    shapes = set()
    for rows, length in batches:
        assert len(rows) * length <= 1024 and lengths[rows].max() <= length
        shapes.add(length)
    assert len(shapes) <= 18  # lengths rounded to a few shapes
    assert [padded_length(n, 128) for n in (1, 8, 9, 64, 65, 100, 129)] == [8, 8, 16, 64, 96, 128, 129]
    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    enc = tokenize(tok, ["a b c", "hello"], ["x", None], max_length=16)
    assert enc.lengths.tolist() == [7, 3] and enc.token_type_ids[0].tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert tok.convert_ids_to_tokens(enc.input_ids[1].tolist()) == ["[CLS]", "hello", "[SEP]"]  # a real vocabulary


def test_round_mantissa():
    x = np.random.default_rng(0).standard_normal(100_000).astype(np.float16)
    assert round_mantissa(x, 10) is x
    r = round_mantissa(x, 7)
    rel = np.abs(r.astype(np.float32) - x.astype(np.float32)) / np.abs(x.astype(np.float32)).clip(1e-4)
    assert rel.max() <= 2.0**-8 + 1e-6 and rel.max() > 0
    assert (r.view(np.uint16) & 0b111).max() == 0  # three low mantissa bits cleared
    special = np.array([np.inf, -np.inf, np.nan, 0.0, 65504.0], dtype=np.float16)
    out = round_mantissa(special, 7)
    assert np.isinf(out[0]) and np.isinf(out[1]) and np.isnan(out[2]) and out[3] == 0


def test_round_mantissa_on_every_float16():
    """All 65,536 bit patterns against the rounding done in 32-bit integers, as written out here;
    non-finite values (any NaN payload, both signs) come back unchanged."""
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    for bits in (5, 7, 9):
        drop = 10 - bits
        u = every.view(np.uint16).astype(np.uint32)
        expected = (u + ((1 << (drop - 1)) - 1) + ((u >> drop) & 1)) >> drop << drop
        finite = (u & 0x7C00) != 0x7C00
        expected = np.where(finite, expected, u).astype(np.uint16)
        assert np.array_equal(round_mantissa(every.copy(), bits).view(np.uint16), expected)
        finite_only = every[np.isfinite(every)]
        assert np.array_equal(round_mantissa(finite_only, bits, all_finite=True).view(np.uint16), expected[finite])


def test_config_rejects_bad_values():
    from pydantic import ValidationError

    for bad in (
        {"unknown": 1},
        {"layers": [1, 1]},
        {"inputs": ["augmented/train"]},
        {"mlm_top_k": 0},
        {"token_budget": 64, "max_length": 128},
        {"dtype": "fp16"},
        {"finetune": {"epochs": 0}},
    ):
        with pytest.raises(ValidationError):
            TeacherConfig(**bad)
    with pytest.raises(ValidationError, match="mlm_top_k is not"):
        TeacherConfig(mlm_model="some/folder")
    assert TeacherConfig(mlm_top_k=5).mlm_source() == TeacherConfig().model_source()
    assert TeacherConfig().mantissa_bits == 7 and TeacherConfig(hidden_mantissa_bits=10).mantissa_bits == 10


def test_whole_shard_batches_give_the_same_cache(tmp_path, tiny_teacher, monkeypatch):
    """The GPU plan (batches over the whole shard, states gathered after the last batch, outputs sliced
    per row group) writes what the CPU plan (row group by row group, states placed per batch) writes."""
    from pipeline.teacher.model import TeacherModel

    rows = corpus()
    tables = {}
    for whole in (False, True):
        monkeypatch.setattr(TeacherModel, "needs_whole_shard", lambda self, w=whole: w)
        monkeypatch.setattr(TeacherModel, "places_per_batch", lambda self, w=whole: not w)  # the GPU's gathering
        root = tmp_path / str(whole)
        write_augmented(root / "out/augmented/train/tinybert", rows, part_rows=15)
        tc = TeacherConfig(
            model=tiny_teacher,
            layers=[0, 3],
            attentions=[2],
            max_length=48,
            token_budget=96,
            shard_rows=20,
            row_group_bytes=1 << 14,
            cpu_threads=1,
            finetune={"enabled": False},
        )
        run_teacher(job(root), tc, inputs=["augmented/train/tinybert"], use_ray=False)
        cache = open_cache(str(root / "out/teacher/augmented/train/tinybert"))
        assert sum(pq.ParquetFile(f).metadata.num_row_groups for f in cache.files) > len(cache.files)  # several groups
        tables[whole] = cache.read_table()
    for name in ("row", "input_ids", "hidden_0", "hidden_3", "attention_2"):
        assert tables[True].column(name).equals(tables[False].column(name)), name
    np.testing.assert_allclose(
        np.stack(tables[True].column("logits").to_numpy(zero_copy_only=False)),
        np.stack(tables[False].column("logits").to_numpy(zero_copy_only=False)),
        atol=1e-5,
    )


def _tiny_mlm(folder, seed=4):
    from transformers import BertConfig, BertForMaskedLM

    from pipeline.testing import SHAPES, save_tokenizer

    torch.manual_seed(seed)
    BertForMaskedLM(BertConfig(vocab_size=30522, max_position_embeddings=64, **SHAPES["tiny"])).eval().save_pretrained(
        folder
    )
    save_tokenizer(folder)
    return str(folder)


def test_mlm_top_k_equals_the_masked_lm_forward(tmp_path, tiny_teacher):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from pipeline.cache import to_torch

    mlm = _tiny_mlm(tmp_path / "mlm")
    rows = corpus(11)
    write_augmented(tmp_path / "out/augmented/train/tinybert", rows)
    tc = TeacherConfig(
        model=tiny_teacher,
        layers=[],
        max_length=48,
        token_budget=96,
        shard_rows=5,
        cpu_threads=1,
        finetune={"enabled": False},
        mlm_top_k=5,
        mlm_model=mlm,
    )
    run_teacher(job(tmp_path), tc, inputs=["augmented/train/tinybert"], use_ray=False)
    cache = open_cache(str(tmp_path / "out/teacher/augmented/train/tinybert"))
    assert cache.mlm_top_k == 5 and cache.manifest["mlm_teacher"]["weights_sha256"]
    table = cache.read_table()
    tok, model = AutoTokenizer.from_pretrained(mlm), AutoModelForMaskedLM.from_pretrained(mlm).eval()
    for i, r in enumerate(rows):
        enc = tok(r["text_a"], r["text_b"], truncation=True, max_length=48, return_tensors="pt")
        with torch.inference_mode():
            values, ids = model(**enc).logits[0].topk(5, dim=-1)
        n = enc["input_ids"].shape[1]
        stored_ids = np.asarray(table.column("mlm_top_ids")[i].as_py()).reshape(n, 5)
        stored = np.asarray(table.column("mlm_top_logits")[i].as_py()).reshape(n, 5)
        np.testing.assert_allclose(stored, values.numpy(), rtol=1e-4, atol=1e-4)
        assert (stored_ids == ids.numpy()).mean() > 0.99  # only exact ties may order differently
    batch = to_torch(table.slice(0, 4), cache.hidden_size)
    lens = table.column("num_tokens").to_numpy()[:4]
    assert batch["mlm_top_ids"].shape == (4, lens.max(), 5) and (batch["mlm_top_ids"][0, lens[0] :] == -1).all()


def test_mlm_top_k_needs_a_masked_lm_head(tmp_path, tiny_teacher):
    from pipeline.teacher import TeacherError

    write_augmented(tmp_path / "out/augmented/train/tinybert", corpus(3))
    tc = TeacherConfig(
        model=tiny_teacher, layers=[], max_length=48, cpu_threads=1, finetune={"enabled": False}, mlm_top_k=5
    )  # the classifier itself has no masked-LM head
    with pytest.raises(TeacherError, match="no masked-LM head"):
        run_teacher(job(tmp_path), tc, inputs=["augmented/train/tinybert"], use_ray=False)


def test_cpu_inference_layout():
    """One single-threaded actor per CPU; CPUs spread over the actors when shards are fewer; never
    more actors than shards; teacher.workers / teacher.cpu_threads fix either number."""
    from pipeline.teacher.stage import cpu_inference_layout

    assert cpu_inference_layout(2, 5) == (2, 1)
    assert cpu_inference_layout(16, 100) == (16, 1)
    assert cpu_inference_layout(16, 4) == (4, 4)
    assert cpu_inference_layout(32, 3) == (3, 8)  # at most 8 threads per actor
    assert cpu_inference_layout(2, 1) == (1, 2)
    assert cpu_inference_layout(2, 0) == (1, 2)
    assert cpu_inference_layout(8, 100, workers=2) == (2, 4)
    assert cpu_inference_layout(8, 100, threads=4) == (2, 4)
    assert cpu_inference_layout(8, 1, threads=4) == (1, 4)
    assert cpu_inference_layout(8, 100, workers=3, threads=1) == (3, 1)


_LAYOUT_RUN = """
import json, sys
from pipeline.config import parse_config
from pipeline.teacher import TeacherConfig
from pipeline.teacher.stage import run_teacher
job, teacher = json.loads(sys.argv[1]), json.loads(sys.argv[2])
run_teacher(parse_config(job, check_files=False), TeacherConfig(**teacher), inputs=["augmented/train/tinybert"],
            use_ray=False)
"""


def _layout_run(root, model, threads, env):
    import json
    import subprocess
    import sys

    write_augmented(root / "out/augmented/train/tinybert", corpus(300, seed=5), part_rows=100)
    job = {
        "name": "t",
        "task": "sst2",
        "seed": 1,
        "output_dir": str(root / "out"),
        "labels": ["negative", "positive"],
        "inputs": {"train": {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}},
    }
    teacher = {
        "model": model,
        "layers": [1],
        "max_length": 48,
        "shard_rows": 150,
        "cpu_threads": threads,
        "finetune": {"enabled": False},
    }
    subprocess.run(
        [sys.executable, "-c", _LAYOUT_RUN, json.dumps(job), json.dumps(teacher)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return open_cache(str(root / "out/teacher/augmented/train/tinybert")).read_table()


def test_cache_bits_do_not_depend_on_threads(tmp_path):
    """A resume on another layout (1 actor x 2 threads instead of 2 x 1) computes the same bits. Each
    run is a fresh process, as an actor is, with no MKL_CBWR of its own: the teacher pins MKL's
    summation order itself (runtime/numerics.py; without it, 2 of 2,000 logits of the bundled MiniLM
    differed in 1 of 5 two-thread runs here, too rarely to show in a test; the pin itself is checked
    in test_model_workers_pin_numerics)."""
    import os

    from pipeline.testing import random_teacher

    # wide enough (384) for MKL to split a product's sums over threads, one layer to stay quick
    model = random_teacher(
        tmp_path / "model",
        dict(num_hidden_layers=1, hidden_size=384, num_attention_heads=6, intermediate_size=1536),
        seed=2,
        max_position_embeddings=64,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    one, two = (_layout_run(tmp_path / f"t{t}", model, t, env) for t in (1, 2))
    for name in ("logits", "hidden_1"):
        assert one.column(name).equals(two.column(name)), name


def test_model_workers_pin_numerics(monkeypatch, tiny_teacher):
    """Every model-running Ray worker starts with MKL's strict reproducible mode, and a model loaded
    in a process that has none sets it before its first product."""
    import os

    from pipeline.runtime.numerics import PINNED_ENV
    from pipeline.runtime.resources import Resources
    from pipeline.teacher.model import TeacherModel

    assert PINNED_ENV == {"MKL_CBWR": "AUTO,STRICT"}
    assert Resources(model=True, actors=True).ray_options()["runtime_env"] == {"env_vars": PINNED_ENV}
    assert "runtime_env" not in Resources(cpus=1).ray_options()  # plain tasks share the prestarted workers
    monkeypatch.delenv("MKL_CBWR", raising=False)
    TeacherModel.load(tiny_teacher, max_length=48)
    assert os.environ["MKL_CBWR"] == "AUTO,STRICT"
    monkeypatch.setenv("MKL_CBWR", "AVX2,STRICT")  # the user's own choice is kept
    TeacherModel.load(tiny_teacher, max_length=48)
    assert os.environ["MKL_CBWR"] == "AVX2,STRICT"
