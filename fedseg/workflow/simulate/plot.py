"""Plot validation Dice per round: one panel per region, one line per mode (each mode's selected round starred),
and for repeated runs the mean over seeds with a ±1 sd band."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.labels import REGIONS

__all__ = ["plot_curves", "plot_seed_curves", "seed_band"]


def _plot_panels(path: Path, title: str, draw: Callable[[Any, str], None], marker: float | None = None) -> Path:
    """Draw one panel per region with ``draw(ax, region)`` and write the PNG atomically.

    ``marker`` draws a round as a dashed line in every panel (the equal budget's common round).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from fedseg.fsutil import atomic_path

    fig, axes = plt.subplots(1, len(REGIONS), figsize=(4 * len(REGIONS), 3.4), sharey=True)
    for ax, region in zip(axes, REGIONS):
        draw(ax, region)
        if marker is not None:
            ax.axvline(marker, color="grey", linestyle="--", linewidth=1)
        ax.set_title(region)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice (pooled over sites)")
    axes[-1].legend(loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def plot_curves(curves: dict[str, list[dict[str, Any]]], path: Path, *, title: str = "Validation Dice per round",
                selected: dict[str, int] | None = None, equal_round: int | None = None) -> Path:
    """Plot pooled Dice per round to a PNG written atomically.

    ``selected`` marks each mode's best-validation round (converged protocol) with a star; ``equal_round``
    draws the equal-budget protocol's common round as a dashed line.
    """

    def draw(ax: Any, region: str) -> None:
        for mode, curve in curves.items():
            (line,) = ax.plot([p["round"] for p in curve], [p["dice"][region] for p in curve], marker="o",
                              markersize=3, label=mode)
            if selected and mode in selected:
                r = selected[mode]
                ax.plot([r], [curve[r]["dice"][region]], marker="*", markersize=12, color=line.get_color())

    if selected:
        title += " (★ best validation = converged protocol; dashed = equal budget)"
    return _plot_panels(path, title, draw, equal_round)


def seed_band(curves: Sequence[list[dict[str, Any]]], region: str) -> tuple[list[int], list[float], list[float], list[int]]:
    """Return (rounds, mean, sd, seeds) of one mode's validation Dice per round over seeds' ``curves``.

    A converged mode stops at another round in each seed: each round averages the seeds that reached it
    (``seeds`` says how many), the sd is the sample one (ddof=1; 0 where a single seed is left).
    """
    longest = max((len(c) for c in curves), default=0)
    rounds, mean, sd, seeds = [], [], [], []
    for r in range(longest):
        values = [c[r]["dice"][region] for c in curves if len(c) > r]
        rounds.append(r)
        mean.append(float(np.mean(values)))
        sd.append(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
        seeds.append(len(values))
    return rounds, mean, sd, seeds


def plot_seed_curves(runs: Sequence[dict[str, list[dict[str, Any]]]], path: Path, *,
                     title: str = "Validation Dice per round, mean ± sd over seeds") -> Path:
    """Plot each mode's mean validation curve over the seeds' ``runs`` (mode -> curve) with a ±1 sd band."""
    modes = list(dict.fromkeys(m for run in runs for m in run))

    def draw(ax: Any, region: str) -> None:
        for mode in modes:
            curves = [run[mode] for run in runs if mode in run]
            rounds, mean, sd, _ = seed_band(curves, region)
            (line,) = ax.plot(rounds, mean, marker="o", markersize=3, label=f"{mode} ({len(curves)} seeds)")
            ax.fill_between(rounds, np.subtract(mean, sd), np.add(mean, sd), color=line.get_color(), alpha=0.15)

    return _plot_panels(path, title, draw)
