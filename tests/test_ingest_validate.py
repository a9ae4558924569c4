"""Every validation rule on single lines (pure functions, no Ray)."""

import json

import pytest

from pipeline.ingest import validate as v

TSV = v.Rules(
    fmt="tsv",
    text_a="sentence",
    text_b=None,
    label="label",
    labels=("negative", "positive"),
    max_chars=50,
    header=("sentence", "label"),
)
CSV = v.Rules(**{**TSV.__dict__, "fmt": "csv"})
JSONL = v.Rules(**{**TSV.__dict__, "fmt": "jsonl", "header": None})


def check(raw, rules=TSV, line=2):
    return v.validate_line(raw, line, "train/x.tsv", rules)


def test_good_line():
    row, rej = check(b"a fine film\tpositive")
    assert rej is None
    assert row["text_a"] == "a fine film" and row["label"] == "positive" and row["label_id"] == 1
    assert row["line"] == 2 and row["fixes"] is None and len(row["example_id"]) == 16


@pytest.mark.parametrize(
    "raw, rules, reason, detail",
    [
        (b"a fine film\tpositive\textra", TSV, v.WRONG_COLUMNS, "expected 2 columns, found 3"),
        (b"a fine film", TSV, v.WRONG_COLUMNS, "expected 2 columns, found 1"),
        (b"   \tpositive", TSV, v.EMPTY_TEXT, "sentence is empty, or whitespace, control or invisible characters only"),
        (b"\tpositive", TSV, v.EMPTY_TEXT, "sentence is empty"),
        (b"caf\xe9 noir\tpositive", TSV, v.UNDECODABLE, "invalid UTF-8 at byte 3"),
        (b"a fine\xef\xbb\xbf film\tpositive", TSV, v.BOM_IN_ROW, "inside the line at byte 6"),
        (b"a fine\r film\tpositive", TSV, v.STRAY_CR, "carriage return inside the line"),
        (b"a fine film\tneutral", TSV, v.BAD_LABEL, "label 'neutral' is not in the label set"),
        (b"a fine film\t ", TSV, v.MISSING_LABEL, "label is empty"),
        (b"x" * 51 + b"\tpositive", TSV, v.TOO_LONG, "sentence has 51 characters, limit 50"),
        (b'"a fine film,positive', CSV, v.UNBALANCED_QUOTES, "odd number of double quotes"),
        (b'"a fine" film,positive', CSV, v.UNBALANCED_QUOTES, "malformed quoting"),
        (b'{"sentence": "a", "label": "positive"', JSONL, v.BAD_JSON, "invalid JSON"),
        (b'["a", "positive"]', JSONL, v.BAD_JSON, "expected a JSON object, got list"),
        (b'{"text": "a", "label": "positive"}', JSONL, v.MISSING_FIELD, "missing key 'sentence'"),
    ],
)
def test_each_rule_rejects_with_reason(raw, rules, reason, detail):
    row, rej = check(raw, rules)
    assert row is None
    assert rej["reason"] == reason
    assert detail in rej["detail"]
    assert rej["line"] == 2 and rej["source"] == "train/x.tsv"
    assert rej["raw"] == raw.decode("utf-8", errors="backslashreplace")
    json.dumps(rej)  # the reject record is serialisable as given


def test_crlf_normalised_or_rejected_by_config():
    row, _ = check(b"a fine film\tpositive\r")
    assert row["label"] == "positive" and row["fixes"] == v.FIX_CRLF
    strict = v.Rules(**{**TSV.__dict__, "crlf": "reject"})
    row, rej = check(b"a fine film\tpositive\r", strict)
    assert row is None and rej["reason"] == v.CRLF


def test_bom_on_first_line_stripped_or_rejected():
    row, _ = check(v.BOM + b"a fine film\tpositive", line=1)
    assert row["text_a"] == "a fine film" and row["fixes"] == v.FIX_BOM
    strict = v.Rules(**{**TSV.__dict__, "bom": "reject"})
    _, rej = check(v.BOM + b"a fine film\tpositive", strict, line=1)
    assert rej["reason"] == v.BOM_IN_ROW


