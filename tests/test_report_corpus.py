"""The report's corpus reader: exact counts in one streaming pass, a bounded seeded sample."""

import itertools
import random
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.augment.method import AUGMENTED_SCHEMA
from pipeline.report import corpus
from pipeline.report.corpus import SampledCorpus, VariantCounts, scan


def _rows(groups: list[tuple[str, int]], pair: bool = False) -> list[dict]:
    """Rows as the augment stage writes them: each original, then its variants."""
    rows = []
    for parent, n in groups:
        for v in range(n + 1):
            rows.append(
                {
                    "example_id": parent if v == 0 else f"{parent}-v{v}",
                    "parent_id": parent,
                    "method": "tang",
                    "variant": v,
                    "text_a": f"text of {parent}" + ("" if v == 0 else f" changed {v}"),
                    "text_b": f"second of {parent}" if pair and v == 0 else None,
                    "label": None,
                    "label_id": None,
                    "score": None,
                    "seed": 0,
                }
            )
    return rows


def _write(tmp_path, rows: list[dict], cuts: list[int]) -> list[str]:
    """``rows`` written as part files cut at ``cuts`` (a group may run on into the next file)."""
    files, bounds = [], [0, *cuts, len(rows)]
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        path = tmp_path / f"part-{k:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows[a:b], AUGMENTED_SCHEMA), path)
        files.append(str(path))
    return files


@pytest.mark.parametrize("batch_rows", [1, 3, 7, 65_536])
def test_counts_are_exact_across_batches_and_files(tmp_path, monkeypatch, batch_rows):
    monkeypatch.setattr(corpus, "BATCH_ROWS", batch_rows)
    rng = random.Random(5)
    groups = [(f"e{i:03d}", rng.choice([0, 0, 1, 2, 5, 9])) for i in range(60)]
    rows = _rows(groups, pair=True)
    # cuts inside groups, at a group's start, and an empty file
    files = _write(tmp_path, rows, [4, 4, 50, 51, 130])
    got = scan(files, max_examples=1000, seed=0)
    assert got.rows == len(rows) and got.originals == 60 and got.second_texts == 60
    assert got.per_example == VariantCounts(dict(sorted(Counter(n for _, n in groups).items())))
    assert got.sample == sorted(e for e, _ in groups)  # fewer originals than the bound: all of them


def test_a_corpus_not_written_original_first_is_still_counted_exactly(tmp_path):
    groups = [("a", 2), ("b", 0), ("c", 3)]
    rows = _rows(groups)
    random.Random(1).shuffle(rows)
    got = scan(_write(tmp_path, rows, [5]), max_examples=10, seed=0)
    assert got.per_example == VariantCounts({0: 1, 2: 1, 3: 1}) and got.originals == 3 and got.rows == 8


def test_the_sample_is_bounded_seeded_and_the_same_whatever_the_layout(tmp_path):
    groups = [(f"e{i:04d}", 3) for i in range(500)]
    rows = _rows(groups)
    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    one = scan(_write(tmp_path / "one", rows, []), 40, seed=7)
    many = scan(_write(tmp_path / "many", rows, [100, 999, 1500]), 40, seed=7)
    assert len(one.sample) == 40 and one.sample == many.sample
    assert scan(_write(tmp_path / "many", rows, []), 40, seed=8).sample != one.sample
    # the sample is the originals of smallest seeded key
    keys = sorted(groups, key=lambda g: corpus.sample_key(7, g[0]))
    assert one.sample == sorted(e for e, _ in keys[:40])
    # the counts stay exact while only the sample's texts are read
    assert one.per_example == VariantCounts({3: 500}) and one.rows == 2000


def test_the_sampled_corpus_holds_the_sampled_originals_and_their_variants_only(tmp_path):
    rows = _rows([("a", 2), ("b", 1), ("c", 3)])
    files = _write(tmp_path, rows, [4])
    sampled = SampledCorpus.read(files, ["a", "c"])
    assert sampled.ids == ["a", "a-v1", "a-v2", "c", "c-v1", "c-v2", "c-v3"]
    assert sampled.originals == {"a": 0, "c": 3}
    assert sampled.edits(2, "[MASK]").inserted == 2  # "changed 2" added to "text of a"
    assert VariantCounts({}).mean is None and VariantCounts({0: 1, 4: 3}).mean == 3.0


def _cache_rows(groups: list[tuple[str, int]], seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {**r, "logits": [rng.uniform(-2, 2), rng.uniform(-2, 2)]}
        for r in _rows(groups)
        for r in [{k: r[k] for k in ("example_id", "parent_id", "variant")}]
    ]


@pytest.mark.parametrize("shuffle", [False, True])
def test_label_flips_read_batch_by_batch_equal_the_whole_table_count(tmp_path, monkeypatch, shuffle):
    from types import SimpleNamespace

    from pipeline.report import stats
    from pipeline.report.teacher_figures import _Flips, _flips_ungrouped, _logits

    monkeypatch.setattr(corpus, "BATCH_ROWS", 4)
    rows = _cache_rows([(f"e{i}", i % 4) for i in range(30)], seed=3)
    if shuffle:
        random.Random(2).shuffle(rows)
    files = []
    for k, (a, b) in enumerate([(0, 11), (11, 12), (12, len(rows))]):
        files.append(str(tmp_path / f"shard-{k}.parquet"))
        pq.write_table(pa.Table.from_pylist(rows[a:b]), files[-1])
    whole = pa.Table.from_pylist(rows)
    expected = stats.flip_stats(
        whole["example_id"].to_pylist(), whole["parent_id"].to_pylist(), whole["variant"].to_pylist(), _logits(whole)
    )
    flips = _Flips()
    corpus.each_batch(
        files,
        ["example_id", "parent_id", "variant", "logits"],
        lambda b: flips.add(b["example_id"], b["parent_id"], b["variant"].to_numpy(), _logits(b).argmax(axis=1)),
    )
    assert flips.grouped is not shuffle and expected.compared == 43 and expected.flips > 0
    if not shuffle:
        assert stats.FlipStats(flips.flips, flips.compared) == expected
    assert _flips_ungrouped(SimpleNamespace(files=files)) == expected
