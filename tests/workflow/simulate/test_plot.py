"""The seeds' mean validation curve: rounds that only some seeds reached average those seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedseg.workflow.simulate.plot import plot_seed_curves, seed_band


def _curve(*wt: float) -> list[dict]:
    return [{"round": r, "dice": {"WT": v, "TC": v / 2, "ET": 0.0}} for r, v in enumerate(wt)]


def test_seed_band_averages_the_seeds_that_reached_each_round() -> None:
    rounds, mean, sd, seeds = seed_band([_curve(0.0, 0.4, 0.6), _curve(0.0, 0.6)], "WT")
    assert rounds == [0, 1, 2] and seeds == [2, 2, 1]
    assert mean == pytest.approx([0.0, 0.5, 0.6])
    assert sd == pytest.approx([0.0, 0.1414213562, 0.0])  # sample sd of (0.4, 0.6); one seed left: 0
    assert seed_band([_curve(0.0, 0.4), _curve(0.0, 0.6)], "TC")[1] == pytest.approx([0.0, 0.25])


def test_plot_seed_curves_writes_a_png(tmp_path: Path) -> None:
    runs = [{"fl": _curve(0.0, 0.4, 0.6), "cds": _curve(0.0, 0.5)}, {"fl": _curve(0.0, 0.6)}]
    path = plot_seed_curves(runs, tmp_path / "summary.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.png"]  # written atomically: no temp file left
