"""The report's figures: matplotlib (Agg) drawn into inline PNG data URIs."""

from __future__ import annotations

import base64
import functools
import io
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from . import stats

COLORS = {"tinybert": "#3b6fb6", "tang": "#d9822b", "original": "#6b7785", "variant": "#3b6fb6"}
_CYCLE = ["#3b6fb6", "#d9822b", "#4a9c5d", "#b54a68", "#7a5cb8", "#8c6d3f", "#2f9fa6", "#c4a21f"]

# The report's look, applied around each figure (``_styled``): set globally, it changed every
# figure drawn later in the same process, the student stage's curves.png among them.
STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "legend.frameon": False,
}
F = TypeVar("F", bound=Callable[..., str])

# Labels, run and method names may be Chinese, Japanese or Korean: DejaVu Sans first (Latin text keeps
# its look), then a CJK family that matplotlib falls back to glyph by glyph. The font files of Debian's
# packages (installed by `make chromium`) are added by path, since matplotlib's font cache may date from
# before they were installed.
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei")
CJK_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)


@functools.cache
def font_families() -> list[str]:
    """DejaVu Sans and the CJK families matplotlib can find here (absent ones are left out: each
    would log a findfont warning per figure)."""
    from matplotlib import font_manager

    known = {f.fname for f in font_manager.fontManager.ttflist}
    for path in CJK_FONT_FILES:
        if path not in known and os.path.exists(path):
            font_manager.fontManager.addfont(path)
    names = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(name for name in CJK_FAMILIES if name in names)]


def _styled(fn: F) -> F:
    @functools.wraps(fn)
    def draw(*args, **kwargs) -> str:
        style: dict[str, Any] = {**STYLE, "font.family": font_families()}
        with plt.rc_context(style):  # type: ignore[arg-type]
            return fn(*args, **kwargs)

    return cast("F", draw)


