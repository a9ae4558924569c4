"""Words for the BiLSTM student: a tokenizer, a vocabulary and GloVe-initialised embeddings."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"\[mask\]|[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", re.IGNORECASE)


def words(text: str | None) -> list[str]:
    """Lower-cased words and punctuation marks; ``[MASK]`` (Tang's masking) stays one token."""
    return _WORD.findall(text.lower()) if text else []


class Vocab:
    def __init__(self, tokens: Sequence[str]):
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad>, <unk>")
        self.itos = list(tokens)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, texts: Iterable[str | None], extra: Sequence[str] = ()) -> Vocab:
        """Every word of ``texts`` (most frequent first, ties alphabetical), then ``extra`` words not seen."""
        counts = Counter(w for t in texts for w in words(t))
        seen = sorted(counts, key=lambda w: (-counts[w], w))
        tokens = [PAD, UNK, *seen]
        have = set(tokens)
        for w in extra:
            if w not in have:
                have.add(w)
                tokens.append(w)
        return cls(tokens)

    def encode(self, text: str | None, max_words: int) -> list[int]:
        unk = 1
        return [self.stoi.get(w, unk) for w in words(text)[:max_words]]

    def to_dict(self) -> dict:
        return {"tokens": self.itos}


def glove_matrix(vocab: Vocab, glove_words: Sequence[str], glove: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """Embedding matrix for ``vocab``: GloVe rows where the word has one, else N(0, σ) with σ the
    GloVe matrix's own standard deviation; <pad> is zero. Returns (matrix, words found)."""
    rng = np.random.default_rng(seed)
    dim = glove.shape[1]
    sigma = float(glove.std()) if glove.size else 0.1
    out = rng.normal(0.0, sigma, size=(len(vocab), dim)).astype(np.float32)
    out[0] = 0.0
    index = {w: i for i, w in enumerate(glove_words)}
    found = 0
    for i, w in enumerate(vocab.itos[2:], start=2):
        j = index.get(w)
        if j is not None:
            out[i] = glove[j]
            found += 1
    return out, found
