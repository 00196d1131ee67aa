"""Plots of adaptation curves (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import write_atomic


def plot_curves(path: Path, curves: list[dict[str, Any]], oracle: dict[str, Any] | None, title: str) -> None:
    """Write the adaptation curves (means with 95 % bands, the oracle's line) as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for c in curves:
        k = np.arange(len(c["mean"]))
        n = len(c["sources"])
        ax.plot(k, c["mean"], marker="o", label=f"{c['name']} ({n} seed{'s' if n != 1 else ''})")
        ax.fill_between(k, c["ci95_low"], c["ci95_high"], alpha=0.2)
    if oracle is not None:
        ax.axhline(oracle["mean"], color="k", linestyle="--", label=f"oracle: {oracle['label']}")
    ax.set_xlabel("adaptation steps k")
    ax.set_ylabel("mean episode return")
    ax.set_xticks(range(len(curves[0]["mean"])))
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        write_atomic(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    finally:
        plt.close(fig)
