"""The teacher section: fine-tuning, ensembles, predictions, confidence and label flips, or the
scores of a regression teacher."""

from __future__ import annotations

import numpy as np

from ...metrics import METRIC_NAMES
from .. import plots, stats
from ..collect import ReportData
from ..markup import _img, _notrun, _num, _pct, _table, e


def _teacher(data: ReportData) -> str:
    t = data.teacher
    parts = []
    ft = t.data.get("finetune")
    if ft:
        metric = str(ft.get("metric", "accuracy"))
        rows = [
            [
                _num(ep["epoch"]),
                f"{ep['train_loss']:.4f}",
                f"{ep.get('dev_loss', float('nan')):.4f}",
                f"{ep.get(f'dev_{metric}', float('nan')):.4f}",
            ]
            for ep in ft.get("epochs", [])
        ]
        loss = "squared error" if ft.get("regression") else "cross-entropy"
        parts.append(
            f'<h3>Fine-tuning</h3><p class="note">{_num(ft.get("train_examples"))} training examples, '
            f"dev: {e(str(ft.get('dev_source', '')))}; best epoch {_num(ft.get('best_epoch'))}"
            f"{' (reused from an earlier run)' if ft.get('reused') else ''}.</p>"
            + _table(
                ["epoch", f"train loss ({loss})", "dev loss", f"dev {METRIC_NAMES.get(metric, metric)}"],
                rows,
                {0, 1, 2, 3},
            )
        )
    if not t.ran:
        parts.append(_notrun(t.note))
        return "\n".join(parts)
    for err in t.data.get("errors", []):
        parts.append(f'<p class="error">Cache not readable: {e(err)}</p>')
    caches = t.data["caches"]
    parts += [_ensemble(c) for c in caches if c.get("ensemble")]
    if any(c.get("regression") for c in caches):
        parts.append(_teacher_scores([c for c in caches if c.get("regression")]))
        caches = [c for c in caches if not c.get("regression")]
        if not caches:
            return "\n".join(parts)
    rows = []
    for c in caches:
        agree = c.get("agreement")
        flips: stats.FlipStats | None = c["flips"]
        orig, var = c["confidence_original"], c["confidence_variant"]
        predicted = ", ".join(f"{e(k)} {_pct(v / c['rows'] if c['rows'] else None)}" for k, v in c["predicted"].items())
        rows.append(
            [
                e(c["name"]),
                e(", ".join(c["methods"])) or "–",
                _num(c["rows"]),
                predicted,
                _pct(agree[0] / agree[1]) if agree and agree[1] else "–",
                f"{orig.mean:.3f}" if orig.n else "–",
                f"{var.mean:.3f}" if var.n else "–",
                f"{_pct(flips.rate)} ({flips.flips:,} of {flips.compared:,})" if flips else "–",
            ]
        )
    parts.append(
        "<h3>Predictions</h3>"
        + _table(
            [
                "cache",
                "method",
                "rows",
                "predicted labels",
                "agrees with label",
                "confidence: originals",
                "confidence: variants",
                "label-flip rate",
            ],
            rows,
            {2, 4, 5, 6},
        )
    )
    single = [c["name"] for c in caches if c["rows"] and max(c["predicted"].values(), default=0) == c["rows"]]
    if single:
        parts.append(
            f'<p class="error">The teacher predicts the same label for every row of {e(", ".join(single))}: '
            "it has learnt no more than the majority label, and a label-flip rate of zero says nothing about "
            "the augmentation. Train the teacher longer or on more data.</p>"
        )
    parts.append(
        '<p class="note">Label-flip rate: share of variants whose predicted label (argmax of the cached '
        "logits) differs from the prediction on their original. Confidence: the softmax probability of the "
        "predicted label. A variant inherits its original's label.</p>"
    )
    aug_methods = set()
    if data.augment.ran:
        aug_methods = {m for b in data.augment.data["splits"].values() for m in b["methods"]}
    cached = {m for c in caches for m in c["methods"]}
    missing = sorted(aug_methods - cached)
    if missing:
        parts.append(
            _notrun(
                f"No teacher cache of the {', '.join(missing)} corpus: no confidence or flip rate for "
                f"{'it' if len(missing) == 1 else 'them'} (add augmented/<split>/<method> to "
                "teacher.inputs)."
            )
        )
    panels = [(c["name"], c["confidence_original"], c["confidence_variant"]) for c in caches if c["rows"]]
    if panels:
        parts.append(f'<div class="figs">{_img(plots.confidence_histograms(panels), "teacher confidence")}</div>')
    return "\n".join(parts)


def _ensemble(c: dict) -> str:
    """A cache's teacher ensemble: each teacher and each combination scored on its originals."""
    ens = c["ensemble"]
    scores: dict = ens["scores"]
    names = ["pearson", "spearman", "mse"] if c.get("regression") else ["accuracy", "macro_f1"]
    rows = [[e(name), *(f"{v.get(n, float('nan')):.4f}" for n in names)] for name, v in scores.items()]
    agree = ""
    if ens.get("pairwise_agreement") is not None:
        agree = (
            f" Two teachers predict the same label on {_pct(ens['pairwise_agreement'])} of the rows (mean over "
            f"pairs); all {len(ens['teachers'])} agree on {_pct(ens['all_agree'])}."
        )
    return (
        f"<h3>Ensemble: {e(c['name'])}</h3>"
        + _table(["teacher", *(METRIC_NAMES[n] for n in names)], rows, set(range(1, 1 + len(names))))
        + f'<p class="note">{_num(ens["rows"])} originals of the cache, against their labels. prob_mean: the '
        f"mean of the teachers' probabilities; logit_mean: the mean of their logits.{agree}</p>"
    )


def _teacher_scores(caches: list[dict]) -> str:
    """A regression teacher: its predicted scores, their correlation with the gold scores and a
    scatter plot of the two; the shift of a variant's prediction from its original's."""
    rows = []
    for c in caches:
        pred, corr, shift = c.get("prediction"), c.get("correlation") or {}, c.get("shift")
        rows.append(
            [
                e(c["name"]),
                e(", ".join(c["methods"])) or "–",
                _num(c["rows"]),
                f"{pred[0]:.2f} ± {pred[1]:.2f} ({pred[2]:.2f} to {pred[3]:.2f})" if pred else "–",
                _num(c.get("scored")),
                *(
                    f"{corr[k]:.4f}" if np.isfinite(corr.get(k, np.nan)) else "–"
                    for k in ("pearson", "spearman", "mse")
                ),
                f"{shift[0]:.3f} ({shift[1]:,} variants)" if shift and shift[0] is not None else "–",
            ]
        )
    parts = [
        "<h3>Predictions</h3>"
        + _table(
            [
                "cache",
                "method",
                "rows",
                "predicted score (mean ± sd, range)",
                "scored rows",
                "Pearson",
                "Spearman",
                "MSE",
                "variant shift",
            ],
            rows,
            {2, 4, 5, 6, 7},
        ),
        '<p class="note">Pearson, Spearman and MSE of the teacher\'s prediction against the gold score over '
        "the scored originals of each cache. Variant shift: mean absolute difference between the prediction "
        "on a variant and on its original (a variant inherits its original's gold score).</p>",
    ]
    panels = [(c["name"], c["points"], (c.get("correlation") or {}).get("pearson")) for c in caches if c.get("points")]
    if panels:
        parts.append(
            f'<div class="figs">{_img(plots.score_scatter(panels), "teacher prediction against the gold score")}</div>'
        )
    return "\n".join(parts)
