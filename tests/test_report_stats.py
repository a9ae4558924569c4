"""The job report's statistics, against values worked out by hand."""

import math
import os
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import parse_config
from pipeline.report import stats
from pipeline.report.collect import collect_teacher_and_cache
from pipeline.report.stats import EditCounts, Span


def test_word_diff_marks_replaced_masked_and_dropped_words():
    spans = stats.word_diff("the film is a quietly moving portrait", "the movie is a [MASK] moving")
    assert spans == [
        Span("same", "the"),
        Span("replaced", "movie", " "),
        Span("same", "is a", " "),
        Span("masked", "[MASK]", " "),
        Span("same", "moving", " "),
        Span("dropped", "portrait", " "),
    ]


def test_word_diff_ignores_case_and_accents_and_keeps_the_variants_spacing():
    # TinyBERT writes variants lower-cased and re-tokenized: only "charming" -> "lovely" changed
    spans = stats.word_diff("It's a charming café comedy.", "it's a lovely cafe comedy .")
    assert spans == [Span("same", "it's a"), Span("replaced", "lovely", " "), Span("same", "cafe comedy .", " ")]
    assert "".join(s.lead + s.text for s in spans) == "it's a lovely cafe comedy ."


def test_word_diff_of_an_ngram_and_of_a_longer_replacement():
    # Tang's n-gram sampling: words before and after the kept n-gram are dropped
    assert stats.word_diff("a b c d e f", "c d") == [
        Span("dropped", "a b"),
        Span("same", "c d", " "),
        Span("dropped", "e f", " "),
    ]
    # one word replaced by three: one replacement, two inserted words
    assert stats.word_diff("good film", "a really fine film") == [
        Span("replaced", "a"),
        Span("inserted", "really fine", " "),
        Span("same", "film", " "),
    ]
    assert stats.word_diff("x", "") == [Span("dropped", "x")]


def test_edit_counts_and_per_word_rates():
    a = stats.edit_counts("the film is a quietly moving portrait", "the movie is a [MASK] moving")
    b = stats.edit_counts("the film is a quietly moving portrait", "quietly moving")
    c = stats.edit_counts("good film", "a really fine film")
    assert a == EditCounts(7, 6, replaced=1, masked=1, dropped=1)
    assert b == EditCounts(7, 2, dropped=5)
    assert c == EditCounts(2, 4, replaced=1, inserted=2)
    rates = stats.method_rates([a, b, c])
    # 16 original words: 2 replaced, 1 masked, 6 dropped
    assert rates.variants == 3 and rates.original_words == 16
    assert rates.replaced_rate == pytest.approx(2 / 16)
    assert rates.masked_rate == pytest.approx(1 / 16)
    assert rates.dropped_rate == pytest.approx(6 / 16)
    assert rates.length_changes == [-1, -5, 2] and rates.mean_length_change == pytest.approx(-4 / 3)


def test_custom_mask_token_is_one_word():
    assert stats.split_words("a <mask> b", "<mask>") == ["a", "<mask>", "b"]
    assert stats.edit_counts("a good b", "a <mask> b", "<mask>") == EditCounts(3, 3, masked=1)


def test_tries_made():
    # TinyBERT tries every text of a pair on its own, Tang tries every example
    assert stats.tries_made("tinybert", 20, 300, 0) == 6000
    assert stats.tries_made("tinybert", 10, 4, 3) == 70
    assert stats.tries_made("tang", 10, 4, 3) == 40


def test_flip_rate_of_known_logits():
    ids = ["a", "a1", "a2", "b", "b1", "c1"]
    parents = ["a", "a", "a", "b", "b", "c"]  # c1's original is not in the cache: not compared
    variants = [0, 1, 2, 0, 1, 1]
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0], [1.0, 0.0], [0.0, 9.0]])
    flips = stats.flip_stats(ids, parents, variants, logits)
    assert (flips.flips, flips.compared) == (2, 3) and flips.rate == pytest.approx(2 / 3)
    assert stats.flip_stats([], [], [], np.zeros((0, 2))).rate is None


