"""CSV records that span lines (RFC 4180 quoted fields holding line breaks), as pandas, Excel and
the csv module write them: read whole, numbered by their first line, split across tasks only at
record starts. Runs the stage with --executor local (no Ray)."""

import csv
import glob
import gzip
import itertools
import json
import random

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.config import parse_config
from pipeline.ingest import readers
from pipeline.ingest import validate as v
from pipeline.ingest.stage import examples_dir, plan, rejects_dir, run_ingest
from tests.test_ingest_stage import _job as stage_job


def _job(tmp_path, path, limit=None, **ingest):
    """test_ingest_stage's job with room for the longer texts of these files."""
    return stage_job(tmp_path, path, limit=limit, **{"max_chars": 2000, **ingest})


def _run(cfg):
    summary = run_ingest(cfg, executor="local")["train"]
    kept = pq.read_table(examples_dir(cfg, "train")).to_pylist()
    rejects = []
    for path in sorted(glob.glob(f"{rejects_dir(cfg, 'train')}/part-*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            rejects += [json.loads(line) for line in fh]
    assert summary.rows_in == summary.kept + summary.rejected == len(kept) + len(rejects)
    return summary, kept, rejects


def _texts(n, seed=3):
    """Review-like texts, a third of them with line breaks (blank lines too), quotes and commas."""
    rng = random.Random(seed)
    words = ["good", "bad", 'a "quoted" word', "plot, pacing", "acting", "5 stars", "naïve"]
    out = []
    for i in range(n):
        parts = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 12))) for _ in range(3)]
        if i % 3 == 0:
            text = parts[0] + "\n" + parts[1] + ("\n\n" if i % 2 else "\n") + parts[2]
        else:
            text = " ".join(parts)
        out.append(f"review {i}: {text}")
    return out


def _first_lines(texts, first=2):
    """The physical line each record starts on, one record a text (plus its label) after the header."""
    lines = []
    for t in texts:
        lines.append(first)
        first += 1 + t.count("\n")
    return lines


def test_pandas_csv_with_line_breaks_is_150_records(tmp_path):
    """The issue's file: 150 records over 250 data lines came in as 250 rows, 200 of them rejected."""
    texts = [f"review {i}: the plot\nwas fine" if i % 3 else f"review {i}: fine" for i in range(150)]
    labels = ["positive" if i % 2 else "negative" for i in range(150)]
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"sentence": texts, "label": labels}).to_csv(path, index=False)
    assert path.read_bytes().count(b"\n") == 251  # header + 250 physical lines
    summary, kept, rejects = _run(_job(tmp_path, path))
    assert (summary.rows_in, summary.kept, summary.rejected) == (150, 150, 0) and rejects == []
    assert [r["text_a"] for r in kept] == texts  # line breaks kept as LF, as written
    assert [r["label"] for r in kept] == labels
    assert [r["line"] for r in kept] == _first_lines(texts)
    assert summary.fixes["crlf_normalised"] == 0


def test_pandas_csv_with_crlf_inside_texts_and_doubled_quotes(tmp_path):
    texts = _texts(90)
    texts[4] = 'windows\r\nline breaks, and ""doubled"" quotes'
    texts[7] = '"starts and ends with quotes"'
    path = tmp_path / "d.csv"
    pd.DataFrame({"label": ["positive"] * 90, "sentence": texts}).to_csv(path, index=False)
    summary, kept, rejects = _run(_job(tmp_path, path))
    assert summary.kept == 90 and rejects == []
    # A CRLF inside a quoted field is a CRLF line ending: normalised to LF (ingest.crlf), counted.
    assert [r["text_a"] for r in kept] == [t.replace("\r\n", "\n") for t in texts]
    assert summary.fixes["crlf_normalised"] == 1 and kept[4]["text_a"].startswith("windows\nline")
    assert [r["line"] for r in kept] == _first_lines(texts)


def test_csv_module_file_with_crlf_records(tmp_path):
    """csv.writer ends records with CRLF and writes a text's own LF (or CRLF) inside quotes as is."""
    texts = ["one line", "two\nlines", 'a "quoted"\r\nword', "blank\n\nline, and a comma", "last"]
    path = tmp_path / "d.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentence", "label"])
        writer.writerows([t, "negative"] for t in texts)
    summary, kept, rejects = _run(_job(tmp_path, path))
    assert rejects == [] and [r["text_a"] for r in kept] == [t.replace("\r\n", "\n") for t in texts]
    assert [r["line"] for r in kept] == [2, 3, 5, 7, 10]
    assert summary.fixes["crlf_normalised"] == 5  # every record ends in CRLF
    _, kept, rejects = _run(_job(tmp_path / "strict", path, crlf="reject"))
    assert kept == [] and {(r["line"], r["reason"]) for r in rejects} == {(n, v.CRLF) for n in (2, 3, 5, 7, 10)}


