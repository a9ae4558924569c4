"""TinyBERT's data augmentation (arXiv 1909.10351), batched.

Per text (reference behaviour, see ``words``, ``mlm`` and ``glove`` for the details):

1. Split into words with BERT's basic tokenizer; a word is eligible when it is letters a-z
   only and not a stop word.
2. Candidates per eligible word: a single-piece word gets the MLM's top-K tokens at its mask
   (``##`` pieces dropped); a multi-piece word, or every eligible word when there is no MLM,
   gets its K nearest GloVe words. No candidate at all: the word itself.
3. The output starts with the original text. Each of N tries picks, for every eligible word,
   a candidate uniformly and uses it with probability p; the words are joined by single
   spaces and the result is kept when its normal form (basic tokenization joined by spaces)
   is new, so there are at most N+1 rows.

Other languages (``language``, see ``languages.py``): the eligible letters widen to the language's
script (for Chinese every Han character is a word and takes masked-LM candidates), the stop words
are the language's, and words joined for output are joined as the language writes them.

Sentence pairs: each text is augmented on its own, the other kept as given; rows are the
original pair, then the variants of text a, then those of text b.

Speed: ``candidates`` serves all texts of a call in one go (each distinct text once): one
batched MLM pass over every masked input, one GloVe top-k over every distinct multi-piece
word type. Generation then runs per example from ``example_rng(seed, id, "tinybert:a"/":b")``
over candidate lists in a canonical order, so the output does not depend on batching, order or
the number of workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..gc_pause import paused_gc
from ..seeding import example_rng
from .glove import GloveVectors, NeighbourCache
from .languages import DEFAULT, join_words, language
from .mlm import MlmCandidates
from .words import WordSplitter, cased_like, joined_normals, word_spans


@dataclass(frozen=True)
class TinyBertParams:
    """n_aug tries per text, replacement probability p, top_k candidates per word;
    mlm_input "pair" (reference) or "single"; MLM inputs cut to max_seq_length tokens and
    batched by batch_tokens padded tokens; do_lower_case for the word split; stopwords: the
    reference's list, NLTK's or the language's own (words.py); text_format "natural" (the original
    text with only the replaced words changed) or "reference" (the words joined by spaces, as the
    reference writes; Chinese words without spaces); language: the job's (languages.py)."""

    n_aug: int = 20
    p: float = 0.4
    top_k: int = 15
    mlm_input: str = "pair"
    max_seq_length: int = 512
    batch_tokens: int = 8192
    do_lower_case: bool = True
    stopwords: str = "reference"
    text_format: str = "natural"
    language: str = DEFAULT


@dataclass
class SentenceCandidates:
    """The words of one text, its eligible word indices and their candidate lists (never empty)."""

    words: list[str]
    positions: list[int]
    candidates: list[list[str]]
    text: str = ""
    spans: list[tuple[int, int]] | None = None  # of each word in text (natural output only)


