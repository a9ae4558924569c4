"""The language of a job (``language``: ``en``, ``zh`` or a language with a spaCy pipeline) and
what it picks for both augmentations.

=========  ===============  ==============================  ===================  ==============
language   Tang's words      TinyBERT's eligible words        stop words           variants
           and POS tags                                                            written
=========  ===============  ==============================  ===================  ==============
en         spaCy pipeline    letters a-z (the reference)       the reference's      words spaced
zh         jieba.posseg      one Han character, or a-z         function characters  no space next
                                                               + the reference's    to Chinese
other      spaCy pipeline    letters of any script             spaCy's list         words spaced
           the job names
=========  ===============  ==============================  ===================  ==============

TinyBERT lower-cases words (stripping their accents) as an uncased BERT does for en and zh; other
languages keep case and accents unless the job says otherwise (``do_lower_case``), since their
word vectors (fastText's ``.vec`` files) and cased multilingual models need them.

TinyBERT's words always come from BERT's basic tokenizer, which makes every CJK character a word
of its own (as the reference's tokenizer does), so a Chinese character takes masked-LM candidates
from a Chinese or multilingual BERT; the bundled English GloVe serves English only.

A variant is written as the original text with its changed words in place (``text_format:
natural``), so Chinese text keeps having no spaces between its words, mixed Chinese and English
keeps the spaces it had and full-width punctuation stays. Where words must be joined
(``text_format: reference``, or a text whose words cannot be found in it) they are joined as the
language writes them: ``join_words``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT = "en"
CHINESE = "zh"
ELIGIBLE_RULES = ("latin", "han", "letters")
ZH_STOPWORDS_RESOURCE = "zh_function_characters.txt"

# BERT's BasicTokenizer._is_chinese_char (the reference's tokenizer has the same ranges): the
# characters it splits into words of their own
HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ceaf\U0002f800-\U0002fa1f"
_HAN_CHAR = re.compile(f"[{HAN_RANGES}]")
_LATIN = re.compile("[a-z]+")
_LETTERS = re.compile(r"[^\W\d_]+")  # letters of any script (no digits, no underscore)
# written without spaces next to Chinese: Han, CJK symbols and punctuation (U+3000-303F, the
# full-width space included), full-width forms (U+FF00-FFEF), CJK compatibility forms, and the
# curly quotes, ellipsis and dashes Chinese text uses
_CJK = re.compile(f"[{HAN_RANGES}\u3000-\u303f\uff00-\uffef\ufe30-\ufe4f\u2018\u2019\u201c\u201d\u2026\u2014]")


@dataclass(frozen=True)
class Language:
    """What a language picks: ``eligible`` (a rule of ``ELIGIBLE_RULES``), ``stopwords`` (the
    TinyBERT stop-word list used when the job sets none), ``tagger`` ("spacy" or "jieba"),
    ``spaced`` (words written with spaces between them), ``bundled_glove`` (the bundled English
    GloVe serves it), ``lower_case`` (TinyBERT's words lower-cased, accents stripped, when the job
    does not say: as uncased BERTs do for en and zh; other languages keep their accents, which
    their word vectors and cased multilingual models need)."""

    code: str
    eligible: str
    stopwords: str
    tagger: str
    spaced: bool
    bundled_glove: bool
    lower_case: bool


def language(code: str) -> Language:
    """The preset of a language code (any code other than en and zh: a spaCy pipeline's)."""
    if code == DEFAULT:
        return Language(code, "latin", "reference", "spacy", True, True, True)
    if code == CHINESE:
        return Language(code, "han", "language", "jieba", False, False, True)
    return Language(code, "letters", "language", "spacy", True, False, False)


def is_han(text: str) -> bool:
    """One Han character (a word of its own for BERT's basic tokenizer)."""
    return len(text) == 1 and _HAN_CHAR.match(text) is not None


def eligible_form(word: str, rule: str) -> bool:
    """Whether a (lower-cased) word has the letters ``rule`` replaces: ``latin`` a-z only (the
    reference's ``_is_valid``); ``han`` one Han character or a-z only; ``letters`` letters of any
    script only."""
    if rule == "latin":
        return _LATIN.fullmatch(word) is not None
    if rule == "han":
        return is_han(word) or _LATIN.fullmatch(word) is not None
    if rule == "letters":
        return _LETTERS.fullmatch(word) is not None
    raise ValueError(f"unknown eligibility rule {rule!r}; expected one of {ELIGIBLE_RULES}")


@functools.lru_cache(maxsize=8)
def language_stopwords(code: str) -> frozenset[str]:
    """TinyBERT's stop words of a language's own: for zh the bundled function characters (pronouns,
    particles, auxiliaries, prepositions, conjunctions, negations, degree adverbs, the
    counterparts of the reference's English list) plus the reference's list for the English words
    of mixed text; for another language spaCy's list (``spacy.lang.<code>``); for en the
    reference's list."""
    from .words import _resource_words, reference_stopwords

    if code == DEFAULT:
        return reference_stopwords()
    if code == CHINESE:
        return frozenset(_resource_words(ZH_STOPWORDS_RESOURCE)) | reference_stopwords()
    from spacy.util import get_lang_class

    return frozenset(w.lower() for w in get_lang_class(code).Defaults.stop_words)


def is_cjk(ch: str) -> bool:
    """A character written without spaces next to Chinese (Han, CJK or full-width punctuation)."""
    return _CJK.match(ch) is not None


def needs_space(left: str, right: str, spaced: bool) -> bool:
    """Whether two words written one after the other take a space between them: always in a spaced
    language; in Chinese only between two letters or digits that are not Chinese ("new" "york",
    "iPhone" "15"), not next to a Chinese character, a mask token or punctuation."""
    if spaced:
        return True
    if not (left and right):
        return False
    a, b = left[-1], right[0]
    return a.isalnum() and b.isalnum() and not (is_cjk(a) or is_cjk(b))


def join_words(words: Sequence[str], spaced: bool = True) -> str:
    """Words written as the language writes them: spaced, or (Chinese) a space only between two
    words that do not touch Chinese characters."""
    if spaced:
        return " ".join(words)
    out: list[str] = []
    for word in words:
        if not word:
            continue
        if out and needs_space(out[-1], word, False):
            out.append(" ")
        out.append(word)
    return "".join(out)