def test_quote_left_open_at_the_end_is_one_reject(tmp_path):
    body = "".join(f'"fine row {i}",positive\n' for i in range(40))
    tail = '"this quote never closes,positive\n' + "".join(f"row {i},negative\n" for i in range(60))
    path = tmp_path / "d.csv"
    path.write_text("sentence,label\n" + body + tail, encoding="utf-8")
    for chunk_bytes, name in ((1 << 20, "one"), (256, "many")):  # the open record spans several chunks
        cfg = _job(tmp_path / name, path, chunk_bytes=chunk_bytes)
        chunks = plan(cfg, "train")[1]
        assert len(chunks) > 1 if name == "many" else len(chunks) == 1
        assert chunks[-1].end == path.stat().st_size
        summary, kept, rejects = _run(cfg)
        assert (summary.rows_in, summary.kept, summary.rejected) == (41, 40, 1)
        assert [r["text_a"] for r in kept] == [f"fine row {i}" for i in range(40)]
        [rej] = rejects
        assert (rej["source"], rej["line"], rej["reason"]) == ("train/d.csv", 42, v.UNBALANCED_QUOTES)
        assert "still open at the end of the file" in rej["detail"] and "to line 102" in rej["detail"]
        assert rej["raw"] == tail.removesuffix("\n")  # the lost tail is in the reject, whole


def test_rejects_carry_the_first_line_of_their_record(tmp_path):
    rows = [
        '"fine\nand multi-line",positive',  # 2-3
        '"a label that\nis unknown",neutral',  # 4-5
        '"too, many\ncolumns",positive,extra',  # 6-7
        '"a lone\rcarriage return\ninside",negative',  # 8-9
        'a 27" screen,positive',  # 10: a quote inside a field is literal, not an open quote...
        '"still\nfine",negative',  # 11-12 ...so the lines after it are read as before
        '"text" after the quote,positive',  # 13
        "",  # 14: an empty line
        '"last\n\n",negative',  # 15-17
    ]
    path = tmp_path / "d.csv"
    path.write_bytes(("sentence,label\n" + "\n".join(rows) + "\n").encode())
    summary, kept, rejects = _run(_job(tmp_path, path))
    assert [(r["line"], r["text_a"]) for r in kept] == [(2, "fine\nand multi-line"), (11, "still\nfine"), (15, "last")]
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (4, v.BAD_LABEL),
        (6, v.WRONG_COLUMNS),
        (8, v.STRAY_CR),
        (10, v.UNBALANCED_QUOTES),
        (13, v.UNBALANCED_QUOTES),
        (14, v.WRONG_COLUMNS),
    ]
    assert rejects[0]["raw"] == '"a label that\nis unknown",neutral'
    assert summary.rows_in == 9


def test_multi_line_file_split_across_tasks_equals_one_task(tmp_path):
    texts = _texts(1500)
    labels = ["positive" if i % 2 else "negative" for i in range(1500)]
    texts[700] = "bad label"  # a reject in the middle, numbered the same either way
    labels[700] = "neutral"
    path = tmp_path / "d.csv"
    pd.DataFrame({"sentence": texts, "label": labels}).to_csv(path, index=False)

    ranges = readers.text_ranges(str(path), 1024, header=True)
    scans = [readers.scan_csv(str(path), a, b) for a, b in ranges]
    spans, _, _ = readers.csv_spans(ranges, scans)
    moved = sum(1 for a, _ in ranges[1:] if a not in {s for s, _ in spans})
    assert moved > 10  # many cuts fell inside a quoted field and were moved (or merged)

    outputs = []
    for chunk_bytes in (1024, 1 << 24):
        cfg = _job(tmp_path / str(chunk_bytes), path, chunk_bytes=chunk_bytes)
        chunks = plan(cfg, "train")[1]
        assert (len(chunks) > 50) if chunk_bytes == 1024 else (len(chunks) == 1)
        summary, kept, rejects = _run(cfg)
        assert summary.rows_in == 1500 and summary.rejected == 1
        outputs.append((kept, rejects))
        assert len(glob.glob(f"{examples_dir(cfg, 'train')}/part-*.parquet")) == len(chunks)
    assert outputs[0] == outputs[1]
    kept, rejects = outputs[0]
    lines = _first_lines(texts)
    assert [r["text_a"] for r in kept] == texts[:700] + texts[701:]
    assert [r["line"] for r in kept] == lines[:700] + lines[701:]
    assert [(r["line"], r["reason"]) for r in rejects] == [(lines[700], v.BAD_LABEL)]
    # The plan depends only on the input and the settings: planned again elsewhere, the same chunks.
    again = [plan(_job(tmp_path / name, path, chunk_bytes=1024), "train")[1] for name in ("a", "b")]
    assert again[0] == again[1] and len(again[0]) > 50