class TinyBertAugmenter:
    """TinyBERT augmentation with an MLM (``mlm``) and/or GloVe (``glove``).

    With ``mlm=None`` every eligible word takes GloVe neighbours. With ``glove=None`` a
    multi-piece word has no candidates and stays as it is.
    """

    method = "tinybert"

    def __init__(self, params: TinyBertParams, glove: GloveVectors | None, mlm: MlmCandidates | None):
        if glove is None and mlm is None:
            raise ValueError("TinyBERT augmentation needs an MLM, GloVe vectors or both")
        self.params = params
        self.glove = glove
        self.mlm = mlm
        self.splitter = WordSplitter(params.do_lower_case, params.stopwords, params.language)
        self._spaced = language(params.language).spaced
        self._neighbours = NeighbourCache(glove, params.top_k) if glove is not None else None

    def prime_neighbours(self, table: dict[str, list[str]]) -> None:
        """GloVe neighbours of word types computed beforehand (same vectors and top-K)."""
        if self._neighbours is not None:
            self._neighbours.prime(table)

    def augment(
        self,
        example_ids: Sequence[str],
        texts_a: Sequence[str],
        texts_b: Sequence[str | None],
        seed: int,
    ) -> list[list[tuple[str, str | None]]]:
        """For each example: [(orig_a, orig_b), variants...] — original first, then text_a
        variants with text_b kept, then text_b variants with text_a kept. Random streams:
        example_rng(seed, id, 'tinybert:a') and (..., 'tinybert:b')."""
        if not len(example_ids) == len(texts_a) == len(texts_b):
            raise ValueError("example_ids, texts_a and texts_b must have the same length")
        with paused_gc():  # many small lists, no cycles: see pipeline.gc_pause
            return self._augment(example_ids, texts_a, texts_b, seed)

    def _augment(
        self, example_ids: Sequence[str], texts_a: Sequence[str], texts_b: Sequence[str | None], seed: int
    ) -> list[list[tuple[str, str | None]]]:
        texts = list(dict.fromkeys([*texts_a, *(b for b in texts_b if b is not None)]))
        found = dict(zip(texts, self.candidates(texts)))
        out = []
        for example_id, a, b in zip(example_ids, texts_a, texts_b):
            rows: list[tuple[str, str | None]] = [(a, b)]
            rng_a = example_rng(seed, example_id, f"{self.method}:a")
            rows += [(v, b) for v in self._variants(found[a], rng_a)]
            if b is not None:
                # each variant of one text is paired with the other text as given
                rng_b = example_rng(seed, example_id, f"{self.method}:b")
                rows += [(a, v) for v in self._variants(found[b], rng_b)]
            out.append(rows)
        return out

    def candidates(self, texts: Sequence[str]) -> list[SentenceCandidates]:
        """Words, eligible positions and candidate lists of every text, computed together."""
        result = []
        natural = self.params.text_format == "natural"
        for text in texts:
            words = self.splitter.words(text)
            positions = [i for i, w in enumerate(words) if self.splitter.is_eligible(w)]
            spans = word_spans(text, words, self.params.do_lower_case) if natural and positions else None
            result.append(SentenceCandidates(words, positions, [[] for _ in positions], text, spans))
        if self.mlm is not None:
            glove_slots = self._fill_from_mlm(result)
        else:
            glove_slots = [(s, j) for s in result for j in range(len(s.positions))]
        if self._neighbours is not None:
            found = self._neighbours.lookup(s.words[s.positions[j]] for s, j in glove_slots)
            for s, j in glove_slots:
                s.candidates[j] = found[s.words[s.positions[j]]]
        for s in result:
            s.candidates = [c or [s.words[i]] for i, c in zip(s.positions, s.candidates)]
        return result

    def _fill_from_mlm(self, sentences: list[SentenceCandidates]) -> list[tuple[SentenceCandidates, int]]:
        """MLM candidates of all single-piece eligible words; returns the multi-piece slots."""
        assert self.mlm is not None  # called only with an MLM (see candidates)
        pieces, masks, slots, glove_slots = [], [], [], []
        for s in (s for s in sentences if s.positions):
            word_pieces = self.mlm.word_pieces(s.words)
            starts = np.cumsum([0] + [len(p) for p in word_pieces])
            offsets, mask_slots = [], []
            for j, i in enumerate(s.positions):
                if len(word_pieces[i]) == 1:
                    offsets.append(int(starts[i]))
                    mask_slots.append(j)
                elif len(word_pieces[i]) > 1:
                    glove_slots.append((s, j))
            pieces.append([t for p in word_pieces for t in p])
            masks.append(offsets)
            slots.append((s, mask_slots))
        p = self.params
        found = self.mlm.candidates(
            pieces,
            masks,
            top_k=p.top_k,
            mlm_input=p.mlm_input,
            max_seq_length=p.max_seq_length,
            batch_tokens=p.batch_tokens,
        )
        for (s, mask_slots), cands in zip(slots, found):
            for j, c in zip(mask_slots, cands):
                s.candidates[j] = c
        return glove_slots

    def _variants(self, found: SentenceCandidates, rng: np.random.Generator) -> list[str]:
        """Up to n_aug new variants of one text, drawn from ``rng``."""
        if not found.positions:
            return []
        tries, width = self.params.n_aug, len(found.positions)
        sizes = np.array([len(c) for c in found.candidates])
        picks = rng.integers(0, sizes, size=(tries, width)).tolist()
        replace = (rng.random((tries, width)) < self.params.p).tolist()
        normal = self.splitter.word_normal
        words, positions, candidates = found.words, found.positions, found.candidates
        normals = [normal(w) for w in words]
        seen = {joined_normals(normals)}
        variants = []
        for pick_row, replace_row in zip(picks, replace):
            new_words, new_normals = list(words), list(normals)
            for j, replaced in enumerate(replace_row):
                if replaced:
                    word = candidates[j][pick_row[j]]
                    new_words[positions[j]], new_normals[positions[j]] = word, normal(word)
            # the same variants whatever the text format: only how a kept one is written differs
            key = joined_normals(new_normals)
            if key not in seen:
                seen.add(key)
                variants.append(
                    join_words(new_words, self._spaced) if found.spans is None else self._natural(found, new_words)
                )
        return variants

    def _natural(self, found: SentenceCandidates, new_words: list[str]) -> str:
        """The original text with the replaced words written in their places, in the casing of the
        words they replace (an uncased MLM's candidates are lower-case)."""
        assert found.spans is not None
        text, out, last = found.text, [], 0
        for i in found.positions:
            word = new_words[i]
            if word == found.words[i]:
                continue  # kept (or its own only candidate): the original characters stay
            start, end = found.spans[i]
            out += [text[last:start], cased_like(word, text[start:end]) if self.params.do_lower_case else word]
            last = end
        out.append(text[last:])
        return "".join(out)
