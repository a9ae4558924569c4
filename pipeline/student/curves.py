"""The learning-curve figure of the student stage (curves.png): the headline dev metric per epoch
of every run, mean over seeds."""

from __future__ import annotations

import io

import numpy as np

from .. import storage
from ..metrics import METRIC_NAMES


def plot_curves(per_run: dict[str, list[dict]], path: str, metric: str = "accuracy") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = f"dev_{metric}"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, results in per_run.items():
        curves = [[e[key] for e in r["history"] if key in e] for r in results]
        n = min(len(c) for c in curves)
        if n:
            mean = np.mean([c[:n] for c in curves], axis=0)
            ax.plot(range(1, n + 1), 100 * mean, marker="o", label=name)
    ax.set_xlabel("epoch (prediction-layer step)")
    ax.set_ylabel(f"dev {METRIC_NAMES[metric]}, mean over seeds (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    storage.write_bytes(path, png.getvalue())
