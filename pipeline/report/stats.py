"""Pure statistics behind the job report: word diffs, augmentation rates, teacher agreement, cache bytes.

Nothing here reads files or needs Ray; the collector feeds these functions with columns it read.

Word diffs compare a variant with its original word by word. Both texts are split the same way
(letter/digit runs and single punctuation marks, the mask token kept whole) and compared
case- and accent-insensitively, because TinyBERT writes its variants lower-cased and
re-tokenized while the original keeps its form. A difflib opcode then says what happened:

- ``replace``: original words replaced (``masked`` when the new word is the mask token);
- ``delete``: original words dropped (Tang's n-gram sampling);
- ``insert``: words the variant has in addition (a replacement made of more words).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

MASK_TOKEN = "[MASK]"


# ---------------------------------------------------------------------------------------------
# Word diffs


@dataclass(frozen=True)
class Span:
    """A run of words of a diffed variant: kind is same, replaced, masked, inserted or dropped
    (dropped words are the original's, every other kind holds the variant's words, spaced as
    written); ``lead`` is the white space before the run ("" at the start or where the text has
    none, as in ``it's``)."""

    kind: str
    text: str
    lead: str = ""


@dataclass(frozen=True)
class EditCounts:
    """Word edits of one variant against its original."""

    original_words: int
    variant_words: int
    replaced: int = 0
    masked: int = 0
    dropped: int = 0
    inserted: int = 0

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(*(a + b for a, b in zip(self._values(), other._values())))

    def _values(self) -> tuple[int, ...]:
        return (self.original_words, self.variant_words, self.replaced, self.masked, self.dropped, self.inserted)


# CJK ideographs as BERT's basic tokenizer tells them (``_is_chinese_char``): each one a word, as
# Chinese is written without spaces and TinyBERT replaces character by character
_CJK = (
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002b73f"
    "\U0002b740-\U0002b81f\U0002b820-\U0002ceaf\U0002f800-\U0002fa1f"
)


def _word_pattern(mask_token: str) -> re.Pattern:
    return re.compile(re.escape(mask_token) + f"|[{_CJK}]|(?:(?![{_CJK}])[^\\W_])+|[^\\w\\s]|_")


def _tokens(text: str | None, mask_token: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _word_pattern(mask_token).finditer(text or "")]


def split_words(text: str | None, mask_token: str = MASK_TOKEN) -> list[str]:
    """Letter/digit runs, single CJK characters and single punctuation marks; the mask token stays one word."""
    return [w for w, _, _ in _tokens(text, mask_token)]


def _key(word: str) -> str:
    folded = unicodedata.normalize("NFD", word.lower())
    return "".join(c for c in folded if not unicodedata.combining(c))


def _opcodes(orig: list[str], var: list[str]):
    matcher = difflib.SequenceMatcher(None, [_key(w) for w in orig], [_key(w) for w in var], autojunk=False)
    return matcher.get_opcodes()


def word_diff(original: str | None, variant: str | None, mask_token: str = MASK_TOKEN) -> list[Span]:
    """The variant as spans of same / replaced / masked / inserted words, with the original's
    dropped words in place; adjacent words of one kind are merged into one span."""
    orig, var = _tokens(original, mask_token), _tokens(variant, mask_token)

    def gap(tokens, text, k):  # the white space before token k in its own text (None: its first word)
        return None if k == 0 else (" " if text[tokens[k - 1][2] : tokens[k][1]] else "")

    words: list[tuple[str, str, str | None]] = []  # (kind, word, lead)

    def from_variant(j, new_kind):
        w = var[j][0]
        words.append(("masked" if w == mask_token else new_kind, w, gap(var, variant, j)))

    for op, i1, i2, j1, j2 in _opcodes([w for w, _, _ in orig], [w for w, _, _ in var]):
        pairs = min(i2 - i1, j2 - j1) if op == "replace" else 0
        if op == "equal":
            for j in range(j1, j2):
                words.append(("same", var[j][0], gap(var, variant, j)))
        for j in range(j1, j1 + pairs):  # replace: word for word ...
            from_variant(j, "replaced")
        if op in ("insert", "replace"):  # ... then the surplus new words ...
            for j in range(j1 + pairs, j2):
                from_variant(j, "inserted")
        if op in ("delete", "replace"):  # ... or the surplus original words
            for i in range(i1 + pairs, i2):
                words.append(("dropped", orig[i][0], gap(orig, original, i)))
    spans: list[Span] = []
    for kind, word, lead in words:
        lead = "" if not spans else (" " if lead is None else lead)
        if spans and spans[-1].kind == kind:
            spans[-1] = Span(kind, spans[-1].text + lead + word, spans[-1].lead)
        else:
            spans.append(Span(kind, word, lead))
    return spans


def edit_counts(original: str | None, variant: str | None, mask_token: str = MASK_TOKEN) -> EditCounts:
    """How many of the original's words the variant replaced, masked and dropped (and how many
    words it inserted). A replace opcode of a original words by b new ones counts min(a, b)
    replacements (masked when the new word is the mask token), the rest as dropped / inserted."""
    orig, var = split_words(original, mask_token), split_words(variant, mask_token)
    replaced = masked = dropped = inserted = 0
    for op, i1, i2, j1, j2 in _opcodes(orig, var):
        a, b = i2 - i1, j2 - j1
        if op == "delete":
            dropped += a
        elif op == "insert":
            inserted += b
        elif op == "replace":
            pairs = min(a, b)
            n_masked = sum(w == mask_token for w in var[j1 : j1 + pairs])
            masked += n_masked
            replaced += pairs - n_masked
            dropped += a - pairs
            inserted += b - pairs
    return EditCounts(len(orig), len(var), replaced, masked, dropped, inserted)


@dataclass(frozen=True)
class MethodRates:
    """Per-word rates over all variants of one method: share of the originals' words replaced,
    masked and dropped; mean and distribution of the length change (variant minus original words)."""

    variants: int
    original_words: int
    replaced_rate: float
    masked_rate: float
    dropped_rate: float
    length_changes: list[int]

    @property
    def mean_length_change(self) -> float:
        return float(np.mean(self.length_changes)) if self.length_changes else 0.0


def method_rates(counts: Sequence[EditCounts]) -> MethodRates:
    """Micro-averaged rates: total replaced (masked, dropped) words over total original words."""
    total = sum(counts, EditCounts(0, 0))
    words = max(total.original_words, 1)
    return MethodRates(
        variants=len(counts),
        original_words=total.original_words,
        replaced_rate=total.replaced / words,
        masked_rate=total.masked / words,
        dropped_rate=total.dropped / words,
        length_changes=[c.variant_words - c.original_words for c in counts],
    )


def tries_made(method: str, tries_per_example: int, examples: int, second_texts: int) -> int:
    """Augmentation tries of a corpus: TinyBERT tries each text of an example (both texts of a
    pair) ``tries_per_example`` times, Tang tries each example that many times."""
    texts = examples + second_texts if method == "tinybert" else examples
    return tries_per_example * texts


# ---------------------------------------------------------------------------------------------
# Teacher outputs


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confidence(logits: np.ndarray) -> np.ndarray:
    """The teacher's probability of its predicted label, per row."""
    return softmax(logits).max(axis=1) if len(logits) else np.zeros(0)


CONFIDENCE_BINS = 20


@dataclass
class Confidence:
    """A teacher's confidence over a set of rows, summed batch by batch: a histogram of fixed
    bins from 1 / labels (the least a predicted label's probability can be) to 1, the count
    and the mean."""

    edges: np.ndarray
    counts: np.ndarray
    n: int = 0
    total: float = 0.0

    @classmethod
    def empty(cls, num_labels: int | None) -> Confidence:
        edges = np.linspace(1 / num_labels if num_labels else 0.0, 1.0, CONFIDENCE_BINS + 1)
        return cls(edges, np.zeros(CONFIDENCE_BINS, dtype=np.int64))

    def add(self, values: np.ndarray) -> None:
        self.counts += np.histogram(values, self.edges)[0]
        self.n += len(values)
        self.total += float(np.sum(values, dtype=np.float64))

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


@dataclass(frozen=True)
class FlipStats:
    """Variants whose predicted label differs from their original's, among the variants whose
    original is in the same cache."""

    flips: int
    compared: int

    @property
    def rate(self) -> float | None:
        return self.flips / self.compared if self.compared else None


def flip_stats(
    example_ids: Sequence[str], parent_ids: Sequence[str], variants: Sequence[int], logits: np.ndarray
) -> FlipStats:
    pred = np.asarray(logits).argmax(axis=1) if len(logits) else np.zeros(0, dtype=int)
    parent_pred = {e: int(p) for e, v, p in zip(example_ids, variants, pred) if v == 0}
    flips = compared = 0
    for parent, v, p in zip(parent_ids, variants, pred):
        if v > 0 and parent in parent_pred:
            compared += 1
            flips += int(p) != parent_pred[parent]
    return FlipStats(flips, compared)


def score_shift(
    example_ids: Sequence[str], parent_ids: Sequence[str], variants: Sequence[int], predictions: np.ndarray
) -> tuple[float | None, int]:
    """Regression: (mean |prediction on a variant − prediction on its original|, variants
    compared), over the variants whose original is in the same cache."""
    pred = np.asarray(predictions, dtype=np.float64)
    parent_pred = {e: p for e, v, p in zip(example_ids, variants, pred) if v == 0}
    shifts = [
        abs(p - parent_pred[parent])
        for parent, v, p in zip(parent_ids, variants, pred)
        if v > 0 and parent in parent_pred
    ]
    return (float(np.mean(shifts)) if shifts else None), len(shifts)


def label_agreement(label_ids: Sequence[int | None], logits: np.ndarray) -> tuple[int, int]:
    """(rows whose predicted label equals their label, labelled rows)."""
    pred = np.asarray(logits).argmax(axis=1) if len(logits) else []
    pairs = [(int(p), int(y)) for p, y in zip(pred, label_ids) if y is not None]
    return sum(p == y for p, y in pairs), len(pairs)


def label_counts(logits: np.ndarray, num_labels: int) -> list[int]:
    """Rows predicted as each label (argmax of the logits)."""
    if not len(logits):
        return [0] * num_labels
    return np.bincount(np.asarray(logits).argmax(axis=1), minlength=num_labels).tolist()


# ---------------------------------------------------------------------------------------------
# Cache bytes


@dataclass
class ColumnBytes:
    """On-disk (compressed) and decoded (uncompressed) bytes of one column over every row group."""

    column: str
    compressed: int = 0
    uncompressed: int = 0

    @property
    def ratio(self) -> float | None:
        return self.uncompressed / self.compressed if self.compressed else None


def column_bytes(metadatas: Iterable) -> list[ColumnBytes]:
    """Bytes per top-level column (``hidden_3.list.element`` counts as ``hidden_3``) summed over the
    column chunks of every row group of the given ``pyarrow.parquet.FileMetaData``; largest first."""
    out: dict[str, ColumnBytes] = {}
    for meta in metadatas:
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            for c in range(rg.num_columns):
                chunk = rg.column(c)
                name = chunk.path_in_schema.split(".")[0]
                entry = out.setdefault(name, ColumnBytes(name))
                entry.compressed += chunk.total_compressed_size
                entry.uncompressed += chunk.total_uncompressed_size
    return sorted(out.values(), key=lambda b: -b.compressed)


def bytes_per_token(total_bytes: int, tokens: int) -> float | None:
    return total_bytes / tokens if tokens else None


def histogram_bins(values: Sequence[int]) -> np.ndarray:
    """Integer-centred bin edges covering the values (for counts such as variants per example)."""
    lo, hi = (min(values), max(values)) if len(values) else (0, 0)
    return np.arange(lo - 0.5, hi + 1.5, 1.0)
