"""Words of a text as TinyBERT's augmentation sees them.

The reference (``data_augmentation.py`` of arXiv 1909.10351) splits a text with BERT's
``BasicTokenizer`` (clean-up, CJK spacing, lower-casing and accent stripping for uncased
models, punctuation split). A word may be replaced when it consists of the letters a-z only
(after lower-casing) and is not one of its stop words: by default the reference's own
173-word ``StopWordsList`` (``stopwords: reference``), or NLTK's English list plus ``'s`` and
``'re`` (``stopwords: nltk``), which also holds what, which, who, whom, when, where, why and how.
Other languages widen the letters to their script and bring their own stop words (``languages.py``).
As the reference's tokenizer does, ``[UNK]``, ``[SEP]``, ``[PAD]``, ``[CLS]`` and ``[MASK]``
written in a text stay single words (not lower-cased, not split at their brackets).

Variants are compared in one normal form: the basic-tokenized words joined by single spaces.
Basic tokenization works whitespace-token by whitespace-token, so the normal form of a word
list is the concatenation of the normal forms of its words, which are memoised.

The same holds for a whole text made of printable ASCII, tabs and line breaks: the basic
tokenizer's whole-text passes (control characters, CJK spacing, NFC) leave such a text as it
is, so its words are the memoised words of its whitespace tokens. Other texts go through the
basic tokenizer whole.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from importlib import resources

from transformers.models.bert.tokenization_bert_legacy import BasicTokenizer

from .languages import DEFAULT, HAN_RANGES, eligible_form, language, language_stopwords

STOPWORDS_RESOURCE = "nltk_english_stopwords.txt"
REFERENCE_STOPWORDS_RESOURCE = "tinybert_reference_stopwords.txt"
EXTRA_STOPWORDS = ("'s", "'re")
STOPWORD_LISTS = ("reference", "nltk", "language")
# the reference BasicTokenizer's never_split default
NEVER_SPLIT = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")
_LETTERS = re.compile("[a-z]+")
_LETTER_RUNS = re.compile(r"[^\W\d_]+")  # runs of (any script's) letters
# the same, with every Han character a run of its own (the basic tokenizer splits them)
_HAN_OR_LETTER_RUNS = re.compile(f"[{HAN_RANGES}]|[^\\W\\d_{HAN_RANGES}]+")
_PLAIN_ASCII = re.compile(r"[\t\n\r -~]*")  # texts the basic tokenizer splits token by token
_ALNUM = re.compile(r"[A-Za-z0-9]+")  # tokens the basic tokenizer only lower-cases (uncased) or keeps
_MAX_MEMO = 1_000_000


@functools.lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """NLTK's English stop words plus ``'s`` and ``'re``.

    Uses the NLTK corpus when it is installed, else the copy bundled in
    ``pipeline/resources`` (nltk_data cannot be downloaded on every machine).
    """
    try:
        from nltk.corpus import stopwords

        words = stopwords.words("english")
    except (ImportError, LookupError, OSError):
        words = _resource_words(STOPWORDS_RESOURCE)
    return frozenset(words) | frozenset(EXTRA_STOPWORDS)


def _resource_words(name: str) -> list[str]:
    text = (resources.files("pipeline") / "resources" / name).read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@functools.lru_cache(maxsize=1)
def reference_stopwords() -> frozenset[str]:
    """The reference script's ``StopWordsList`` (bundled verbatim, with its source)."""
    return frozenset(_resource_words(REFERENCE_STOPWORDS_RESOURCE))


def stopwords(name: str, language_code: str = DEFAULT) -> frozenset[str]:
    """A stop-word list by name: "reference" (the default), "nltk" or "language" (the job language's
    own, ``languages.language_stopwords``)."""
    if name == "reference":
        return reference_stopwords()
    if name == "nltk":
        return english_stopwords()
    if name == "language":
        return language_stopwords(language_code)
    raise ValueError(f"unknown stop-word list {name!r}; expected one of {STOPWORD_LISTS}")


