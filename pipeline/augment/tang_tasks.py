"""Tang et al. on Ray: thin adapters around the pure augmenter (``tang.py``).

1. A tagging stage per split (``work/tang-tags/<split>``): tasks tag their range with spaCy (the
   tagger loaded once per worker process) and write the tagged examples and their (tag, word)
   counts, each task its own files.
2. One Ray task merges the train split's counts into the unigram-by-tag table, which travels to
   every augmenting task through the object store.
3. Augmenting tasks read their range's tagged examples and write their variants.

The tagging stage has the augment stage's plan (the same ranges of the same examples), so
augmenting task i reads tagging task i's file.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import layout, storage
from ..config import JobConfig, TangConfig
from ..runtime import runner
from ..runtime.digest import digest
from ..runtime.resources import Resources
from ..runtime.runner import Stage, Task, Work, run_stage
from .languages import CHINESE, DEFAULT
from .method import read_examples, variants_table, write_variants
from .pos import UNIGRAM_SCHEMA

_TAGGED = ["words_a", "tags_a", "words_b", "tags_b"]


@lru_cache(maxsize=2)
def _tagger(model: str, attr: str, batch_size: int, language: str = DEFAULT):
    from .pos import make_tagger

    return make_tagger(language, model, attr, batch_size)


@lru_cache(maxsize=2)
def _unigram(ref: tuple):
    from .pos import PosUnigram

    return PosUnigram.from_arrow(runner.get(ref))


def tag_table(batch: pa.Table, model: str, attr: str, batch_size: int, language: str = DEFAULT) -> pa.Table:
    """``batch`` with the words and tags of its texts (the whole table in one spaCy pipe, which
    batches by ``batch_size`` itself: one pipe call per 256 examples took 13% longer; Chinese: jieba)."""
    tagger = _tagger(model, attr, batch_size, language)
    tagged_a = tagger.tag(batch.column("text_a").to_pylist())
    texts_b = batch.column("text_b").to_pylist()
    present = [t for t in texts_b if t is not None]
    found = iter(tagger.tag(present)) if present else iter(())
    tagged_b = [next(found) if t is not None else None for t in texts_b]
    lists = pa.list_(pa.string())
    return (
        batch.append_column("words_a", pa.array([w for w, _ in tagged_a], lists))
        .append_column("tags_a", pa.array([t for _, t in tagged_a], lists))
        .append_column("words_b", pa.array([x[0] if x else None for x in tagged_b], lists))
        .append_column("tags_b", pa.array([x[1] if x else None for x in tagged_b], lists))
    )


def unigram_counts(tagged: list[pa.Table]) -> pa.Table:
    """Pure: the (tag, word) counts of tagged tables (``words_a``/``tags_a``, ``words_b``/``tags_b``
    list columns, or count tables with columns tag, word, count), as :meth:`PosUnigram.to_arrow`
    gives them: columns tag, word, count, sorted."""
    pairs = []
    for t in tagged:
        if "count" in t.column_names:
            pairs.append(t.select(UNIGRAM_SCHEMA.names).cast(UNIGRAM_SCHEMA))
            continue
        for words, tags in (("words_a", "tags_a"), ("words_b", "tags_b")):
            flat = pa.table({"tag": pc.list_flatten(t.column(tags)), "word": pc.list_flatten(t.column(words))})
            pairs.append(
                pa.table(
                    {"tag": flat["tag"], "word": flat["word"], "count": np.ones(flat.num_rows, dtype=np.int64)}
                ).cast(UNIGRAM_SCHEMA)
            )
    if not pairs:
        return UNIGRAM_SCHEMA.empty_table()
    counted = pa.concat_tables(pairs).group_by(["tag", "word"], use_threads=False).aggregate([("count", "sum")])
    counted = counted.select(["tag", "word", "count_sum"]).rename_columns(UNIGRAM_SCHEMA.names).cast(UNIGRAM_SCHEMA)
    return counted.sort_by([("tag", "ascending"), ("word", "ascending")])


def tag_task(task: Task, model: str, attr: str, batch_size: int, out_dir: str, language: str = DEFAULT) -> dict:
    """Tag a range; write the tagged examples and their (tag, word) counts."""
    tagged = tag_table(read_examples(task), model, attr, batch_size, language)
    files = [
        storage.write_parquet(storage.join(out_dir, f"{task.name}.parquet"), tagged),
        storage.write_parquet(storage.join(out_dir, f"{task.name}.counts.parquet"), unigram_counts([tagged])),
    ]
    return {"files": files, "rows_in": tagged.num_rows}


def merge_counts(paths: list[str]) -> pa.Table:
    """Ray task: the unigram-by-tag table of a split from its tagging tasks' count files."""
    tables = []
    for path in paths:
        filesystem, p = storage.resolve(path)
        with filesystem.open_input_file(p) as fh:
            tables.append(pq.read_table(fh))
    return unigram_counts(tables)


def tang_task(task: Task, params, unigram_ref: tuple, seed: int, tags_dir: str, out_dir: str) -> dict:
    from .tang import TangAugmenter

    filesystem, p = storage.resolve(storage.join(tags_dir, f"{task.name}.parquet"))
    with filesystem.open_input_file(p) as fh:
        batch = pq.read_table(fh)
    results = augment_tagged_table(TangAugmenter(params, _unigram(unigram_ref)), batch, seed)
    return write_variants(out_dir, task, variants_table(batch, results, "tang", seed))


