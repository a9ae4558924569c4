"""TinyBERT's and Tang et al.'s augmentation as Python objects, without a job file or Ray.

    from pipeline import TinyBert
    TinyBert(n_aug=4).augment(["A gripping, funny and original film."], seed=1)

Each object takes the settings of its job-file section (``augment.tinybert``, ``augment.tang``)
and validates them as part of a job (the same models, defaults, cross-checks and messages); it
runs the same code as the augment stage's tasks: the pure augmenters of ``pipeline/augment/``,
their parameters made by the stage's own method objects from that job. Assets (GloVe, the MLM,
the spaCy tagger) are loaded at the first ``augment`` call and kept. A text's variants come from
a random stream seeded by ``seed`` and the text's id, so with the ids and seed of a job's rows
(``example_id`` in its examples) they are the rows the stage wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

from pydantic import ValidationError

from .config import ConfigError, JobConfig, TangConfig, TinyBertConfig, _format_errors
from .seeding import stable_hex

Pair = tuple[str, str | None]


def _job(method: str, task: str, language: str, text_format: str, settings: dict[str, Any]) -> JobConfig:
    """A job that augments with ``method`` and these settings, validated as a job file is: the same
    defaults, cross-checks and messages (the keys named as in a job file, ``augment.tinybert.p``).
    Its input is never read: the texts come from ``augment`` calls."""
    source = f"{'TinyBert' if method == 'tinybert' else 'Tang'}(...)"
    data = {
        "name": method,
        "task": task,
        "language": language,
        "output_dir": ".",
        "inputs": {"train": {"path": "texts.jsonl", "columns": {"text_a": "text"}}},
        "augment": {"methods": [method], "text_format": text_format, method: settings},
    }
    try:
        return JobConfig.model_validate(data)
    except ValidationError as err:
        problems = _format_errors(source, err).split("\n", 1)[1]
        raise ConfigError(f"{source}: invalid settings ({err.error_count()} problem(s)):\n{problems}") from None


def _rows(texts: Sequence[str], text_b: Sequence[str | None] | None, ids: Sequence[str] | None):
    """The call's examples as (ids, texts a, texts b), checked."""
    if isinstance(texts, str) or isinstance(text_b, str):
        raise TypeError("augment() takes a list of texts (and of second texts), not one string")
    texts_b: list[str | None] = [None] * len(texts) if text_b is None else list(text_b)
    if len(texts_b) != len(texts) or (ids is not None and len(ids) != len(texts)):
        raise ValueError(
            f"texts ({len(texts)}), text_b ({len(texts_b)}) and ids ({len(ids) if ids is not None else '-'}) "
            "must have the same length"
        )
    if ids is None:  # from the content: a text has the same variants wherever it appears
        ids = [stable_hex(a, "" if b is None else b) for a, b in zip(texts, texts_b)]
    return list(ids), list(texts), texts_b


def _variants(results: list[list[Pair]], pairs: bool) -> list:
    """The augmenters' rows without the original (row 0); single texts as strings."""
    return [rows[1:] if pairs else [a for a, _ in rows[1:]] for rows in results]


class TinyBert:
    """TinyBERT's augmentation (arXiv 1909.10351): masked-LM candidates for single-piece words,
    GloVe neighbours for the others (for every word when ``mlm`` is none, the default).

    Keyword arguments are the job file's ``augment.tinybert`` keys (``n_aug``, ``p``, ``top_k``,
    ``mlm``, ``glove={"rows": ...}``, ...; see docs/configuration.md), and ``task``, ``language``
    and ``text_format`` its ``task``, ``language`` and ``augment.text_format``: validated as a job
    file is (a bad value raises ``ConfigError`` naming the key, ``augment.tinybert.p``), with the
    same defaults (``n_aug`` None: the task's). GloVe and the MLM are loaded at the first
    ``augment`` call, once.

    Example::

        from pipeline import TinyBert

        tinybert = TinyBert(n_aug=4)  # GloVe neighbours for every eligible word
        for text, variants in zip(texts, tinybert.augment(texts, seed=1)):
            print(text, variants)
    """

    def __init__(
        self, *, task: str = "sst2", language: str = "en", text_format: str = "natural", **settings: Any
    ) -> None:
        self.config = _job("tinybert", task, language, text_format, settings)
        self.settings: TinyBertConfig = self.config.augment.tinybert
        self.n_aug: int = self.config.tinybert_n
        self._augmenter: Any = None
        self._batch_size = 0

    def _loaded(self) -> Any:
        if self._augmenter is None:
            from .augment import tinybert_tasks as tasks

            # the stage's own method object makes the parameters and says whether GloVe takes part
            method, t = tasks.TinyBert(self.config, "local"), self.settings
            params = method.params()
            glove = tasks.load_glove(t.glove) if method.uses_glove() else None
            if t.mlm is None:
                from .augment.tinybert import TinyBertAugmenter

                self._augmenter, device = TinyBertAugmenter(params, glove, None), "cpu"
            else:
                from .runtime.numerics import pin_numerics

                pin_numerics()  # as the stage's MLM actors do
                self._augmenter, device = tasks.mlm_augmenter(params, t.mlm, t.device, t.dtype, None, glove)
            gpu = t.mlm is not None and device == "cuda"
            self._batch_size = t.batch_size or (tasks.GPU_BATCH_SIZE if gpu else tasks.CPU_BATCH_SIZE)
        return self._augmenter

    @overload
    def augment(
        self, texts: Sequence[str], text_b: None = None, *, seed: int = 0, ids: Sequence[str] | None = None
    ) -> list[list[str]]: ...

    @overload
    def augment(
        self, texts: Sequence[str], text_b: Sequence[str | None], *, seed: int = 0, ids: Sequence[str] | None = None
    ) -> list[list[tuple[str, str | None]]]: ...

    def augment(
        self,
        texts: Sequence[str],
        text_b: Sequence[str | None] | None = None,
        *,
        seed: int = 0,
        ids: Sequence[str] | None = None,
    ) -> list[list[str]] | list[list[tuple[str, str | None]]]:
        """Each text's variants (the original left out), in the order given.

        With ``text_b`` (sentence pairs; ``None`` in it for a single text) each variant is a pair:
        text a's variants with text b as given, then text b's with text a as given. ``ids`` seed
        each row's random stream with ``seed`` (the stage uses the examples' ``example_id``);
        left out, each row's id is a hash of its text(s), so a text gets the same variants
        wherever it appears.
        """
        ids, texts_a, texts_b = _rows(texts, text_b, ids)
        augmenter, size = self._loaded(), self._batch_size
        results: list[list[Pair]] = []
        for i in range(0, len(ids), size):  # as the stage's tasks batch (the rows do not depend on it)
            results += augmenter.augment(ids[i : i + size], texts_a[i : i + size], texts_b[i : i + size], seed)
        return _variants(results, text_b is not None)


