"""Row validation for the ingest stage: pure functions, no Ray.

Each raw line (TSV / CSV / JSONL), CSV record (which may span lines) or Parquet row either becomes
an example or a reject with a reason code and a human-readable detail. Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import json
import math
import unicodedata
from dataclasses import dataclass
from typing import Literal, overload

from ..seeding import stable_hex

BOM = b"\xef\xbb\xbf"

# Reason codes used in rejects files and summaries.
WRONG_COLUMNS = "wrong_column_count"
UNBALANCED_QUOTES = "unbalanced_quotes"
EMPTY_TEXT = "empty_text"
UNDECODABLE = "undecodable_bytes"
BOM_IN_ROW = "byte_order_mark"
CRLF = "crlf_line_ending"
STRAY_CR = "stray_carriage_return"
BAD_LABEL = "label_not_in_label_set"
MISSING_LABEL = "missing_label"
NOT_A_NUMBER = "label_not_a_number"
OUT_OF_RANGE = "label_out_of_range"
TOO_LONG = "text_too_long"
BAD_JSON = "invalid_json"
MISSING_FIELD = "missing_field"


@dataclass(frozen=True)
class Rules:
    """What the validator checks, from the job config."""

    fmt: str
    text_a: str
    text_b: str | None
    label: str | None
    labels: tuple[str, ...] | None
    max_chars: int
    # regression: (min, max) of a numeric label, either bound None = open; None = not a regression task
    score_range: tuple[float | None, float | None] | None = None
    too_long: str = "reject"  # or "truncate"
    crlf: str = "normalise"  # or "reject"
    bom: str = "strip"  # or "reject"
    header: tuple[str, ...] | None = None  # TSV / CSV column names; None = columns by number

    def column_index(self) -> dict[str, int | None]:
        """TSV / CSV: where each field sits in a split line."""

        def index(name: str | None) -> int | None:
            if name is None:
                return None
            return self.header.index(name) if self.header is not None else int(name)

        return {"text_a": index(self.text_a), "text_b": index(self.text_b), "label": index(self.label)}


# Repairs applied to kept rows, counted in the summary.
FIX_CRLF, FIX_BOM, FIX_TRUNCATED = "crlf_normalised", "bom_stripped", "truncated"


class Rejected(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


def example_id(source: str, line: int, text_a: str, text_b: str | None, label: str | None) -> str:
    """Stable id from the source, the row number and the content."""
    return stable_hex(source, line, text_a, "" if text_b is None else text_b, "" if label is None else label)


def decode_line(raw: bytes, line_no: int, rules: Rules, fixes: list[str]) -> str:
    """Bytes of one line (without its LF) → text, applying the BOM / CRLF / UTF-8 rules. A CSV record
    spanning lines is its lines joined by LF: a CRLF that ends one of them is a CRLF line ending too."""
    if line_no == 1 and raw.startswith(BOM):
        if rules.bom == "reject":
            raise Rejected(BOM_IN_ROW, "the file starts with a UTF-8 byte-order mark (ingest.bom: reject)")
        raw = raw[len(BOM) :]
        fixes.append(FIX_BOM)
    if BOM in raw:
        raise Rejected(BOM_IN_ROW, f"UTF-8 byte-order mark inside the line at byte {raw.index(BOM)}")
    if raw.endswith(b"\r") or b"\r\n" in raw:
        if rules.crlf == "reject":
            raise Rejected(CRLF, "CRLF line ending (ingest.crlf: reject)")
        raw = raw.removesuffix(b"\r").replace(b"\r\n", b"\n")
        fixes.append(FIX_CRLF)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(UNDECODABLE, f"invalid UTF-8 at byte {exc.start}: {raw[exc.start : exc.start + 4]!r}") from None
    if "\r" in text:
        raise Rejected(STRAY_CR, f"carriage return inside the line at character {text.index(chr(13))}")
    return text


def split_fields(text: str, rules: Rules) -> list[str]:
    """TSV: tab-separated, no quoting (GLUE style, quotes are literal). CSV: RFC 4180 quoting; a
    quoted field may hold line breaks (the reader gives such a record whole)."""
    if rules.fmt == "tsv":
        return text.split("\t")
    if text.count('"') % 2:
        raise Rejected(UNBALANCED_QUOTES, f"odd number of double quotes ({text.count(chr(34))})")
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise Rejected(UNBALANCED_QUOTES, f"malformed quoting: {exc}") from None
    return rows[0] if rows else [""]


def header_fields(raw: bytes, rules: Rules) -> list[str]:
    """The column names of a TSV / CSV header line."""
    text = raw.removeprefix(BOM).rstrip(b"\r").decode("utf-8", errors="strict")
    return [name.strip() for name in split_fields(text, rules)]


# Characters that show nothing: controls, format characters (zero-width space and joiners, BOM),
# surrogates, private use, unassigned, and separators.
_INVISIBLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"))


def _visible(text: str) -> bool:
    """Whether ``text`` has a character that shows (usually its first: the loop stops there)."""
    return any(unicodedata.category(ch) not in _INVISIBLE for ch in text)


def _encodable(text: str, what: str) -> str:
    """``text`` if it is valid Unicode; a lone surrogate (a JSON escape such as \\ud800) is not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Rejected(
            UNDECODABLE,
            f"{what} holds a lone surrogate U+{ord(text[exc.start]):04X} at character "
            f"{exc.start}, which is not a character",
        ) from None
    return text


