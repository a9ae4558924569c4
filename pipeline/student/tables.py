"""The student stage's result table: a row per run (mean ± std over seeds), the teacher rows,
and the markdown of results.md."""

from __future__ import annotations

import numpy as np

from ..cache.ensemble import MAIN, Member, combine
from ..metrics import METRIC_NAMES, REGRESSION_METRICS, task_scores
from .evaluate import predict_transformer, timed
from .run_context import _Context, _params, teacher_model_path
from .settings import RunConfig


def _teacher_rows(ctx: _Context) -> list[dict]:
    """The teacher's own row (its model run on the final split) and, when runs learn from an
    ensemble, a row per further teacher and per combination the runs use."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    first = ctx.sc.runs[0].data
    ensembles = [r for r in ctx.sc.runs if r.teachers]
    caches = ctx.ensemble(ensembles[0].data).members if ensembles else {MAIN: Member(MAIN, ctx.cache(first))}
    wanted = list(dict.fromkeys([MAIN, *(n for r in ensembles for n in r.teachers or [])]))
    outputs, params, rows = {}, {}, []
    for name in wanted:
        manifest = caches[name].cache.manifest
        path = teacher_model_path(manifest["teacher"])
        model = AutoModelForSequenceClassification.from_pretrained(path).to(ctx.device)
        tokenizer = AutoTokenizer.from_pretrained(path)
        length = int(manifest["max_length"])
        outputs[name], speed = timed(
            lambda d, m=model, t=tokenizer, n=length: predict_transformer(m, t, d, ctx.device, n), ctx.final
        )
        label = "teacher" if name == MAIN else f"teacher {name}"
        params[name] = _params(model)
        kind = manifest["teacher"].get("model_type", "teacher")
        rows.append(_score_row(ctx, label, kind, outputs[name], params[name], speed))
    for names, how, weights in dict.fromkeys(
        (tuple(r.teachers or []), r.combine, tuple(r.weights or [])) for r in ensembles
    ):
        combined = combine(np.stack([outputs[n] for n in names]), how, list(weights) or None)
        label = (
            f"teachers {'+'.join(names)} ({how}{', weights ' + '/'.join(f'{w:g}' for w in weights) if weights else ''})"
        )
        rows.append(_score_row(ctx, label, "ensemble", combined, sum(params[n] for n in names), None))
    return rows


def _score_row(ctx: _Context, name: str, model: str, outputs: np.ndarray, params: int, speed: float | None) -> dict:
    scores = task_scores(outputs, ctx.final.labels, ctx.regression)
    return {
        "name": name,
        "model": model,
        "data": "fine-tuned",
        "seeds": [ctx.cfg.seed],
        "eval_split": ctx.final_split,
        **{f"{k}_mean": v for k, v in scores.items()},
        **{f"{k}_std": None for k in scores},
        "metric": ctx.metric,
        "metric_mean": scores[ctx.metric],
        "metric_std": None,
        "params": params,
        "sentences_per_s": round(speed, 1) if speed else 0.0,
    }


def aggregate(run: RunConfig, results: list[dict], metric: str = "accuracy") -> dict:
    """One row of the table: mean and standard deviation over seeds of every final metric
    (``accuracy_mean``, ``macro_f1_std``, ``pearson_mean``, ...) on the run's eval split."""
    finals = [r.get("scores", r["test"]) for r in results]
    names = list(dict.fromkeys(k for f in finals for k in f)) or [metric]
    stats: dict = {}
    for name in names:
        values = np.array([f.get(name, np.nan) for f in finals], dtype=float)
        stats[f"{name}_mean"] = float(values.mean())
        stats[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
    return {
        "metric": metric,
        "metric_mean": stats.get(f"{metric}_mean", float("nan")),
        "metric_std": stats.get(f"{metric}_std"),
        "name": run.name,
        "model": run.model,
        "data": run.data,
        "loss": run.loss,
        "seeds": [r["seed"] for r in results],
        "eval_split": results[0].get("eval_split", "test"),
        **stats,
        "params": int(results[0]["params"]),
        "params_without_embeddings": int(results[0].get("params_without_embeddings", results[0]["params"])),
        "sentences_per_s": float(np.mean([r["sentences_per_s"] or 0 for r in results])),
        "train_rows": int(results[0].get("train_rows", 0)),
    }


def table_metrics(metric: str) -> list[str]:
    """The table's metric columns: the headline first, then accuracy / macro-F1 (classification)
    or Spearman / MSE (regression)."""
    rest = ["spearman", "mse"] if metric in REGRESSION_METRICS else ["accuracy", "macro_f1"]
    return list(dict.fromkeys([metric, *[m for m in rest if m != metric]]))


def _cell(r: dict, name: str, first: bool) -> str:
    mean, std = r.get(f"{name}_mean"), r.get(f"{name}_std")
    if mean is None:
        return "-"
    scale, digits = (1.0, 4) if name == "mse" else (100.0, 2)
    text = f"{scale * mean:.{digits}f}"
    if first:
        seeds = len(r["seeds"])
        spread = f" ± {scale * std:.{digits}f}" if std is not None else ""
        text += f"{spread} ({seeds} seed{'s' if seeds > 1 else ''})"
    return text


def markdown_table(rows: list[dict]) -> str:
    """The result table: the task's headline metric (mean ± std over seeds) and two more, on the
    test split, or on dev where the task's test labels are hidden."""
    metric = next((r["metric"] for r in rows if r.get("metric")), "accuracy")
    split = next((r["eval_split"] for r in rows if r.get("eval_split")), "test")
    names = table_metrics(metric)
    heads = [f"{split} {METRIC_NAMES[names[0]]} (mean ± std)", *(METRIC_NAMES[n] for n in names[1:])]
    lines = [
        f"| model | trained on | loss | {' | '.join(heads)} | params | sentences/s |",
        "| --- | --- | --- |" + " --- |" * len(names) + " --- | --- |",
    ]
    for r in rows:
        cells = " | ".join(_cell(r, n, i == 0) for i, n in enumerate(names))
        lines.append(
            f"| {r['name']} | {r['data']} | {r.get('loss', '-')} | {cells} | "
            f"{r['params'] / 1e6:.2f} M | {r['sentences_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"