def test_limit_gz_and_no_header_count_records(tmp_path):
    texts = _texts(30)
    body = "".join(f'"{t.replace(chr(34), chr(34) * 2)}",positive\n' for t in texts)
    plain, gz = tmp_path / "d.csv", tmp_path / "d.csv.gz"
    plain.write_text("sentence,label\n" + body, encoding="utf-8")
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    lines = _first_lines(texts)
    for path in (plain, gz):
        cfg = _job(tmp_path / f"out-{path.name}", path, limit=10, chunk_bytes=256)
        summary, kept, _ = _run(cfg)
        assert summary.rows_in == 10 and [r["text_a"] for r in kept] == texts[:10]
        assert [r["line"] for r in kept] == lines[:10]
    # header: false and a BOM before the first record's opening quote
    bare = tmp_path / "bare.csv"
    bare.write_bytes(v.BOM + body.encode())
    cfg = parse_config(
        {
            "name": "t",
            "task": "sst2",
            "output_dir": str(tmp_path / "bare"),
            "labels": ["negative", "positive"],
            "inputs": {"train": {"path": str(bare), "header": False, "columns": {"text_a": "0", "label": "1"}}},
            "ingest": {"chunk_bytes": 256},
        },
        "test",
    )
    summary, kept, _ = _run(cfg)
    assert [r["text_a"] for r in kept] == texts and [r["line"] for r in kept] == _first_lines(texts, first=1)


def test_files_without_multi_line_fields_plan_as_before(tmp_path):
    """Quotes, commas, stray quotes and CRLF, but no quoted line break: the chunks are those of a
    plan that counts one row a line (the plan before multi-line records)."""
    rng = random.Random(5)
    rows = []
    for i in range(600):
        text = f"row {i} " + "x" * rng.randint(0, 30)
        kinds = [f'"{text}, quoted",positive', f"{text},negative\r", f'a 12" {text},positive', f'{text} ""x"",positive']
        rows.append(kinds[i % 4])
    path = tmp_path / "d.csv"
    path.write_text("sentence,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    for chunk_bytes, limit in ((256, None), (1000, None), (1 << 20, None), (256, 333)):
        cfg = _job(tmp_path / f"{chunk_bytes}-{limit}", path, limit=limit, chunk_bytes=chunk_bytes)
        ranges = readers.text_ranges(str(path), chunk_bytes, header=True)
        counts = [readers.count_lines(str(path), a, b) for a, b in ranges]
        before = readers.plan_text_chunks(str(path), "csv", ranges, counts, True, limit)
        assert plan(cfg, "train")[1] == before
    summary, _, rejects = _run(cfg)
    # the stray-quote rows, each alone, as before
    assert summary.rows_in == 333 and [r["line"] for r in rejects] == [i + 2 for i in range(333) if i % 4 == 2]
    assert all(r["reason"] == v.UNBALANCED_QUOTES for r in rejects)


def test_tsv_stays_one_row_a_line(tmp_path):
    """TSV has no quoting: a quote that opens a field does not join lines."""
    path = tmp_path / "d.tsv"
    path.write_text('sentence\tlabel\n"open quote\tpositive\nnext line"\tnegative\n', encoding="utf-8")
    _, kept, _ = _run(_job(tmp_path, path))
    assert [(r["line"], r["text_a"]) for r in kept] == [(2, '"open quote'), (3, 'next line"')]


def test_a_record_over_the_byte_limit_is_rejected_not_held(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 64)
    path = tmp_path / "d.csv"
    long = "\n".join(f"line {i} of a long text" for i in range(20))
    path.write_text(f'sentence,label\nshort,positive\n"{long}",negative\nafter,positive\n', encoding="utf-8")
    _, kept, rejects = _run(_job(tmp_path, path))
    assert [(r["line"], r["text_a"]) for r in kept] == [(2, "short"), (23, "after")]
    [rej] = rejects
    assert (rej["line"], rej["reason"]) == (3, v.TOO_LONG) and "from line 3 to line 22" in rej["detail"]
    assert len(rej["raw"]) <= 64


@pytest.mark.parametrize("seed", range(3))
def test_chunked_scan_equals_reading_from_the_top(seed):
    """Hostile bytes (quotes, commas, CR, LF, a BOM) cut at random line starts: the chained scans
    give the records of one pass, each chunk exactly its planned record count."""
    rng = random.Random(seed)
    alphabet = [b'"', b'"', b",", b"\n", b"\n", b"a", b" ", b"\r"]
    for _ in range(400):
        data = (v.BOM if rng.random() < 0.2 else b"") + b"".join(
            rng.choice(alphabet) for _ in range(rng.randint(0, 80))
        )
        whole = list(readers.csv_records(data.split(b"\n")[: readers.scan_csv_bytes(data, 0).lines], 1))
        starts = [i + 1 for i, c in enumerate(data) if c == 10 and i + 1 < len(data)]
        cuts = sorted(rng.sample(starts, rng.randint(0, len(starts))))
        bounds = [0, *cuts, len(data)]
        ranges = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
        spans, lines, records = readers.csv_spans(ranges, [readers.scan_csv_bytes(data[a:b], a) for a, b in ranges])
        got, line = [], 1
        for (a, b), n_lines, n_records in zip(spans, lines, records):
            part = list(readers.csv_records(data[a:b].split(b"\n")[:n_lines], line))
            assert len(part) == n_records and not any(r.unclosed for r in part if b < len(data))
            got, line = got + part, line + n_lines
        assert got == whole, (data, cuts)
        assert sum(lines) == data.count(b"\n") + (not data.endswith(b"\n") and bool(data))