def test_truncate_instead_of_reject():
    rules = v.Rules(**{**TSV.__dict__, "too_long": "truncate"})
    row, rej = check(b"word " * 20 + b"\tpositive", rules)
    assert rej is None and len(row["text_a"]) <= 50 and row["fixes"] == v.FIX_TRUNCATED


def test_csv_quoting_and_jsonl_types():
    row, _ = check(b'"a film, with a comma ""quoted""",negative', CSV)
    assert row["text_a"] == 'a film, with a comma "quoted"'
    row, _ = check('{"sentence": "naïve café", "label": "negative"}'.encode(), JSONL)
    assert row["text_a"] == "naïve café"
    rules = v.Rules(**{**JSONL.__dict__, "labels": ("0", "1")})
    row, _ = check(b'{"sentence": "a", "label": 1}', rules)
    assert row["label"] == "1" and row["label_id"] == 1


def test_tsv_quotes_are_literal():
    row, _ = check(b'"a quote that never closes\tpositive')
    assert row["text_a"] == '"a quote that never closes'


def test_pairs_need_both_texts():
    rules = v.Rules(fmt="tsv", text_a="s1", text_b="s2", label=None, labels=None, max_chars=100, header=("s1", "s2"))
    row, _ = check(b"one\ttwo", rules)
    assert (row["text_a"], row["text_b"], row["label"]) == ("one", "two", None)
    _, rej = check(b"one\t ", rules)
    assert rej["reason"] == v.EMPTY_TEXT and "s2" in rej["detail"]


def test_example_id_depends_on_source_line_and_content():
    base = v.example_id("train/x.tsv", 2, "a", None, "positive")
    assert base == v.example_id("train/x.tsv", 2, "a", None, "positive")
    assert (
        len(
            {
                base,
                v.example_id("train/y.tsv", 2, "a", None, "positive"),
                v.example_id("train/x.tsv", 3, "a", None, "positive"),
                v.example_id("train/x.tsv", 2, "b", None, "positive"),
                v.example_id("train/x.tsv", 2, "a", "b", "positive"),
                v.example_id("train/x.tsv", 2, "a", None, "negative"),
            }
        )
        == 6
    )


@pytest.mark.parametrize(
    "raw, rules, reason, detail",
    [
        (
            b'{"sentence": "bad \\ud800 text", "label": "positive"}',
            JSONL,
            v.UNDECODABLE,
            "sentence holds a lone surrogate U+D800 at character 4",
        ),
        (
            b'{"sentence": "fine", "label": "pos\\udfffitive"}',
            JSONL,
            v.UNDECODABLE,
            "label holds a lone surrogate U+DFFF",
        ),
        (b"[" * 100_000 + b"]" * 100_000, JSONL, v.BAD_JSON, "invalid JSON: nested too deeply"),
        (
            b'{"sentence": "a", "sentence": "b", "label": "positive"}',
            JSONL,
            v.BAD_JSON,
            "the key 'sentence' is given twice in one object",
        ),
        (b"\x00\x00\x00\tpositive", TSV, v.EMPTY_TEXT, "invisible characters only"),
        ("\u200b\u200d\u2060\u00a0\tpositive".encode(), TSV, v.EMPTY_TEXT, "invisible characters only"),
        (b"\x07\x1b\x7f\tpositive", TSV, v.EMPTY_TEXT, "invisible characters only"),
    ],
)
def test_hostile_rows_are_rejects_with_a_reason(raw, rules, reason, detail):
    row, rej = check(raw, rules)
    assert row is None and rej["reason"] == reason and detail in rej["detail"], rej
    json.dumps(rej, ensure_ascii=False).encode("utf-8")  # the reject itself can be written


def test_visible_text_with_invisible_characters_is_kept():
    row, rej = check("a\u200bfine film\tpositive".encode())
    assert rej is None and row["text_a"] == "a\u200bfine film"
