"""A user's script over the public names of ``pipeline``, as a type checker sees it.

tests/test_library.py runs mypy (strict) over this file with ``pipeline`` found as an installed
package (so through ``pipeline/py.typed``); it is type-checked, not run.
"""

from __future__ import annotations

from torch.utils.data import DataLoader

from pipeline import (
    AugmentSummary,
    CacheDataset,
    CacheError,
    CacheSummary,
    ConfigError,
    IngestSummary,
    Job,
    PipelineError,
    RunSummary,
    Tang,
    TinyBert,
    open_cache,
    run,
)


def variants(texts: list[str]) -> dict[str, list[str]]:
    tinybert = TinyBert(n_aug=4, glove={"rows": 20_000})
    tang = Tang(n_iter=4).fit(texts)
    single: list[list[str]] = tinybert.augment(texts, seed=1)
    pairs: list[list[tuple[str, str | None]]] = tang.augment(texts, [None] * len(texts), seed=1, ids=texts)
    return {text: [*mine, *(a for a, _ in both)] for text, mine, both in zip(texts, single, pairs)}


def demo(path: str, output_dir: str) -> float:
    job: Job = Job.from_yaml(path, output_dir=output_dir, inputs={"train": {"limit": 40}})
    try:
        summary: RunSummary = run(job, stages=["ingest", "augment", "teacher"], executor="local")
    except ConfigError as exc:
        print(f"fix the job file: {exc}")
        raise
    except PipelineError as exc:
        print(exc)
        return 0.0
    train: IngestSummary = summary.ingest["train"]
    tinybert: AugmentSummary = summary.augment["train/tinybert"]
    cached: CacheSummary = summary.caches["augmented/train/tinybert"]
    assert train.rows_in == train.kept + train.rejected and summary.rows_out >= tinybert.rows_in
    try:
        cache = open_cache(cached.path)
    except CacheError as exc:
        print(exc)
        return 0.0
    loader = DataLoader(CacheDataset(cached.path, columns=["logits"], batch_size=8), batch_size=None)
    total = sum(float(batch["logits"].sum()) for batch in loader)
    return total / max(cache.num_rows, 1) + job.config.seed + summary.seconds