class Tang:
    """Tang et al.'s augmentation (arXiv 1903.12136): masking, replacement by a word of the same
    POS tag drawn by its frequency, n-gram sampling.

    Keyword arguments are the job file's ``augment.tang`` keys (``n_iter``, ``p_mask``, ``p_pos``,
    ``p_ng``, ``max_ngram``, ``spacy_model``, ...; see docs/configuration.md); ``task``,
    ``language`` and ``text_format`` as for :class:`TinyBert`. The word frequencies per
    tag come from :meth:`fit`'s corpus (the stage counts the train split), else from the texts of
    each ``augment`` call. The spaCy tagger is loaded at first use, once.

    Example::

        from pipeline import Tang

        tang = Tang(n_iter=4).fit(train_texts)
        variants = tang.augment(["A gripping, funny and original film."], seed=1)[0]
    """

    def __init__(
        self, *, task: str = "sst2", language: str = "en", text_format: str = "natural", **settings: Any
    ) -> None:
        self.config = _job("tang", task, language, text_format, settings)
        self.settings: TangConfig = self.config.augment.tang
        self.n_iter: int = self.config.tang_n_iter
        self._unigram: Any = None

    def _tagged(self, texts: Sequence[str], text_b: Sequence[str | None] | None, ids: Sequence[str] | None):
        import pyarrow as pa

        from .augment.tang_tasks import tag_table

        ids, texts_a, texts_b = _rows(texts, text_b, ids)
        table = pa.table(
            {"example_id": ids, "text_a": pa.array(texts_a, pa.string()), "text_b": pa.array(texts_b, pa.string())}
        )
        t = self.settings
        return tag_table(table, t.spacy_model, t.tag_attr, t.batch_size, self.config.language)

    def fit(self, texts: Sequence[str], text_b: Sequence[str | None] | None = None) -> Tang:
        """Count the (POS tag, word) pairs of a corpus (both texts of a pair): the frequencies that
        POS-guided replacement draws from in later ``augment`` calls. Returns the augmenter."""
        from .augment.pos import PosUnigram
        from .augment.tang_tasks import unigram_counts

        self._unigram = PosUnigram.from_arrow(unigram_counts([self._tagged(texts, text_b, None)]))
        return self

    @overload
    def augment(
        self, texts: Sequence[str], text_b: None = None, *, seed: int = 0, ids: Sequence[str] | None = None
    ) -> list[list[str]]: ...

    @overload
    def augment(
        self, texts: Sequence[str], text_b: Sequence[str | None], *, seed: int = 0, ids: Sequence[str] | None = None
    ) -> list[list[tuple[str, str | None]]]: ...

    def augment(
        self,
        texts: Sequence[str],
        text_b: Sequence[str | None] | None = None,
        *,
        seed: int = 0,
        ids: Sequence[str] | None = None,
    ) -> list[list[str]] | list[list[tuple[str, str | None]]]:
        """Each text's variants (the original left out), in the order given.

        With ``text_b`` (sentence pairs) each variant is a pair: try i changes text a (i % 3 == 0),
        text b (1) or both (2). ``ids`` and ``seed`` as for :meth:`TinyBert.augment`.
        """
        from .augment import tang_tasks as tasks
        from .augment.pos import PosUnigram
        from .augment.tang import TangAugmenter

        tagged = self._tagged(texts, text_b, ids)
        unigram = self._unigram if self._unigram is not None else PosUnigram.from_arrow(tasks.unigram_counts([tagged]))
        # the stage's own method object makes the parameters (it plans nothing here)
        params = tasks.Tang(self.config, "local", plan=None, examples_key=None).params()
        augmenter = TangAugmenter(params, unigram)
        return _variants(tasks.augment_tagged_table(augmenter, tagged, seed), text_b is not None)
