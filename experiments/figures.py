"""The report's PNG figures (matplotlib, Agg backend: no display needed)."""
import os
from typing import Dict, List, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

# One series: label -> (x values, means, standard deviations).
Series = Dict[str, Tuple[Sequence[float], Sequence[float], Sequence[float]]]


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def error_bar_panels(path: str, panels: List[Tuple[str, str, Series]], xlabel: str,
                     invert_x: bool = False) -> str:
    """Side-by-side panels (title, y label, series), each series drawn as mean ± std over seeds."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (title, ylabel, series) in zip(axes[0], panels):
        for label, (x, mean, std) in series.items():
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=label)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if invert_x:
            ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def curves(path: str, panels: List[Tuple[str, Dict[str, Sequence[float]]]], ylabel: str,
           xlabel: str = "batch (first epoch)", log_scale: bool = True) -> str:
    """One panel per title: curves (label -> values at x = 1, 2, ...), shared y axis."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False, sharey=log_scale)
    for ax, (title, lines) in zip(axes[0], panels):
        for label, values in lines.items():
            ax.plot(range(1, len(values) + 1), values, label=label)
        if log_scale:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def bars(path: str, labels: Sequence[str], means: Sequence[float], stds: Sequence[float], ylabel: str,
         title: str) -> str:
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(labels)), 3.8))
    ax.bar(range(len(labels)), means, yerr=stds, capsize=3)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
