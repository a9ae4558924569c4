"""Tang et al.'s augmentation (arXiv 1903.12136), on POS-tagged words.

One variant of a sentence of words w_1..w_L:

1. For every word draw X ~ U(0,1). X < p_mask: the word becomes the mask token.
   p_mask <= X < p_mask + p_pos: the word becomes a word drawn from the corpus unigram
   distribution restricted to words with the same POS tag (renormalised; a tag the corpus never
   showed keeps the word). Otherwise the word is kept.
2. With probability p_ng keep one n-gram only: n uniform in 1..max_ngram, start uniform among
   the possible positions; n >= L keeps every word.

An example gets n_iter tries; variants equal to the original or to an earlier variant are
dropped (compared as words joined by single spaces). A variant is written as the original text
with its changes in place (``text_format: natural``: the text's spacing and punctuation kept, a
replacement word in the capitalisation of the word it replaces, an n-gram as the stretch of the
text it covers) or as its words joined by single spaces (``reference``, as the paper's code
writes them; Chinese words without spaces, ``languages.join_words``); both keep the same variants.
Words and tags come from spaCy, or for Chinese from jieba (``pos.make_tagger``). For sentence
pairs try i augments the first text (i % 3 == 0), the second (1) or both (2); the text left alone
is written as given.

Speed: the draws of all tries of one text come from one ``rng.random((tries, L))`` and one
vectorised unigram draw, so no Python code runs per word and try. Every random number of an
example comes from ``example_rng(seed, example_id, "tang")``, so the output does not depend on
batching, order or the number of workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..seeding import example_rng
from .languages import DEFAULT, join_words, language, needs_space
from .pos import PosUnigram, Tagged
from .words import cased_like

Row = tuple[str, str | None]


@dataclass(frozen=True)
class TangParams:
    n_iter: int = 20
    p_mask: float = 0.1
    p_pos: float = 0.1
    p_ng: float = 0.25
    max_ngram: int = 5
    mask_token: str = "[MASK]"
    text_format: str = "natural"
    language: str = DEFAULT

    def __post_init__(self) -> None:
        if self.n_iter < 0 or self.max_ngram < 1:
            raise ValueError(f"need n_iter >= 0 and max_ngram >= 1, got {self.n_iter}, {self.max_ngram}")
        if not all(0.0 <= p <= 1.0 for p in (self.p_mask, self.p_pos, self.p_ng)) or self.p_mask + self.p_pos > 1.0:
            raise ValueError(f"probabilities must lie in [0, 1] with p_mask + p_pos <= 1: {self}")


def sample_variants(
    words: Sequence[str],
    tags: Sequence[str],
    unigram: PosUnigram,
    params: TangParams,
    rng: np.random.Generator,
    n: int,
) -> list[list[str]]:
    """``n`` independent variants of one sentence (steps 1 and 2 above), as word lists."""
    return [row[lo:hi] for row, (lo, hi) in zip(*sample_rows(words, tags, unigram, params, rng, n))]


def sample_rows(
    words: Sequence[str],
    tags: Sequence[str],
    unigram: PosUnigram,
    params: TangParams,
    rng: np.random.Generator,
    n: int,
) -> tuple[list[list[str]], list[tuple[int, int]]]:
    """``n`` variants as whole word rows (step 1) and the word range each keeps (step 2)."""
    length = len(words)
    if len(tags) != length:
        raise ValueError(f"{length} words but {len(tags)} tags")
    if length == 0:
        return [[] for _ in range(n)], [(0, 0)] * n
    # step 1: one X per (variant, word); one uniform per POS replacement, all tags in one draw
    x = rng.random((n, length))
    out = np.tile(np.array(words, dtype=object), (n, 1))
    out[x < params.p_mask] = params.mask_token
    rows, cols = np.nonzero((x >= params.p_mask) & (x < params.p_mask + params.p_pos))
    tag_ids = unigram.tag_ids(tags)[cols]
    u = rng.random(rows.size)
    known = tag_ids >= 0
    out[rows[known], cols[known]] = unigram.draw(tag_ids[known], u[known])

    # step 2: per variant, whether to cut, the n-gram size and its start
    ngram = rng.random(n) < params.p_ng
    size = np.minimum(rng.integers(1, params.max_ngram + 1, n), length)
    start = (rng.random(n) * (length - size + 1)).astype(np.int64)
    ranges = [(s, s + k) if cut else (0, length) for cut, s, k in zip(ngram.tolist(), start.tolist(), size.tolist())]
    return out.tolist(), ranges


def token_spans(text: str, tokens: Sequence[str]) -> list[tuple[int, int]] | None:
    """Where each token of ``text`` lies (spaCy's tokens are pieces of the text, in order); None
    when one is not found (a tagger that rewrote the text), and the variant is written joined."""
    spans, pos = [], 0
    for token in tokens:
        start = text.find(token, pos)
        if start < 0 or text[pos:start].strip():
            return None
        spans.append((start, start + len(token)))
        pos = start + len(token)
    return spans


def _glue(left: str, right: str, spaced: bool = True) -> str:
    """The space between two tokens written together in the text ("did" "n't") once one of them
    is replaced: none before a clitic or after / before punctuation, else one ("was insightfully");
    in Chinese none next to a Chinese character either."""
    if not left or not right or right.startswith("'") or right.lower() == "n't":
        return ""
    return " " if left[-1].isalnum() and right[0].isalnum() and needs_space(left, right, spaced) else ""


def augment_words(
    words: Sequence[str], tags: Sequence[str], unigram: PosUnigram, params: TangParams, rng: np.random.Generator
) -> list[str]:
    """One variant of one sentence, as a word list."""
    return sample_variants(words, tags, unigram, params, rng, 1)[0]


class TangAugmenter:
    """Augments tagged examples with one shared unigram table (built once per worker)."""

    method = "tang"

    def __init__(self, params: TangParams, unigram: PosUnigram):
        self.params = params
        self.unigram = unigram
        self._spaced = language(params.language).spaced

    def augment_tagged(
        self,
        example_ids: Sequence[str],
        tagged_a: Sequence[Tagged],
        tagged_b: Sequence[Tagged | None],
        originals_a: Sequence[str],
        originals_b: Sequence[str | None],
        seed: int,
    ) -> list[list[Row]]:
        """Per example: [(orig_a, orig_b), variant, ...]; original first exactly as given.

        ``tagged_b[i] is None`` marks a single-text example (its rows carry ``originals_b[i]``).
        Random stream: ``example_rng(seed, example_id, "tang")``.
        """
        return [
            self._augment_one(ta, tb, oa, ob, example_rng(seed, eid, self.method))
            for eid, ta, tb, oa, ob in zip(example_ids, tagged_a, tagged_b, originals_a, originals_b, strict=True)
        ]

    def _augment_one(
        self, ta: Tagged, tb: Tagged | None, oa: str, ob: str | None, rng: np.random.Generator
    ) -> list[Row]:
        n = self.params.n_iter
        modes = [0] * n if tb is None else [i % 3 for i in range(n)]  # 0: a only, 1: b only, 2: both
        var_a = iter(self._texts(ta, oa, rng, sum(m != 1 for m in modes)))
        var_b = iter(self._texts(tb, ob or "", rng, sum(m != 0 for m in modes)) if tb is not None else [])
        norm_a = " ".join(ta[0])
        norm_b = " ".join(tb[0]) if tb is not None else None
        seen = {(norm_a, norm_b)}
        rows: list[Row] = [(oa, ob)]
        for mode in modes:
            a = next(var_a) if mode != 1 else None
            b = next(var_b) if mode != 0 else None
            key = (norm_a if a is None else a[0], norm_b if b is None else b[0])
            if key not in seen:
                seen.add(key)
                rows.append((oa if a is None else a[1], ob if b is None else b[1]))
        return rows

    def _texts(self, tagged: Tagged, original: str, rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
        """``n`` variants as (words joined by spaces: the comparison key, the text written)."""
        words, tags = tagged
        rows, ranges = sample_rows(words, tags, self.unigram, self.params, rng, n)
        spans = token_spans(original, words) if self.params.text_format == "natural" else None
        out = []
        for row, (lo, hi) in zip(rows, ranges):
            key = " ".join(row[lo:hi])
            if spans is not None:
                out.append((key, self._natural(original, words, spans, row, lo, hi)))
            else:
                out.append((key, key if self._spaced else join_words(row[lo:hi], spaced=False)))
        return out

    def _natural(
        self, text: str, words: Sequence[str], spans: list[tuple[int, int]], row: list[str], lo: int, hi: int
    ) -> str:
        """Words lo..hi-1 of the variant with the text's own spacing between them (and around
        them when nothing is cut); a replacement in the capitalisation of the word it replaces."""
        if lo == hi:
            return ""
        new = [
            cased_like(row[i], words[i]) if row[i] != words[i] and row[i] != self.params.mask_token else row[i]
            for i in range(lo, hi)
        ]
        out = [text[: spans[0][0]]] if lo == 0 else []
        for i in range(lo, hi):
            out.append(new[i - lo])
            if i + 1 < hi:
                gap = text[spans[i][1] : spans[i + 1][0]]
                if not gap and (row[i] != words[i] or row[i + 1] != words[i + 1]):
                    gap = _glue(new[i - lo], new[i + 1 - lo], self._spaced)
                out.append(gap)
            elif hi == len(words):
                out.append(text[spans[i][1] :])
        return "".join(out)
