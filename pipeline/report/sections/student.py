"""The student section: the results table over seeds, each run's scores and the learning curves."""

from __future__ import annotations

from ...metrics import METRIC_NAMES, REGRESSION_METRICS
from .. import plots
from ..collect import ReportData
from ..markup import _img, _notrun, _num, _table, e


def _student(data: ReportData) -> str:
    s = data.student
    if not s.ran:
        return _notrun(s.note)
    parts = []
    rows_data, runs = s.data["rows"], s.data["runs"]
    metric = next((str(r["metric"]) for r in [*rows_data, *runs] if r.get("metric")), None)
    if metric is None:  # runs of an older stage name no metric: the history tells
        history = [h for r in runs for h in r.get("history") or []]
        metric = "pearson" if any("dev_pearson" in h for h in history) else "accuracy"
    names = ["pearson", "spearman", "mse"] if metric in REGRESSION_METRICS else ["accuracy", "macro_f1"]
    names = list(dict.fromkeys([metric, *names]))
    split = next((str(r["eval_split"]) for r in [*rows_data, *runs] if r.get("eval_split")), "test")

    def cell(r: dict, name: str, first: bool) -> str:
        mean = r.get(f"{name}_mean", float("nan"))
        if not first:
            return f"{mean:.4f}"
        std = r.get(f"{name}_std")
        return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else " (one run)")

    if rows_data:
        rows = [
            [
                e(str(r.get("name", ""))),
                e(str(r.get("model", ""))),
                e(str(r.get("data", ""))),
                e(", ".join(map(str, r.get("seeds", [])))),
                *(cell(r, n, i == 0) for i, n in enumerate(names)),
                _num(r.get("params")),
                _num(r.get("sentences_per_s")),
            ]
            for r in rows_data
        ]
        heads = [f"{split} {METRIC_NAMES[names[0]]} (mean ± std)", *(f"{split} {METRIC_NAMES[n]}" for n in names[1:])]
        parts.append(
            "<h3>Results</h3>"
            + _table(
                ["name", "model", "data", "seeds", *heads, "parameters", "sentences / s"],
                rows,
                set(range(4, 6 + len(names))),
            )
        )
    elif not s.data["has_results"]:
        parts.append(_notrun("No results.json yet: the runs below have not been summarised."))
    if runs:
        key = f"dev_{metric}"
        rows = [
            [
                e(str(r.get("run", ""))),
                e(str(r.get("model", ""))),
                e(str(r.get("data", ""))),
                _num(r.get("seed")),
                _num(sum(key in h for h in r.get("history") or [])),
                *(f"{r.get('scores', r.get('test', {})).get(n, float('nan')):.4f}" for n in names),
            ]
            for r in runs
        ]
        parts.append(
            "<h3>Runs</h3>"
            + _table(
                ["run", "model", "data", "seed", "epochs", *(f"{split} {METRIC_NAMES[n]}" for n in names)],
                rows,
                set(range(3, 5 + len(names))),
            )
        )
        if any(r.get("history") for r in runs):
            curves = plots.learning_curves(runs, metric, METRIC_NAMES[metric])
            parts.append(f'<div class="figs">{_img(curves, "student learning curves")}</div>')
    return "\n".join(parts)
