"""Repeat a simulation over seeds (and, with leave-one-out, once per held-out site) and summarize it.

Per protocol, mode and region: the mean and the sample standard deviation (ddof=1; 0 for a single seed) of
the test Dice over seeds, on the test split and on each external site; FL/CDS is the ratio of the means.
The paired test of FL against CDS and against CIIL is the Wilcoxon signed-rank test (two-sided,
``scipy.stats.wilcoxon``, zero differences dropped) on per-case test Dice, one pair per (seed, site, case);
it is not defined (``p`` None) when every difference is zero or there are no pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.errors import ConfigError
from fedseg.fsutil import atomic_write_json
from fedseg.labels import REGIONS
from fedseg.workflow.simulate.plot import plot_seed_curves
from fedseg.workflow.simulate.report import PROTOCOLS, ratio
from fedseg.workflow.simulate.run import simulate

__all__ = ["PAIRED_TEST", "SUMMARY_FILE", "SUMMARY_PLOT", "paired_test", "simulate_repeated", "summarize"]

SUMMARY_FILE = "summary.json"
SUMMARY_PLOT = "summary.png"  # beside each fold's seed-N folders
PAIRED_TEST = ("Wilcoxon signed-rank, two-sided (scipy.stats.wilcoxon, zero differences dropped), "
               "paired per test case and seed")
_PAIRS = (("fl", "cds"), ("fl", "ciil"))


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Return the Wilcoxon signed-rank test of paired ``a`` and ``b``: n pairs, how many differ (the test ranks
    only those: zero differences are dropped), statistic, p, median of a - b."""
    from scipy.stats import wilcoxon

    diff = np.asarray(a, float) - np.asarray(b, float)
    out: dict[str, Any] = {"n": len(diff), "nonzero": int(np.count_nonzero(diff)),
                           "median_difference": float(np.median(diff)) if len(diff) else None,
                           "statistic": None, "p": None}
    if len(diff) and np.any(diff != 0):
        res = wilcoxon(a, b)
        out.update(statistic=float(res.statistic), p=float(res.pvalue))
    return out


def _cases(entry: dict[str, Any], seed: int) -> dict[tuple, list[float]]:
    return {(seed, row[0], row[1]): row[2:] for row in (entry["test"] or {}).get("case_dice", [])}


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return mean ± sd per protocol, mode and region over ``results`` (simulation JSONs), and the paired tests."""
    out: dict[str, Any] = {"seeds": [r["config"]["seed"] for r in results], "paired_test": PAIRED_TEST}
    for protocol in PROTOCOLS:
        entries = [r["protocols"][protocol]["modes"] for r in results]
        modes: dict[str, Any] = {}
        for mode in entries[0]:
            runs = [e[mode] for e in entries]
            modes[mode] = {"rounds": _mean_sd([e["round"] for e in runs]),
                           "steps": _mean_sd([e["steps"] for e in runs]),
                           "test": None if runs[0]["test"] is None else
                           {g: _mean_sd([e["test"]["dice"][g] for e in runs]) for g in REGIONS},
                           "external": {s: {g: _mean_sd([e["external"][s]["dice"][g] for e in runs]) for g in REGIONS}
                                        for s in runs[0]["external"]}}
        summary: dict[str, Any] = {"modes": modes}
        if "fl" in modes and "cds" in modes and modes["cds"]["test"]:
            summary["fl_over_cds"] = ratio(*({g: modes[m]["test"][g]["mean"] for g in REGIONS} for m in ("fl", "cds")))
        if "fl" in modes and "cds" in modes:
            summary["fl_over_cds_external"] = {
                site: ratio(*({g: modes[m]["external"][site][g]["mean"] for g in REGIONS} for m in ("fl", "cds")))
                for site in modes["fl"]["external"] if site in modes["cds"]["external"]}
        tests = {}
        for a, b in _PAIRS:
            if a in modes and b in modes and modes[a]["test"]:
                ca = {k: v for r, e in zip(results, entries) for k, v in _cases(e[a], r["config"]["seed"]).items()}
                cb = {k: v for r, e in zip(results, entries) for k, v in _cases(e[b], r["config"]["seed"]).items()}
                keys = sorted(set(ca) & set(cb))
                tests[f"{a}_vs_{b}"] = {g: paired_test([ca[k][i] for k in keys], [cb[k][i] for k in keys])
                                        for i, g in enumerate(REGIONS)}
        summary["paired"] = tests
        out[protocol] = summary
    return out


def simulate_repeated(dataset_dirs: Sequence[Path], *, out: Path, seeds: int = 1, seed: int = 0,
                      leave_one_out: bool = False, external: Sequence[Path] = (), **kwargs: Any) -> dict[str, Any]:
    """Run :func:`simulate` for seeds ``seed .. seed + seeds - 1`` under ``out/seed-S`` and summarize them.

    With ``leave_one_out`` the whole repetition runs once per site, that site held out of training and
    scored as an external one (``out/without-SITE/seed-S``). Returns and writes ``out/summary.json``, and
    each fold's mean validation curves over seeds (``summary.png`` beside its ``seed-S`` folders).
    """
    from fedseg.workflow.simulate.sites import check_inputs, member_ids

    dirs = [Path(d) for d in dataset_dirs]
    folds: list[tuple[str | None, list[Path], list[Path]]] = [(None, dirs, list(external))]
    check_inputs(dirs, external)
    names = member_ids(dirs, external)  # one name per dataset in every fold, whichever side it is on there
    if leave_one_out:
        if len(dirs) < 2:
            raise ConfigError(f"--leave-one-out needs at least two site datasets (got {len(dirs)}): "
                              "each fold trains on the others")
        folds = [(names[held.resolve()], [d for d in dirs if d != held], [held, *external]) for held in dirs]
        for _, train_dirs, outside in folds:  # every fold's inputs, before the first fold trains for hours
            check_inputs(train_dirs, outside)
    summary: dict[str, Any] = {}
    for held_out, train_dirs, outside in folds:
        base = Path(out) if held_out is None else Path(out) / f"without-{held_out}"
        results = [simulate(train_dirs, out=base / f"seed-{s}", seed=s, external=outside, names=names,
                            **kwargs).to_dict()
                   for s in range(seed, seed + seeds)]
        summary[held_out or "all"] = summarize(results)
        plot_seed_curves([r["curves"] for r in results], base / SUMMARY_PLOT,
                         title="Validation Dice per round, "
                               + (f"mean ± sd over seeds {seed}-{seed + seeds - 1}" if seeds > 1 else f"seed {seed}")
                               + (f", {held_out} held out" if held_out else ""))
    atomic_write_json(Path(out) / SUMMARY_FILE, summary)
    return summary