@overload
def _clean_text(value: object, column: str, rules: Rules, fixes: list[str], required: Literal[True]) -> str: ...
@overload
def _clean_text(value: object, column: str, rules: Rules, fixes: list[str], required: bool) -> str | None: ...
def _clean_text(value: object, column: str, rules: Rules, fixes: list[str], required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not _visible(value)):
        if required:
            raise Rejected(EMPTY_TEXT, f"{column} is empty, or whitespace, control or invisible characters only")
        return None
    if not isinstance(value, str):
        raise Rejected(MISSING_FIELD, f"{column} must be text, got {type(value).__name__}")
    text = _encodable(value, column).strip()
    if len(text) > rules.max_chars:
        if rules.too_long == "reject":
            raise Rejected(TOO_LONG, f"{column} has {len(text)} characters, limit {rules.max_chars}")
        text = text[: rules.max_chars].rstrip()
        fixes.append(FIX_TRUNCATED)
    return text


def _check_label(value: object, rules: Rules) -> str | None:
    if rules.label is None:
        return None
    if value is None or (isinstance(value, str) and not value.strip()):
        raise Rejected(MISSING_LABEL, "label is empty")
    label = _encodable(str(value), "label").strip()
    if rules.labels is not None and label not in rules.labels:
        raise Rejected(BAD_LABEL, f"label {_short(label)!r} is not in the label set {list(rules.labels)}")
    return label


def _check_score(label: str, score_range: tuple[float | None, float | None]) -> float:
    """A regression label: a finite number within the range (bounds included)."""
    try:
        value = float(label)
    except ValueError:
        raise Rejected(NOT_A_NUMBER, f"label {_short(label)!r} is not a number") from None
    if not math.isfinite(value):
        raise Rejected(NOT_A_NUMBER, f"label {_short(label)!r} is not a finite number")
    lo, hi = score_range
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise Rejected(OUT_OF_RANGE, f"label {value:g} is outside the score range {bounds}")
    return value


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def build_row(fields: dict[str, object], source: str, line_no: int, rules: Rules, fixes: list[str]) -> dict:
    """Validated fields → one example row (raises Rejected)."""
    text_a = _clean_text(fields.get("text_a"), rules.text_a, rules, fixes, required=True)
    text_b = None
    if rules.text_b is not None:
        text_b = _clean_text(fields.get("text_b"), rules.text_b, rules, fixes, required=True)
    label = _check_label(fields.get("label"), rules)
    label_id = rules.labels.index(label) if (label is not None and rules.labels) else None
    score = _check_score(label, rules.score_range) if (label is not None and rules.score_range) else None
    return {
        "example_id": example_id(source, line_no, text_a, text_b, label),
        "source": source,
        "line": line_no,
        "text_a": text_a,
        "text_b": text_b,
        "label": label,
        "label_id": label_id,
        "score": score,
    }


