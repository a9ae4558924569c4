"""The ingest stage end to end on local Ray: broken files, counts, stable ids, formats."""

import glob
import gzip
import itertools
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import parse_config
from pipeline.ingest import validate as v
from pipeline.ingest.readers import InputError
from pipeline.ingest.stage import IngestFailed, examples_dir, rejects_dir, run_ingest

pytestmark = pytest.mark.ray


def _job(tmp_path, path, columns=None, fmt=None, limit=None, **ingest):
    spec = {"path": str(path), "columns": columns or {"text_a": "sentence", "label": "label"}}
    if fmt:
        spec["format"] = fmt
    if limit is not None:
        spec["limit"] = limit
    return parse_config(
        {
            "name": "t",
            "task": "sst2",
            "output_dir": str(tmp_path / "out"),
            "labels": ["negative", "positive"],
            "inputs": {"train": spec},
            "ingest": {"max_chars": 200, **ingest},
        },
        "test",
    )


def _read(cfg, split="train"):
    d = examples_dir(cfg, split)
    kept = pq.read_table(d).to_pylist()
    rejects = []
    for path in sorted(glob.glob(f"{rejects_dir(cfg, split)}/part-*.jsonl")):  # one file per task with rejects
        with open(path, encoding="utf-8") as fh:
            rejects += [json.loads(line) for line in fh]
    with open(f"{d}/_summary.json", encoding="utf-8") as fh:
        summary = json.load(fh)
    return kept, rejects, summary


BROKEN = [
    (b"a fine film\tpositive", None),
    (b"too\tmany\tcolumns", v.WRONG_COLUMNS),
    (b"   \tnegative", v.EMPTY_TEXT),
    (b"caf\xe9 au lait\tpositive", v.UNDECODABLE),
    (b"mid\xef\xbb\xbfbom\tpositive", v.BOM_IN_ROW),
    (b"windows line\tnegative\r", None),  # CRLF normalised by default
    (b"lone\rcarriage\tnegative", v.STRAY_CR),
    (b"an unknown label\tneutral", v.BAD_LABEL),
    (b"x" * 201 + b"\tpositive", v.TOO_LONG),
    (b"", v.WRONG_COLUMNS),  # an empty line in the middle of the file
    (b"the last good row\tnegative", None),
]


def test_broken_file_every_row_accounted_for(tmp_path, ray_local):
    path = tmp_path / "broken.tsv"
    path.write_bytes(v.BOM + b"sentence\tlabel\n" + b"\n".join(raw for raw, _ in BROKEN) + b"\n")
    cfg = _job(tmp_path, path)
    run_ingest(cfg)
    kept, rejects, summary = _read(cfg)
    assert [r["text_a"] for r in kept] == ["a fine film", "windows line", "the last good row"]
    assert [r["line"] for r in kept] == [2, 7, 12]
    expected = [(i + 2, reason) for i, (_, reason) in enumerate(BROKEN) if reason]
    assert [(r["line"], r["reason"]) for r in rejects] == expected
    assert all(r["source"] == "train/broken.tsv" and r["detail"] for r in rejects)
    assert summary["rows_in"] == len(BROKEN) == summary["kept"] + summary["rejected"]
    assert summary["fixes"]["crlf_normalised"] == 1
    assert summary["rejected_by_reason"][v.WRONG_COLUMNS] == 2


def test_five_percent_corrupted_keeps_every_good_row(tmp_path, ray_local):
    rng = random.Random(7)
    good, lines, bad_lines = [], [b"sentence\tlabel"], {}
    corruptions = [
        b"\xff\xfe broken bytes\tpositive",
        b"no label column",
        b"\tnegative",
        b"text\tmaybe",
        b"a\tb\tc",
        b"bom \xef\xbb\xbf inside\tpositive",
    ]
    for i in range(2000):
        line_no = len(lines) + 1
        if rng.random() < 0.05:
            lines.append(rng.choice(corruptions))
            bad_lines[line_no] = lines[-1]
        else:
            text = f"review number {i} says {'good' if i % 2 else 'bad'} things"
            lines.append(f"{text}\t{'positive' if i % 2 else 'negative'}".encode())
            good.append((line_no, text))
    path = tmp_path / "corrupted.tsv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    cfg = _job(tmp_path, path, chunk_bytes=4096)  # many chunks → many Ray tasks
    run_ingest(cfg)
    kept, rejects, summary = _read(cfg)
    assert 70 < len(bad_lines) < 130
    assert [(r["line"], r["text_a"]) for r in kept] == good
    assert {r["line"] for r in rejects} == set(bad_lines)
    assert all(r["reason"] and r["raw"] is not None for r in rejects)
    assert summary["rows_in"] == 2000 == summary["kept"] + summary["rejected"]
    assert summary["kept"] == len(good) and summary["rejected"] == len(bad_lines)