def augment_tagged_table(augmenter, batch: pa.Table, seed: int) -> list:
    """Each example of a tagged table (``tag_table``'s) augmented: per example, its original and variants."""
    col = {name: batch.column(name).to_pylist() for name in ("example_id", "text_a", "text_b", *_TAGGED)}
    tagged_a = list(zip(col["words_a"], col["tags_a"]))
    tagged_b = [None if w is None else (w, t) for w, t in zip(col["words_b"], col["tags_b"])]
    return augmenter.augment_tagged(col["example_id"], tagged_a, tagged_b, col["text_a"], col["text_b"], seed)


def tang_params(t: TangConfig, n_iter: int, text_format: str, language: str = DEFAULT):
    """The pure augmenter's parameters from the job's ``augment.tang`` settings (the stage and
    ``pipeline.Tang`` both build them here)."""
    from .tang import TangParams

    return TangParams(
        n_iter=n_iter,
        p_mask=t.p_mask,
        p_pos=t.p_pos,
        p_ng=t.p_ng,
        max_ngram=t.max_ngram,
        mask_token=t.mask_token,
        text_format=text_format,
        language=language,
    )


def _jieba_version() -> str:
    """jieba's version: its dictionary decides the words and tags."""
    from importlib.metadata import version

    return version("jieba")


class Tang:
    name = "tang"

    def __init__(self, cfg: JobConfig, executor: str, plan, examples_key):
        """``plan(split)``: the split's tasks; ``examples_key(split)``: its examples' fingerprint."""
        self.cfg, self.executor, self.plan, self.examples_key = cfg, executor, plan, examples_key
        self._unigram_ref: tuple | None = None
        self._tagged: dict[str, list[str]] = {}

    def tries(self) -> int:
        return self.cfg.tang_n_iter

    def settings(self) -> dict:
        settings = {
            **self.cfg.augment.tang.model_dump(mode="json", exclude={"workers", "batch_size"}),
            "text_format": self.cfg.augment.text_format,
        }
        if self.cfg.language != DEFAULT:  # (an English job's key stays what it was)
            settings["language"] = self.cfg.language
            if self.cfg.language == CHINESE:  # tagged by jieba: the spaCy settings play no part
                settings.pop("spacy_model")
                settings.pop("tag_attr")
        return settings

    def extra_inputs(self, split: str) -> dict:
        return {"train": self.examples_key("train")}  # the unigram-by-tag table comes from the train split

    def summary(self) -> dict:
        return {}

    def params(self):
        return tang_params(self.cfg.augment.tang, self.cfg.tang_n_iter, self.cfg.augment.text_format, self.cfg.language)

    def tag(self, split: str) -> list[str]:
        """Run (or skip) the split's tagging stage, once per run; the paths of its count files."""
        if split in self._tagged:
            return self._tagged[split]
        t = self.cfg.augment.tang
        out_dir = layout.tang_tags_dir(self.cfg.output_dir, split)
        lang = self.cfg.language
        tagger = {"model": t.spacy_model, "attr": t.tag_attr}
        if lang != DEFAULT:  # (an English job's key stays what it was)
            tagger = {"language": lang, **({"model": f"jieba {_jieba_version()}"} if lang == CHINESE else tagger)}
        key = digest(
            {
                "stage": "tang-tags",
                **tagger,
                "shard_rows": self.cfg.augment.shard_rows,
                "examples": self.examples_key(split),
            }
        )
        work = Work(
            tag_task,
            {
                "model": t.spacy_model,
                "attr": t.tag_attr,
                "batch_size": t.batch_size,
                "out_dir": out_dir,
                "language": lang,
            },
            Resources(cpus=1, workers=t.workers),
        )
        run_stage(
            Stage(
                f"tang tags {split}",
                out_dir,
                key,
                lambda: self.plan(split),
                lambda todo: work,
                lines=lambda s: [("tagged examples", s.get("rows", 0)), ("output", out_dir)],
                summarize=lambda results: {"rows": sum(r["rows_in"] for r in results)},
            ),
            self.executor,
        )
        self._tagged[split] = [storage.join(out_dir, f"{task.name}.counts.parquet") for task in self.plan(split)]
        return self._tagged[split]

    def unigram_ref(self) -> tuple:
        if self._unigram_ref is None:
            paths = self.tag("train")
            if self.executor == "local":
                self._unigram_ref = runner.put(merge_counts(paths), "local")
            else:
                import ray

                from ..runtime.ray_env import ensure

                ensure()
                self._unigram_ref = runner.RayRef(
                    (ray.remote(merge_counts).options(**Resources().ray_options()).remote(paths),)
                )
        return self._unigram_ref

    def work(self, split: str, todo: list[Task], out_dir: str) -> Work:
        unigram = self.unigram_ref()
        self.tag(split)
        return Work(
            tang_task,
            {
                "params": self.params(),
                "unigram_ref": unigram,
                "seed": self.cfg.seed,
                "tags_dir": layout.tang_tags_dir(self.cfg.output_dir, split),
                "out_dir": out_dir,
            },
            Resources(cpus=1, workers=self.cfg.augment.tang.workers),
        )