def color(name: str, i: int = 0) -> str:
    return COLORS.get(name, _CYCLE[i % len(_CYCLE)])


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@_styled
def count_histograms(series: dict[str, dict[int, int]], xlabel: str, title: str) -> str:
    """Side-by-side bars of integer counts (one colour per method), as shares of examples; a
    series is ``{count: examples with that count}`` (its size does not grow with the corpus)."""
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    values = [v for s in series.values() for v in s]
    edges = stats.histogram_bins(values)
    centres = (edges[:-1] + edges[1:]) / 2
    width = 0.8 / max(len(series), 1)
    for k, (name, hist) in enumerate(series.items()):
        vals = np.fromiter(hist, dtype=np.int64, count=len(hist))
        weights = np.fromiter(hist.values(), dtype=np.int64, count=len(hist))
        counts, _ = np.histogram(vals, edges, weights=weights)
        total = int(weights.sum())
        share = counts / max(total, 1)
        ax.bar(
            centres + (k - (len(series) - 1) / 2) * width,
            share,
            width=width,
            color=color(name, k),
            label=f"{name} (mean {(vals * weights).sum() / total:.1f})" if total else name,
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of examples")
    ax.set_title(title)
    ax.legend()
    return to_data_uri(fig)


@_styled
def length_change_cdf(series: dict[str, Sequence[int]]) -> str:
    """Cumulative share of variants by length change: a heavy tail (Tang's n-gram sampling) stays readable."""
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    for k, (name, vals) in enumerate(series.items()):
        if not len(vals):
            continue
        x = np.sort(np.asarray(vals))
        ax.step(
            x,
            np.arange(1, len(x) + 1) / len(x),
            where="post",
            color=color(name, k),
            lw=1.6,
            label=f"{name} (mean {np.mean(x):+.2f}, unchanged length {np.mean(x == 0):.0%})",
        )
    ax.axvline(0, color="#444", lw=0.8)
    ax.set_xlabel("words in variant − words in original")
    ax.set_ylabel("share of variants ≤ x")
    ax.set_ylim(0, 1.02)
    ax.set_title("Length change (cumulative)")
    ax.legend(loc="upper left", fontsize=7.5)
    return to_data_uri(fig)


@_styled
def rate_bars(rates: dict[str, stats.MethodRates]) -> str:
    kinds = [("replaced", "replaced_rate"), ("masked", "masked_rate"), ("dropped", "dropped_rate")]
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    x = np.arange(len(kinds))
    width = 0.8 / max(len(rates), 1)
    for k, (name, r) in enumerate(rates.items()):
        vals = [getattr(r, attr) for _, attr in kinds]
        bars = ax.bar(x + (k - (len(rates) - 1) / 2) * width, vals, width=width, color=color(name, k), label=name)
        ax.bar_label(bars, labels=[f"{v:.1%}" for v in vals], fontsize=8, padding=2)
    ax.set_xticks(x, [k for k, _ in kinds])
    ax.set_ylabel("share of original words")
    ax.set_title("Per-word edit rates")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.margins(y=0.18)
    ax.legend()
    return to_data_uri(fig)


@_styled
def confidence_histograms(panels: list[tuple[str, stats.Confidence, stats.Confidence]]) -> str:
    """One panel per cache: the teacher's confidence on originals and on variants (shares)."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.4, 2.8), squeeze=False, sharey=True)
    for ax, (title, orig, var) in zip(axes[0], panels):
        for name, conf in (("original", orig), ("variant", var)):
            if conf.n:
                ax.hist(
                    conf.edges[:-1],
                    bins=conf.edges,
                    histtype="stepfilled",
                    alpha=0.45,
                    color=COLORS[name],
                    weights=conf.counts / conf.n,
                    label=f"{name}s (n={conf.n:,}, mean {conf.mean:.2f})",
                )
        ax.set_title(title)
        ax.set_xlabel("teacher confidence (max softmax)")
        ax.legend(loc="upper left", fontsize=7.5)
    axes[0][0].set_ylabel("share of rows")
    fig.tight_layout()
    return to_data_uri(fig)


@_styled
def score_scatter(panels: list[tuple[str, Sequence[Sequence[float]], float | None]]) -> str:
    """Regression: one panel per cache, the teacher's predicted score against the gold score
    (originals and variants; a variant carries its original's gold score), with y = x."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n + 0.4, 3.2), squeeze=False)
    for ax, (title, points, r) in zip(axes[0], panels):
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        for name, keep in (("variant", pts[:, 2] > 0), ("original", pts[:, 2] == 0)):
            if keep.any():
                ax.scatter(
                    pts[keep, 0], pts[keep, 1], s=7, alpha=0.5, color=COLORS[name], label=f"{name}s ({keep.sum():,})"
                )
        if len(pts):
            lo, hi = float(pts[:, :2].min()), float(pts[:, :2].max())
            ax.plot([lo, hi], [lo, hi], color="#999999", lw=0.8, ls="--")
        ax.set_title(title + (f" (Pearson {r:.3f})" if r is not None and np.isfinite(r) else ""))
        ax.set_xlabel("gold score")
        ax.legend(loc="upper left", fontsize=7.5)
    axes[0][0].set_ylabel("teacher prediction")
    fig.tight_layout()
    return to_data_uri(fig)


@_styled
def learning_curves(runs: list[dict], metric: str = "accuracy", metric_name: str = "accuracy") -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.0))
    key = f"dev_{metric}"
    for k, run in enumerate(runs):
        # the prediction-layer epochs (a BERT student's intermediate-layer epochs have no dev score)
        hist = [h for h in run.get("history") or [] if key in h and "train_loss" in h]
        epochs = [h["epoch"] for h in hist]
        c = _CYCLE[k % len(_CYCLE)]
        left.plot(epochs, [h["train_loss"] for h in hist], marker="o", ms=3, color=c, label=run.get("run", f"run {k}"))
        right.plot(epochs, [h[key] for h in hist], marker="o", ms=3, color=c, label=run.get("run", f"run {k}"))
    left.set_title("Training loss")
    right.set_title(f"Dev {metric_name}")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    right.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return to_data_uri(fig)