def test_rows_and_ids_identical_across_chunk_sizes_and_executors(tmp_path, ray_local):
    path = tmp_path / "data.tsv"
    path.write_text(
        "sentence\tlabel\n" + "".join(f"sentence {i} is here\tpositive\n" for i in range(1500)), encoding="utf-8"
    )
    outputs, files = [], []
    for chunk_bytes, executor in ((4096, "ray"), (4096, "local"), (1 << 20, "ray")):
        cfg = _job(tmp_path / f"{chunk_bytes}{executor}", path, chunk_bytes=chunk_bytes)
        run_ingest(cfg, executor=executor)
        d = examples_dir(cfg, "train")
        outputs.append(pq.read_table(d).to_pylist())
        files.append({p.rsplit("/", 1)[-1]: open(p, "rb").read() for p in sorted(glob.glob(f"{d}/part-*.parquet"))})
    assert outputs[0] == outputs[1] == outputs[2]
    assert files[0] == files[1] and len(files[0]) > 5 and len(files[2]) == 1  # one file per task
    assert len({r["example_id"] for r in outputs[0]}) == 1500
    assert [r["line"] for r in outputs[0]] == list(range(2, 1502))


def test_multi_line_csv_same_bytes_on_ray_and_local(tmp_path, ray_local):
    """CSV records spanning lines: the quote-state scans run as Ray tasks as they run locally; the
    part files are the same bytes, and their rows those of one task."""
    import csv

    texts = [f'review {i}:\n"quoted", with a comma\n' if i % 2 else f"review {i}" for i in range(600)]
    path = tmp_path / "d.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["sentence", "label"])
        writer.writerows([t, "positive"] for t in texts)
    files, rows = [], []
    for chunk_bytes, executor in ((1024, "ray"), (1024, "local"), (1 << 20, "local")):
        cfg = _job(tmp_path / f"{chunk_bytes}{executor}", path, chunk_bytes=chunk_bytes)
        summary = run_ingest(cfg, executor=executor)["train"]
        assert summary.rows_in == summary.kept == 600
        d = examples_dir(cfg, "train")
        rows.append(pq.read_table(d).to_pylist())
        files.append({p.rsplit("/", 1)[-1]: open(p, "rb").read() for p in sorted(glob.glob(f"{d}/part-*.parquet"))})
    assert files[0] == files[1] and len(files[0]) > 5 and len(files[2]) == 1
    assert rows[0] == rows[2] and [r["text_a"] for r in rows[0]] == [t.strip() for t in texts]


def test_text_ranges_cut_at_line_starts(tmp_path):
    from pipeline.ingest import readers

    path = tmp_path / "d.tsv"
    lines = [b"h\tl\n"] + [b"x" * (i % 37) + b"\tpositive\n" for i in range(400)] + [b"last\tpositive"]
    path.write_bytes(b"".join(lines))
    data = path.read_bytes()
    for chunk in (256, 300, 1000, 1 << 20):
        ranges = readers.text_ranges(str(path), chunk, header=True)
        assert ranges[0][0] == 4 and ranges[-1][1] == len(data)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # contiguous
        assert all(data[a - 1 : a] == b"\n" for a, _ in ranges)  # each starts a line
        counts = [readers.count_lines(str(path), a, b) for a, b in ranges]
        assert sum(counts) == 401


def test_jsonl_parquet_and_gzip_inputs(tmp_path, ray_local):
    rows = [{"sentence": f"text {i}", "label": "positive" if i % 2 else "negative"} for i in range(50)]
    rows[10]["sentence"] = "  "
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n", encoding="utf-8")
    pqf = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), pqf, row_group_size=16)
    gz = tmp_path / "d.tsv.gz"
    gz.write_bytes(
        gzip.compress(b"sentence\tlabel\n" + b"".join(f"{r['sentence']}\t{r['label']}\n".encode() for r in rows))
    )
    for path, n_in in ((jl, 51), (pqf, 50), (gz, 50)):
        cfg = _job(tmp_path / f"out-{path.name}", path)
        summary = run_ingest(cfg)["train"]
        kept, rejects, _ = _read(cfg)
        assert summary.rows_in == n_in and summary.kept == 49 and summary.rejected == n_in - 49
        header = 1 if path == gz else 0  # row 10 (0-based) is the empty one
        assert rejects[0]["line"] == 11 + header and rejects[0]["reason"] == v.EMPTY_TEXT
        assert kept[10]["line"] == 12 + header and kept[10]["text_a"] == "text 11"