def test_confidence_agreement_and_label_counts():
    logits = np.array([[0.0, 0.0], [math.log(3.0), 0.0], [0.0, 1000.0]])
    np.testing.assert_allclose(stats.confidence(logits), [0.5, 0.75, 1.0])
    assert stats.label_agreement([0, 1, None], logits) == (1, 2)  # argmax of a tie is the first label
    assert stats.label_counts(logits, 3) == [2, 1, 0]


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory):
    """A teacher cache of 19 rows in 3 shards (tiny random teacher, hidden layers 0 and 2)."""
    import torch

    from pipeline.teacher import TeacherConfig
    from pipeline.teacher.stage import run_teacher
    from pipeline.testing import random_teacher, write_augmented

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("report-cache")
    model = random_teacher(root / "tiny", "tiny", num_labels=2, seed=1, max_position_embeddings=64)
    cfg = parse_config(
        {
            "name": "t",
            "task": "sst2",
            "seed": 1,
            "output_dir": str(root / "out"),
            "labels": ["negative", "positive"],
            "inputs": {"train": {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}},
        },
        check_files=False,
    )
    rows = []
    for p, n_variants in enumerate([3, 4, 2, 3, 2]):  # 5 originals + 14 variants
        for v in range(n_variants + 1):
            rows.append(
                {
                    "example_id": f"e{p}" if v == 0 else f"e{p}v{v}",
                    "parent_id": f"e{p}",
                    "variant": v,
                    "method": "tang",
                    "text_a": " ".join(["word"] * (2 + p + v)) + " film",
                    "label": "positive",
                    "label_id": 1,
                }
            )
    write_augmented(root / "out" / "augmented" / "train" / "tang", rows)
    run_teacher(
        cfg,
        TeacherConfig(
            model=model,
            layers=[0, 2],
            max_length=32,
            token_budget=64,
            shard_rows=7,
            cpu_threads=1,
            finetune={"enabled": False},
        ),
        inputs=["augmented/train/tang"],
        use_ray=False,
    )
    torch.set_num_threads(before)
    return root / "out"


def test_cache_bytes_per_column_and_per_token(small_cache):
    folder = small_cache / "teacher" / "augmented" / "train" / "tang"
    files = sorted(folder.glob("shard-*.parquet"))
    assert len(files) == 3
    columns = stats.column_bytes(pq.ParquetFile(f).metadata for f in files)
    by_name = {c.column: c for c in columns}
    assert {"hidden_0", "hidden_2", "logits", "input_ids", "text_a"} <= set(by_name)
    # A Parquet file is "PAR1", the column chunks, the footer, its 4-byte length and "PAR1":
    # the column bytes of the footers account for every other byte of the files.
    footer = 0
    for f in files:
        with open(f, "rb") as fh:
            fh.seek(-8, os.SEEK_END)
            footer += struct.unpack("<i", fh.read(4))[0] + 12
    size = sum(os.path.getsize(f) for f in files)
    assert sum(c.compressed for c in columns) + footer == size
    tokens = sum(pq.read_table(f, columns=["num_tokens"]).column("num_tokens").to_numpy().sum() for f in files)
    assert stats.bytes_per_token(size, tokens) == pytest.approx(size / tokens)
    # decoded logits hold at least 19 rows x 2 float32 values; hidden_0 at least tokens x 32 float16 values
    assert by_name["logits"].uncompressed >= 19 * 2 * 4
    assert by_name["hidden_0"].uncompressed >= tokens * 32 * 2
    assert columns == sorted(columns, key=lambda c: -c.compressed)

    teacher, cache = collect_teacher_and_cache(small_cache)
    fig = cache.data["caches"][0]
    assert fig["name"] == "augmented/train/tang" and fig["rows"] == 19 and fig["tokens"] == tokens
    assert fig["bytes"] == size and fig["bytes_per_token"] == pytest.approx(size / tokens)
    hidden = by_name["hidden_0"].compressed + by_name["hidden_2"].compressed
    assert fig["bytes_per_hidden_value"] == pytest.approx(hidden / (tokens * 32 * 2))

    # teacher figures: the flip rate of the cached logits, computed here straight from the shards
    table = pa.concat_tables(pq.read_table(f, columns=["example_id", "parent_id", "variant", "logits"]) for f in files)
    logits = np.array(table.column("logits").to_pylist())
    expected = stats.flip_stats(
        table.column("example_id").to_pylist(),
        table.column("parent_id").to_pylist(),
        table.column("variant").to_pylist(),
        logits,
    )
    t = teacher.data["caches"][0]
    assert t["flips"] == expected and expected.compared == 19 - 5
    assert t["confidence_original"].n == 5 and t["confidence_variant"].n == 14
    conf, variant = stats.confidence(logits), table.column("variant").to_numpy()
    assert t["confidence_variant"].mean == pytest.approx(conf[variant > 0].mean())
    assert (
        t["confidence_original"].counts.tolist()
        == np.histogram(conf[variant == 0], t["confidence_original"].edges)[0].tolist()
    )
    assert sum(t["predicted"].values()) == 19


def test_chinese_words_are_characters_and_keep_their_spacing():
    # Chinese is written without spaces: each ideograph is a word, full-width punctuation one mark
    assert stats.split_words("手机很好用，推荐！ok") == ["手", "机", "很", "好", "用", "，", "推", "荐", "！", "ok"]
    spans = stats.word_diff("这个手机很好用", "这个电话很好用")
    assert spans == [Span("same", "这个"), Span("replaced", "电话"), Span("same", "很好用")]
    assert "".join(s.lead + s.text for s in spans) == "这个电话很好用"
    assert stats.edit_counts("这个手机很好用", "这个[MASK]机很好") == EditCounts(7, 6, masked=1, dropped=1)