class WordSplitter:
    """Basic tokenization, eligibility and the normal form for one casing convention."""

    def __init__(self, do_lower_case: bool = True, stopword_list: str = "reference", language_code: str = DEFAULT):
        # strip_accents=None: accents are stripped exactly when lower-casing, as in BERT.
        self._basic = BasicTokenizer(do_lower_case=do_lower_case, never_split=NEVER_SPLIT)
        self._rule = language(language_code).eligible
        self._normal: dict[str, str] = {}
        self._token_words: dict[str, list[str]] = {}
        stop = stopwords(stopword_list, language_code)
        if self._rule != "latin":
            # a stop word in the form of the words it must match: basic-tokenized ("l'" is the word
            # "l"), and without its accents when words lose them with their capitals
            stop = stop | {word for w in stop for word in self._basic.tokenize(w)}
        self._stopwords = stop

    def likely_eligible(self, texts: Iterable[str | None]) -> set[str]:
        """The eligible words of ``texts``, found quickly by a regular expression rather than by
        basic tokenization: the letter runs of the (lower-cased, accent-stripped) text. Nearly
        always the very words :meth:`words` gives; a word only one of the two finds (a letter run
        glued to digits or to a symbol that is not punctuation) costs a little work, never a
        different result, where this only plans work ahead."""
        lower = self._basic.do_lower_case
        found: set[str] = set()
        for text in texts:
            if not text:
                continue
            if lower:
                text = text.lower()
                if not text.isascii():
                    text = self._basic._run_strip_accents(text)  # the basic tokenizer's own rule
            found.update((_HAN_OR_LETTER_RUNS if self._rule == "han" else _LETTER_RUNS).findall(text))
        return {w for w in found if self.is_eligible(w)}

    def words(self, text: str) -> list[str]:
        """The basic-tokenized words of ``text`` (``BasicTokenizer.tokenize``)."""
        if not _PLAIN_ASCII.fullmatch(text):
            return self._basic.tokenize(text)
        out: list[str] = []
        memo = self._token_words
        for token in text.split():
            words = memo.get(token)
            if words is None:
                if len(memo) >= _MAX_MEMO:
                    memo.clear()
                words = memo[token] = self._token(token)
            out += words
        return out

    def _token(self, token: str) -> list[str]:
        """``BasicTokenizer.tokenize(token)``; a token of ASCII letters and digits directly."""
        if _ALNUM.fullmatch(token):
            return [token.lower() if self._basic.do_lower_case else token]
        return self._basic.tokenize(token)

    def is_eligible(self, word: str) -> bool:
        """Letters a-z only (after lower-casing; other languages: their script's letters, see
        ``languages.eligible_form``) and not a stop word."""
        lowered = word.lower()
        if self._rule != "latin":
            return eligible_form(lowered, self._rule) and lowered not in self._stopwords
        return _LETTERS.fullmatch(lowered) is not None and lowered not in self._stopwords

    def word_normal(self, word: str) -> str:
        """The normal form of one word ("" for a word that is all spaces or removed characters)."""
        normal = self._normal.get(word)
        if normal is None:
            if len(self._normal) >= _MAX_MEMO:
                self._normal.clear()
            normal = self._normal[word] = " ".join(self._token(word))
        return normal

    def normal_form(self, words: Sequence[str]) -> str:
        """The basic tokenization of ``" ".join(words)``, joined by single spaces."""
        return joined_normals([self.word_normal(w) for w in words])


def _strip_marks(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _removed(c: str) -> bool:
    """Characters the basic tokenizer drops (NUL, U+FFFD, control characters but tab / CR / LF)."""
    return c in "\x00\ufffd" or (c not in "\t\n\r" and unicodedata.category(c).startswith("C"))


def word_spans(text: str, words: Sequence[str], do_lower_case: bool) -> list[tuple[int, int]] | None:
    """The character span of each basic-tokenized word of ``text`` (``WordSplitter.words``), so a
    variant can change those words alone and keep the text's casing, spacing and punctuation.
    None when the words cannot be found in order (a normalisation that does not map onto the
    text's characters); callers then write the words joined by spaces."""

    def norm(sub: str, lower: bool) -> str:
        sub = unicodedata.normalize("NFC", "".join(c for c in sub if not _removed(c)))
        return _strip_marks(sub.lower()) if lower else sub

    spans, pos, n = [], 0, len(text)
    for word in words:
        while pos < n and (text[pos].isspace() or _removed(text[pos])):
            pos += 1
        start, end, target = pos, pos, unicodedata.normalize("NFD", word)
        lower = do_lower_case and word not in NEVER_SPLIT  # kept as written by the tokenizer
        while True:
            if end >= n:
                return None
            end += 1
            got = norm(text[start:end], lower)
            if got == word:
                break
            if not target.startswith(unicodedata.normalize("NFD", got)):
                return None
        # combining marks and removed characters after the word belong to it
        while end < n and not text[end].isspace() and norm(text[start : end + 1], lower) == word:
            end += 1
        spans.append((start, end))
        pos = end
    return spans


def cased_like(word: str, original: str) -> str:
    """``word`` with the capitalisation of the word it replaces (all capitals, first capital)."""
    if len(original) > 1 and original.isupper():
        return word.upper()
    if original[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def joined_normals(normals: Sequence[str]) -> str:
    """The normal form of a word list from the normal forms of its words."""
    return " ".join(filter(None, normals))