def test_limit_reads_only_first_rows(tmp_path, ray_local):
    path = tmp_path / "d.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"s {i}\tpositive\n" for i in range(100)), encoding="utf-8")
    cfg = parse_config(
        {
            "name": "t",
            "task": "sst2",
            "output_dir": str(tmp_path / "out"),
            "labels": ["negative", "positive"],
            "inputs": {"train": {"path": str(path), "limit": 30, "columns": {"text_a": "sentence", "label": "label"}}},
        },
        "t",
    )
    assert run_ingest(cfg)["train"].rows_in == 30
    assert [r["text_a"] for r in _read(cfg)[0]][-1] == "s 29"


def test_strict_fails_after_writing_rejects(tmp_path, ray_local):
    path = tmp_path / "d.tsv"
    path.write_text("sentence\tlabel\ngood\tpositive\nbad\tneutral\n", encoding="utf-8")
    cfg = _job(tmp_path, path)
    with pytest.raises(IngestFailed, match="rejected"):
        run_ingest(cfg, strict=True)
    assert _read(cfg)[1][0]["reason"] == v.BAD_LABEL


def test_header_missing_column_names_file_and_line(tmp_path, ray_local):
    path = tmp_path / "d.tsv"
    path.write_text("text\tlabel\ngood\tpositive\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"d.tsv:1: column\(s\) \['sentence'\] not in the header"):
        run_ingest(_job(tmp_path, path))


def _damaged_parquet(path):
    """Two row groups, the second's text column damaged inside its compressed dictionary page (the
    footer intact)."""
    rows = [{"sentence": f"text number {i} is here", "label": "positive"} for i in range(2000)]
    pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd", row_group_size=1000)
    data = bytearray(path.read_bytes())
    start = pq.ParquetFile(path).metadata.row_group(1).column(0).dictionary_page_offset + 30
    for i in range(32):
        data[start + i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["truncated-gz", "random-gz", "damaged-parquet"])
def test_a_damaged_file_is_exit_2_naming_it(tmp_path, ray_local, capsys, kind):
    """On Ray workers as in this process: the file, where and why; no traceback."""
    import os

    import yaml

    from pipeline.cli import main

    if kind == "damaged-parquet":
        path = tmp_path / "d.parquet"
        _damaged_parquet(path)
        where = "(row group 1): ZSTD decompression failed"
    else:
        path = tmp_path / "d.tsv.gz"
        body = gzip.compress(b"sentence\tlabel\n" + b"".join(b"row %d\tpositive\n" % i for i in range(5000)))
        path.write_bytes(body[: len(body) // 2] if kind == "truncated-gz" else os.urandom(3000))
        where = (
            "(its compressed stream): Truncated compressed stream"
            if kind == "truncated-gz"
            else "(its first line): zlib inflate failed"
        )
    job = tmp_path / "job.yaml"
    job.write_text(
        yaml.safe_dump(
            {
                "name": "t",
                "task": "sst2",
                "output_dir": str(tmp_path / "out"),
                "labels": ["negative", "positive"],
                "inputs": {"train": {"path": str(path), "columns": {"text_a": "sentence", "label": "label"}}},
            }
        ),
        encoding="utf-8",
    )
    for executor in ("ray", "local"):
        assert main(["ingest", str(job), "--executor", executor]) == 2
        err = capsys.readouterr().err
        assert f"error: {path}: cannot be read {where}" in err, err
        assert "Traceback" not in err


def test_hostile_jsonl_rows_are_rejected_and_the_rest_kept(tmp_path, ray_local):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"sentence": f"fine row {i}", "label": "positive"}) for i in range(6)]
    lines[1] = '{"sentence": "lone \\ud800 surrogate", "label": "positive"}'
    lines[3] = "[" * 100_000 + "]" * 100_000
    lines[4] = '{"sentence": "\\u0000\\u200b", "label": "positive"}'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = _job(tmp_path, path)
    summary = run_ingest(cfg)["train"]
    kept, rejects, _ = _read(cfg)
    assert summary.rows_in == 6 == summary.kept + summary.rejected and summary.kept == 3
    assert [r["line"] for r in kept] == [1, 3, 6]
    assert [(r["line"], r["reason"]) for r in rejects] == [(2, v.UNDECODABLE), (4, v.BAD_JSON), (5, v.EMPTY_TEXT)]
