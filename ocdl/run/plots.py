"""Comparison plots (matplotlib, Agg backend, PNG): loss and accuracy against epoch and against
training wall time (``train_time``: the run's wall time less its evaluations), and the non-zero
fraction against epoch (loss and non-zero fraction on a log axis when they span a decade or
more), and the fraction of dead units against epoch where the runs recorded it — one curve per
solver (mean over seeds, with a band of ± one standard deviation when there are several
seeds). Epoch axes have whole-epoch ticks; accuracies and fractions are shown in percent."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PLOTS = (  # file, y key, y label, x axis
    ("loss_vs_epoch.png", "loss", "training loss (epoch mean)", "epoch"),
    ("accuracy_vs_epoch.png", "test_acc", "test accuracy", "epoch"),
    ("loss_vs_time.png", "loss", "training loss (epoch mean)", "time"),
    ("accuracy_vs_time.png", "test_acc", "test accuracy", "time"),
    ("sparsity_vs_epoch.png", "nonzero", "non-zero fraction of discrete controls", "epoch"),
    ("dead_units_vs_epoch.png", "dead", "dead units (all-zero rows) of discrete weights",
     "epoch"),
)

LOG_SCALE = ("loss", "nonzero")
PERCENT = ("test_acc", "nonzero", "dead")
"""Fractions drawn in percent (on a linear axis; a log axis keeps its powers of ten)."""
OPTIONAL = ("dead",)
"""Keys whose plot is written only when some run recorded them (runs before ocdl counted dead
units have no ``dead``)."""


def log_axis(histories: dict[str, list[list[dict[str, Any]]]], key: str) -> bool:
    """Draw ``key`` on a log axis? For the keys of ``LOG_SCALE`` whose recorded values are all
    positive and span a factor of 10 or more (a sparsity falling from 60 % to 1 %)."""
    if key not in LOG_SCALE:
        return False
    vals = [v for hs in histories.values() for h in hs for r in h
            if isinstance((v := r.get(key)), (int, float)) and math.isfinite(v)]
    return bool(vals) and min(vals) > 0 and max(vals) >= 10 * min(vals)


def _curves(histories: Sequence[list[dict[str, Any]]], key: str, x: str):
    """Mean and std over seeds at each epoch (epochs every seed reached)."""
    n = min((len(h) for h in histories), default=0)
    xs, mean, std = [], [], []
    for i in range(n):
        ys = [h[i].get(key) for h in histories]
        ys = [v for v in ys if isinstance(v, (int, float)) and math.isfinite(v)]
        if not ys:
            continue
        xv = [h[i].get("train_time", h[i].get("time")) if x == "time" else h[i].get("epoch")
              for h in histories]
        xv = [v for v in xv if isinstance(v, (int, float))]
        xs.append(sum(xv) / len(xv))
        m = sum(ys) / len(ys)
        mean.append(m)
        std.append(math.sqrt(sum((v - m) ** 2 for v in ys) / (len(ys) - 1)) if len(ys) > 1
                   else 0.0)
    return xs, mean, std


def compare_figures(histories: dict[str, list[list[dict[str, Any]]]], title: str = ""
                    ) -> list[tuple[str, Any]]:
    """The comparison plots as open matplotlib figures, ``(file name, figure)`` each (see the
    module docstring): epochs on integer ticks, accuracies and fractions in percent (on a
    linear axis). The caller closes them (:func:`write_compare_plots` saves and closes)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    figures = []
    for name, key, ylabel, x in PLOTS:
        if key in OPTIONAL and not any(key in r for hs in histories.values() for h in hs
                                       for r in h):
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
        drawn = False
        for solver, hs in histories.items():
            xs, m, s = _curves(hs, key, x)
            if not xs:
                continue
            drawn = True
            ax.plot(xs, m, marker="o" if len(xs) < 20 else None, ms=3, label=solver)
            if any(s):
                ax.fill_between(xs, [a - b for a, b in zip(m, s)], [a + b for a, b in zip(m, s)],
                                alpha=0.2)
        ax.set_xlabel("training wall time (s, evaluations excluded)" if x == "time" else "epoch")
        if x == "epoch":  # whole epochs only: no tick at 1.25
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_ylabel(ylabel)
        if log_axis(histories, key):
            ax.set_yscale("log")
        elif key in PERCENT:
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no '{key}' recorded", ha="center", va="center",
                    transform=ax.transAxes)
        fig.tight_layout()
        figures.append((name, fig))
    return figures


def write_compare_plots(histories: dict[str, list[list[dict[str, Any]]]], out_dir: str | Path,
                        title: str = "") -> list[Path]:
    """``histories[solver]`` lists the per-epoch histories of its seeds; returns the PNG files."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, fig in compare_figures(histories, title):
        path = out / name
        fig.savefig(path)
        plt.close(fig)
        files.append(path)
    return files