def parse_text_line(text: str, rules: Rules) -> dict[str, object]:
    """One decoded TSV / CSV / JSONL line → the mapped fields (raises Rejected)."""
    if rules.fmt == "jsonl":
        try:
            obj = json.loads(text, object_pairs_hook=_object_without_duplicates)
        except json.JSONDecodeError as exc:
            raise Rejected(BAD_JSON, f"invalid JSON: {exc.msg} at character {exc.pos}") from None
        except RecursionError:
            raise Rejected(BAD_JSON, "invalid JSON: nested too deeply") from None
        if not isinstance(obj, dict):
            raise Rejected(BAD_JSON, f"expected a JSON object, got {type(obj).__name__}")
        out: dict[str, object] = {}
        for role in ("text_a", "text_b", "label"):
            key = getattr(rules, role)
            if key is None:
                continue
            if key not in obj:
                raise Rejected(MISSING_FIELD, f"missing key {key!r}")
            out[role] = obj[key]
        return out
    fields = split_fields(text, rules)
    expected = len(rules.header) if rules.header is not None else None
    if expected is not None and len(fields) != expected:
        raise Rejected(WRONG_COLUMNS, f"expected {expected} columns, found {len(fields)}")
    out = {}
    for role, idx in rules.column_index().items():
        if idx is None:
            continue
        if idx >= len(fields):
            raise Rejected(WRONG_COLUMNS, f"expected at least {idx + 1} columns, found {len(fields)}")
        out[role] = fields[idx]
    return out


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Rejected(BAD_JSON, f"the key {key[:100]!r} is given twice in one object")
            seen.add(key)
    return obj


def validate_line(raw: bytes, line_no: int, source: str, rules: Rules) -> tuple[dict | None, dict | None]:
    """One raw line → (example row, None) or (None, reject record).

    The row carries ``fixes``: the repairs applied to it (comma-separated), or None.
    """
    fixes: list[str] = []
    try:
        text = decode_line(raw, line_no, rules, fixes)
        row = build_row(parse_text_line(text, rules), source, line_no, rules, fixes)
    except Rejected as rej:
        return None, {
            "source": source,
            "line": line_no,
            "reason": rej.code,
            "detail": rej.detail,
            "raw": raw.decode("utf-8", errors="backslashreplace"),
        }
    row["fixes"] = ",".join(fixes) or None
    return row, None


def reject_csv_record(
    raw: bytes, line_no: int, last_line: int, source: str, unclosed: bool, size: int, limit: int
) -> tuple[None, dict] | None:
    """The reject of a CSV record that cannot be parsed at all: the file ends inside one of its
    quoted fields, or it spans lines and holds ``size`` bytes, over ``limit`` (``size`` >= 0;
    ``raw`` is its head). None for any other record: :func:`validate_line` checks it."""
    span = f"the record runs from line {line_no} to line {last_line}"
    if unclosed:
        code, detail = UNBALANCED_QUOTES, f"a quoted field is still open at the end of the file ({span})"
    elif size >= 0:
        code, detail = TOO_LONG, f"{span} and holds {size:,} bytes, over the {limit:,} a record spanning lines may hold"
    else:
        return None
    return None, {
        "source": source,
        "line": line_no,
        "reason": code,
        "detail": detail,
        "raw": raw.decode("utf-8", errors="backslashreplace"),
    }


def validate_record(record: dict, line_no: int, source: str, rules: Rules) -> tuple[dict | None, dict | None]:
    """One Parquet row (already typed) → (example row, None) or (None, reject record)."""
    fixes: list[str] = []
    fields = {role: record.get(getattr(rules, role)) for role in ("text_a", "text_b", "label") if getattr(rules, role)}
    try:
        row = build_row(fields, source, line_no, rules, fixes)
    except Rejected as rej:
        return None, {
            "source": source,
            "line": line_no,
            "reason": rej.code,
            "detail": rej.detail,
            "raw": json.dumps(record, ensure_ascii=False, default=str),
        }
    row["fixes"] = ",".join(fixes) or None
    return row, None
