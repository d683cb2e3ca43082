"""Plot validation Dice per round: one panel per region, one line per mode, each mode's selected round starred."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedseg.labels import REGIONS

__all__ = ["plot_curves"]


def plot_curves(curves: dict[str, list[dict[str, Any]]], path: Path, *, title: str = "Validation Dice per round",
                selected: dict[str, int] | None = None, equal_round: int | None = None) -> Path:
    """Plot pooled Dice per round to a PNG written atomically.

    ``selected`` marks each mode's best-validation round (converged protocol) with a star; ``equal_round``
    draws the equal-budget protocol's common round as a dashed line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from fedseg.fsutil import atomic_path

    fig, axes = plt.subplots(1, len(REGIONS), figsize=(4 * len(REGIONS), 3.4), sharey=True)
    for ax, region in zip(axes, REGIONS):
        for mode, curve in curves.items():
            (line,) = ax.plot([p["round"] for p in curve], [p["dice"][region] for p in curve], marker="o",
                              markersize=3, label=mode)
            if selected and mode in selected:
                r = selected[mode]
                ax.plot([r], [curve[r]["dice"][region]], marker="*", markersize=12, color=line.get_color())
        if equal_round is not None:
            ax.axvline(equal_round, color="grey", linestyle="--", linewidth=1)
        ax.set_title(region)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice (pooled over sites)")
    axes[-1].legend(loc="lower right")
    if selected:
        title += " (★ best validation = converged protocol; dashed = equal budget)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
