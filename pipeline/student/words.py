"""Words for the BiLSTM student: a tokenizer, a vocabulary and GloVe-initialised embeddings."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

PAD, UNK = "<pad>", "<unk>"
# English as Tang et al.'s student splits it (a-z and digit runs, an apostrophe's clitic kept on its
# word, any other character a word of its own), the same since the first release
_WORD = re.compile(r"\[mask\]|[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", re.IGNORECASE)
# BERT's basic tokenizer's CJK ranges (_is_chinese_char): each character a word
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ceaf\U0002f800-\U0002fa1f"


@functools.lru_cache(maxsize=64)
def _pattern(language: str, mask_token: str) -> re.Pattern:
    """Other languages: letter and digit runs of any script (an elision's apostrophe kept on its
    word: l'été is l' and été, as fastText's French vectors have them), each Chinese character a
    word, any other character a word; the mask token (Tang's, lower-cased) always one word."""
    mask = re.escape(mask_token.lower()) + "|"
    if language == "en":
        return _WORD if mask_token == "[MASK]" else re.compile(mask + _WORD.pattern, re.IGNORECASE)
    return re.compile(mask + rf"\[mask\]|[{_HAN}]|(?:(?![{_HAN}])[^\W_])+'?|\S", re.IGNORECASE)


def words(text: str | None, language: str = "en", mask_token: str = "[MASK]") -> list[str]:
    """Lower-cased words and punctuation marks of ``text`` in ``language``; ``[MASK]`` and the
    job's mask token (Tang's masking) stay one word."""
    return _pattern(language, mask_token).findall(text.lower()) if text else []


class Vocab:
    def __init__(self, tokens: Sequence[str], language: str = "en", mask_token: str = "[MASK]"):
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad>, <unk>")
        self.itos = list(tokens)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.language, self.mask_token = language, mask_token

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(
        cls, texts: Iterable[str | None], extra: Sequence[str] = (), language: str = "en", mask_token: str = "[MASK]"
    ) -> Vocab:
        """Every word of ``texts`` (most frequent first, ties alphabetical), then ``extra`` words not seen."""
        counts = Counter(w for t in texts for w in words(t, language, mask_token))
        seen = sorted(counts, key=lambda w: (-counts[w], w))
        tokens = [PAD, UNK, *seen]
        have = set(tokens)
        for w in extra:
            if w not in have:
                have.add(w)
                tokens.append(w)
        return cls(tokens, language, mask_token)

    def encode(self, text: str | None, max_words: int) -> list[int]:
        unk = 1
        return [self.stoi.get(w, unk) for w in words(text, self.language, self.mask_token)[:max_words]]

    def to_dict(self) -> dict:
        return {"tokens": self.itos, "language": self.language, "mask_token": self.mask_token}


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
