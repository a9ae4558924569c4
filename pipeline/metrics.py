"""Task metrics of predictions against gold labels: pure NumPy, shared by the teacher's fine-tune,
the students and the report.

Classification: accuracy, macro-F1, F1 of label 1 and Matthews correlation. Regression (STS-B):
Pearson and Spearman correlation (Spearman with tied values given their average rank, as
``scipy.stats.spearmanr`` does) and the mean squared error.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "f1": "F1",
    "mcc": "MCC",
    "pearson": "Pearson",
    "spearman": "Spearman",
    "mse": "MSE",
}


def accuracy_f1(pred: np.ndarray, labels: np.ndarray, num_labels: int) -> dict:
    """Over the labelled rows (label ≥ 0): accuracy, macro-F1, F1 of label 1 (the positive class
    of GLUE's binary tasks: MRPC, QQP) and Matthews correlation (CoLA's metric; the multi-class
    form of Gorodkin 2004 for more than two labels)."""
    keep = labels >= 0
    pred, labels = pred[keep], labels[keep]
    if not len(labels):
        return {name: float("nan") for name in METRIC_NAMES}
    confusion = np.zeros((num_labels, num_labels), dtype=np.float64)
    np.add.at(confusion, (labels, pred), 1)
    tp = np.diag(confusion)
    fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        f1s = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    n, correct = confusion.sum(), tp.sum()
    predicted, actual = confusion.sum(0), confusion.sum(1)
    cov = correct * n - predicted @ actual
    var = np.sqrt((n * n - predicted @ predicted) * (n * n - actual @ actual))
    return {
        "accuracy": float(correct / n),
        "macro_f1": float(np.mean(f1s)),
        "f1": float(f1s[1]) if num_labels > 1 else float("nan"),
        "mcc": float(cov / var) if var > 0 else 0.0,
    }


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; 0.0 where either side is constant (no linear relation to speak of, rather
    than NaN, so that a constant prediction ranks below any informative one)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt((dx @ dx) * (dy @ dy))
    return float(dx @ dy / denom) if denom > 0 else 0.0


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n; tied values share the average of their ranks."""
    x = np.asarray(x)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(xs)]
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(average_ranks(x), average_ranks(y))


REGRESSION_METRICS = ("pearson", "spearman", "mse")


def correlations(pred: np.ndarray, gold: np.ndarray) -> dict:
    """Over the scored rows (gold not NaN): Pearson, Spearman and the mean squared error."""
    pred, gold = np.asarray(pred, dtype=np.float64).reshape(-1), np.asarray(gold, dtype=np.float64)
    keep = ~np.isnan(gold)
    pred, gold = pred[keep], gold[keep]
    if len(gold) < 2:
        return {name: float("nan") for name in REGRESSION_METRICS}
    return {"pearson": pearson(pred, gold), "spearman": spearman(pred, gold), "mse": float(np.mean((pred - gold) ** 2))}


def task_scores(outputs: np.ndarray, gold: np.ndarray, regression: bool) -> dict:
    """Every metric of a model's outputs [rows, outputs] against the gold labels (label ids, -100
    unknown; or scores, NaN unknown)."""
    if regression:
        return correlations(outputs[:, 0], gold)
    return accuracy_f1(outputs.argmax(-1), gold, outputs.shape[1])
