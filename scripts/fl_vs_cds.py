#!/usr/bin/env python
"""The FL-vs-pooled measurement campaign of issue 14 (items 4-5): hours on 2 cores; never run in CI.

On three non-IID site datasets (and one external site) at the demo's model size, each variant of the
federation's settings is simulated under the convergence protocol (``--budget converged``) over several
seeds: FL against CDS (and, for the baseline, IIL and CIIL), selected on validation, reported on test and
on the external site. After each variant one JSON line is printed (and ``OUT/campaign.jsonl`` appended):
the variant, its settings and the summary of :func:`fedseg.workflow.simulate.seeds.summarize`.

Usage: scripts/fl_vs_cds.py SITE_DATA SITE_DATA SITE_DATA --external SITE_DATA --out /tmp/fl-vs-cds
       [--seeds 3] [--patience 5] [--max-rounds 30] [--variants baseline,constant-lr,...] [--plan PLAN]
   or: scripts/fl_vs_cds.py --summarize /tmp/fl-vs-cds [MORE...]   (a table of every variant's finished seeds, e.g.
       of a campaign stopped early, or of several run side by side with other --modes: the seeds under
       VARIANT/seed-S/simulation.json, merged per seed and summarized as the run would)
   or: scripts/fl_vs_cds.py --make-sites /tmp/fl-sites --make-fresh /tmp/fl-fresh --out /tmp/fl-vs-cds ...
       (synthesizes and preprocesses the demo's three hospitals plus an external hospital-d exactly as
       ``fedseg demo`` does: 10 cases each, phantom scale 0.6, 2 mm, classical skull strip; --make-fresh adds
       10 fresh cases of each training site's profile, scored as external sites, to tell FL from CDS on 30
       in-distribution cases instead of the 6 test cases; rerun a finished campaign with it to score its models)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads wreck shared CPUs

#: variant -> (modes, training changes, aggregation changes); each measured on the same sites and seeds. The
#: baseline is a new plan's default (one learning-rate curve over the federation, each site keeping its
#: optimizer state); every other variant changes it in the named way, so ``old-default`` is what plans meant
#: before those two settings existed (the curve restarting every round, a fresh optimizer every round).
#: With ``--plan`` the baseline is that plan's settings as they are, and each variant changes them.
_OLD = {"lr_scope": "round", "keep_optimizer_state": False}
_FEDAVGM = {"strategy": "fedavgm", "server_learning_rate": 1.0, "server_momentum": 0.9}
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "baseline": ("fl,cds,iil,ciil", {}, {}),
    "old-default": ("fl,cds,iil,ciil", _OLD, {}),
    "federation-lr-only": ("fl,cds", {"keep_optimizer_state": False}, {}),
    "keep-optimizer-only": ("fl,cds", {"lr_scope": "round"}, {}),
    "constant-lr": ("fl,cds", {"lr_schedule": "constant"}, {}),
    "fedavgm": ("fl", {}, _FEDAVGM),
    "fedadam": ("fl", {}, {"strategy": "fedadam", "server_learning_rate": 0.01}),
    "fedprox": ("fl", {"fedprox_mu": 0.01}, {}),
    "steps-20": ("fl,cds", {"steps_per_round": 20}, {}),
    # a quarter of the baseline's local steps a round (less client drift per round); run it with 4x
    # --max-rounds and --patience for the same budget in steps
    "steps-10": ("fl", {"steps_per_round": 10}, {}),
    "steps-120": ("fl", {"steps_per_round": 120}, {}),
    "old-default+fedavgm": ("fl", _OLD, _FEDAVGM),
    # FedAvg with a server step of 2 (FedAvgM without momentum): undoes part of the shrinking of the mean of
    # three diverging site deltas, without the momentum that made FedAvgM wander
    "server-lr-2": ("fl", {}, {"strategy": "fedavgm", "server_learning_rate": 2.0, "server_momentum": 0.0}),
    "fedprox-0.1": ("fl", {"fedprox_mu": 0.1}, {}),
    # SCAFFOLD's drift correction, derived at each site from the globals it received (nothing more sent)
    "scaffold": ("fl", {"drift_correction": "scaffold"}, {}),
    # both levers at once: rounds of 10 steps (run with --max-rounds 120 --patience 20) and the correction
    "scaffold-steps-10": ("fl", {"drift_correction": "scaffold", "steps_per_round": 10}, {}),
}


def _plan(base: Any, training: dict[str, Any], aggregation: dict[str, Any]) -> Any:
    from fedseg.configs.aggregation import AggregationConfig
    from fedseg.configs.training import TrainingConfig
    from fedseg.configtools import config_from_mapping, config_to_dict

    t = config_from_mapping(TrainingConfig, {**config_to_dict(base.training), **training}, "training")
    a = config_from_mapping(AggregationConfig, {**config_to_dict(base.aggregation), **aggregation}, "aggregation")
    return base.with_settings(training=t, aggregation=a)


def make_sites(root: Path, cases: int) -> tuple[list[Path], Path]:
    """Synthesize and preprocess the demo's sites plus an external one under ``root`` (kept when present)."""
    import dataclasses

    from fedseg.workflow.demo import PRESETS, SITE_IDS
    from fedseg.workflow.demo_sites import demo_preprocessing, synthesize_site

    s = dataclasses.replace(PRESETS["default"], cases_per_site=cases)
    pre = demo_preprocessing(s)
    dirs = []
    for i, site in enumerate(SITE_IDS[:4]):
        raw, data = root / "raw" / site, root / site / "data"
        if not raw.exists():
            synthesize_site(raw, i, site, s)
        dirs.append(_preprocess(raw, data, site, pre))
    return dirs[:3], dirs[3]


def _preprocess(raw: Path, data: Path, name: str, pre: Any) -> Path:
    """Preprocess ``raw`` into ``data`` (cases already done are skipped) and return ``data``.

    A case that fails stops the campaign; one the QC gate flags is left out of training and scoring, as a site
    would leave it (the demo's own 10 cases a site pass, but at ``--cases 20`` the classical skull strip misses
    a few brains).
    """
    from fedseg.workflow.preprocess.build import available_cores, build_dataset

    report = build_dataset(raw, data, pre, jobs=available_cores())
    if report.failed:
        raise SystemExit(f"{name}: preprocessing failed for {', '.join(o.case_id for o in report.failed)}")
    for o in report.flagged:
        print(f"{name}: {o.case_id} flagged by QC, left out", file=sys.stderr)
    return data


def make_fresh(root: Path, cases: int, seed: int) -> list[Path]:
    """Synthesize and preprocess ``cases`` fresh cases of each training site's own profile under ``root``.

    The demo's sites hold 2 test cases each, too few to tell FL from CDS by a few percent; these datasets
    (``hospital-a-fresh`` ... , drawn with another seed, never trained on) are scored as external sites, so
    every selected model is also scored on ``3 x cases`` in-distribution cases. Kept when present.
    """
    import dataclasses

    from fedseg.labels import Layout
    from fedseg.synth import write_cases
    from fedseg.workflow.demo import PRESETS, SITE_IDS
    from fedseg.workflow.demo_sites import LAYOUTS, demo_preprocessing

    s = dataclasses.replace(PRESETS["default"], cases_per_site=cases)
    pre = demo_preprocessing(s)
    dirs = []
    for i, site in enumerate(SITE_IDS[:3]):
        name = f"{site}-fresh"
        raw, data = root / "raw" / name, root / name / "data"
        if not raw.exists():  # the demo's sites use seed 100 * s.seed + i; these use another stream
            write_cases(raw, cases=cases, profile=i % 3, layout=Layout(LAYOUTS[i % 3]), seed=10_000 + 100 * seed + i,
                        size_scale=s.size_scale, prefix=f"{site[-1].upper()}F")
        dirs.append(_preprocess(raw, data, name, pre))
    return dirs


def table(variant: str, summary: dict[str, Any]) -> list[str]:
    """Return markdown rows: variant, protocol, mode, test Dice mean ± sd per region, external, rounds, FL/CDS."""
    rows = []
    for protocol, part in summary.items():
        if not isinstance(part, dict) or "modes" not in part:
            continue
        for mode, m in part["modes"].items():
            test = " / ".join(f"{m['test'][r]['mean']:.3f} ± {m['test'][r]['sd']:.3f}" for r in ("WT", "TC", "ET"))
            ext = "; ".join(" / ".join(f"{e[r]['mean']:.3f}" for r in ("WT", "TC", "ET"))
                            for e in (m.get("external") or {}).values())
            rows.append(f"| {variant} | {protocol} | {mode} | {test} | {ext or '-'} | "
                        f"{m['rounds']['mean']:.1f} ± {m['rounds']['sd']:.1f} |")
        ratio = part.get("fl_over_cds") or {}
        if ratio:
            rows.append(f"| {variant} | {protocol} | FL/CDS | " + " / ".join(f"{ratio.get(r, float('nan')):.3f}"
                                                                           for r in ("WT", "TC", "ET")) + " | | |")
        for pair, by_region in (part.get("paired") or {}).items():
            cells = " / ".join(f"{by_region[r]['median_difference']:+.3f} (p {by_region[r]['p']:.2g})"
                               if by_region[r]["p"] is not None else "-" for r in ("WT", "TC", "ET"))
            n = next(iter(by_region.values()))["n"]
            rows.append(f"| {variant} | {protocol} | {pair.replace('_', ' ')}: median difference (Wilcoxon p), n={n} "
                        f"| {cells} | | |")
    return rows


def _merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Return one seed's simulations (the same sites and seed, other modes: campaigns run side by side) as one."""
    first = copy.deepcopy(results[0])
    for other in results[1:]:
        if other["config"]["seed"] != first["config"]["seed"] or other["config"]["sites"] != first["config"]["sites"]:
            raise SystemExit("--summarize: the folders hold simulations of other seeds or sites; cannot merge them")
        for protocol, part in other["protocols"].items():
            for mode, entry in part["modes"].items():
                first["protocols"][protocol]["modes"].setdefault(mode, entry)
        for mode, curve in other["curves"].items():
            first["curves"].setdefault(mode, curve)
    return first


def summarize_folder(outs: list[Path], plot_dir: Path | None = None) -> int:
    """Print the summary (JSON, stderr) and a markdown table of each variant's finished seeds under ``outs``.

    Folders of campaigns run side by side (e.g. one with ``--modes fl,cds``, one with ``--modes iil,ciil``)
    are merged per variant and seed, so the paired tests compare every mode on the same test cases. With
    ``plot_dir`` each variant's mean validation curves over its seeds go to ``plot_dir/VARIANT.png``.
    """
    from fedseg.workflow.simulate.plot import plot_seed_curves
    from fedseg.workflow.simulate.seeds import summarize

    print("| variant | protocol | mode | test Dice WT / TC / ET (mean ± sd over seeds) | external WT / TC / ET | rounds |")
    print("|---|---|---|---|---|---|")
    for name, results in _finished(outs).items():
        groups = _mode_groups(results)
        if plot_dir is not None:
            plot_dir.mkdir(parents=True, exist_ok=True)
            path = plot_seed_curves([r["curves"] for r in results], plot_dir / f"{name}.png",
                                    title=f"{name}: validation Dice per round, mean ± sd over seeds")
            print(f"plot: {path}", file=sys.stderr)
        for group, modes in groups:
            summary = summarize([_only(r, modes) for r in group])
            for row in table(f"{name} ({len(group)} seeds)", summary):
                print(row)
            for row in fresh_rows(f"{name} ({len(group)} seeds)", group, modes):
                print(row)
            print(json.dumps({"variant": name, "modes": sorted(modes), "summary": summary}), file=sys.stderr)
    return 0


def _mode_groups(results: list[dict[str, Any]]) -> list[tuple[list[dict[str, Any]], set[str]]]:
    """Return the (seeds, modes) groups to summarize when side-by-side campaigns have not all finished every seed.

    Every seed for the modes all of them have; the seeds that have every mode (so the paired tests compare them
    on the same cases); and each remaining mode over the seeds that have it (campaigns split by seed as well as
    by mode, e.g. IIL seed 0 in one folder and CIIL seed 1 in another), unless a group above already shows it.
    """
    mode_sets = [set(r["protocols"]["equal"]["modes"]) for r in results]
    common, every = set.intersection(*mode_sets), set.union(*mode_sets)
    groups = [(results, common)] if common else []
    if common != every:
        full = [r for r, m in zip(results, mode_sets) if m == every]
        if full:
            groups.append((full, every))
        for mode in sorted(every - common):
            having = [r for r, m in zip(results, mode_sets) if mode in m]
            if not (full and len(having) == len(full)):
                groups.append((having, {mode}))
    return groups


def _finished(outs: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Return each variant's finished seeds under ``outs`` (side-by-side folders merged per seed), by name."""
    # every folder with a finished seed, including variants of earlier versions of this script
    variants = sorted({p.name for out in outs for p in out.iterdir() if p.is_dir() and any(p.glob("seed-*/simulation.json"))})
    found: dict[str, list[dict[str, Any]]] = {}
    for name in variants:
        by_seed: dict[str, list[dict[str, Any]]] = {}
        for out in outs:
            for f in sorted((out / name).glob("seed-*/simulation.json")):
                by_seed.setdefault(f.parent.name, []).append(json.loads(f.read_text("utf-8")))
        found[name] = [_merged(rs) for _, rs in sorted(by_seed.items())]
    return found


def _external_sites(results: list[dict[str, Any]], mode: str) -> set[str]:
    """Return the external sites ``mode``'s selected models were scored on (converged protocol), over seeds."""
    return {site for r in results for site in (r["protocols"]["converged"]["modes"].get(mode) or {}).get("external") or {}}


def _case_dice(results: list[dict[str, Any]], mode: str, cases: str) -> dict[tuple, list[float]]:
    """Return (seed, site, case) -> WT/TC/ET Dice of ``mode``'s selected model (converged protocol) on ``cases``:
    ``"test"`` (the test split), ``"fresh"`` (the ``*-fresh`` external sites) or the name of one external site."""
    out: dict[tuple, list[float]] = {}
    for r in results:
        entry = r["protocols"]["converged"]["modes"].get(mode)
        if entry is None:
            continue
        external = entry.get("external") or {}
        parts = ([entry.get("test") or {}] if cases == "test"
                 else [s for site, s in external.items() if site.endswith("-fresh")] if cases == "fresh"
                 else [external.get(cases) or {}])
        for part in parts:
            for row in part.get("case_dice", []):
                out[(r["config"]["seed"], row[0], row[1])] = row[2:]
    return out


def compare_rows(outs: list[Path], a: str, b: str) -> list[str]:
    """Return markdown rows comparing ``VARIANT/MODE`` ``a`` with ``b`` (e.g. ``steps-20/fl`` against
    ``baseline/cds``) on the cases both scored under the converged protocol: their means, a / b and the paired
    Wilcoxon test, on the test split, on the fresh cases and on each other external site (e.g. hospital-d).
    Variants are told apart by their folder names."""
    from fedseg.labels import REGIONS
    from fedseg.workflow.simulate.seeds import paired_test

    found = _finished(outs)
    picked = []
    for spec in (a, b):
        name, _, mode = spec.partition("/")
        if name not in found or not mode:
            raise SystemExit(f"--compare {spec}: expected VARIANT/MODE with a variant of {', '.join(found)}")
        picked.append((found[name], mode))
    others = sorted({site for results, mode in picked for site in _external_sites(results, mode)
                     if not site.endswith("-fresh")})
    rows = []
    for label, cases in (("test", "test"), ("fresh cases", "fresh"), *((site, site) for site in others)):
        ca, cb = (_case_dice(results, mode, cases) for results, mode in picked)
        keys = sorted(set(ca) & set(cb))
        if not keys:
            continue
        ma, mb = ([float(np.mean([c[k][i] for k in keys])) for i in range(len(REGIONS))] for c in (ca, cb))
        tests = [paired_test([ca[k][i] for k in keys], [cb[k][i] for k in keys]) for i in range(len(REGIONS))]
        seeds = sorted({k[0] for k in keys})
        rows.append(f"| {a} vs {b} | {label} (n={len(keys)}, seeds {', '.join(map(str, seeds))}) | "
                    + " / ".join(f"{x:.3f}" for x in ma) + " | " + " / ".join(f"{x:.3f}" for x in mb) + " | "
                    + " / ".join(f"{x / y:.3f}" for x, y in zip(ma, mb)) + " | "
                    + " / ".join(f"{t['median_difference']:+.3f} (p {t['p']:.2g})" if t["p"] is not None else "-"
                                 for t in tests) + " |")
    return rows


def fresh_rows(variant: str, results: list[dict[str, Any]], modes: set[str]) -> list[str]:
    """Return markdown rows: each mode's Dice pooled over every case of the ``*-fresh`` sites and seeds, FL/CDS
    and the paired Wilcoxon test of FL against CDS and CIIL on those cases (``--make-fresh``)."""
    from fedseg.labels import REGIONS
    from fedseg.workflow.simulate.seeds import paired_test

    rows = []
    for protocol in ("equal", "converged"):
        cases: dict[str, dict[tuple, list[float]]] = {}
        for r in results:
            for mode, entry in r["protocols"][protocol]["modes"].items():
                for site, scored in (entry.get("external") or {}).items():
                    if mode in modes and site.endswith("-fresh"):
                        for row in scored.get("case_dice", []):
                            cases.setdefault(mode, {})[(r["config"]["seed"], row[0], row[1])] = row[2:]
        if not cases:
            continue
        means = {m: [float(np.mean([v[i] for v in c.values()])) for i in range(len(REGIONS))] for m, c in cases.items()}
        n = len(next(iter(cases.values())))
        for mode, mean in means.items():
            rows.append(f"| {variant} | {protocol}, fresh cases (n={n}) | {mode} | "
                        + " / ".join(f"{v:.3f}" for v in mean) + " | | |")
        if "fl" in means and "cds" in means:
            rows.append(f"| {variant} | {protocol}, fresh cases | FL/CDS | "
                        + " / ".join(f"{a / b:.3f}" for a, b in zip(means["fl"], means["cds"])) + " | | |")
        for other in ("cds", "ciil"):
            if "fl" in cases and other in cases:
                keys = sorted(set(cases["fl"]) & set(cases[other]))
                tests = [paired_test([cases["fl"][k][i] for k in keys], [cases[other][k][i] for k in keys])
                         for i in range(len(REGIONS))]
                rows.append(f"| {variant} | {protocol}, fresh cases | fl vs {other}: median difference (Wilcoxon p), "
                            f"n={len(keys)} | " + " / ".join(f"{t['median_difference']:+.3f} (p {t['p']:.2g})"
                                                               if t["p"] is not None else "-" for t in tests) + " | | |")
    return rows


def _only(result: dict[str, Any], modes: set[str]) -> dict[str, Any]:
    """Return ``result`` with only ``modes`` in each protocol."""
    out = copy.deepcopy(result)
    for part in out["protocols"].values():
        part["modes"] = {m: e for m, e in part["modes"].items() if m in modes}
    return out


def main() -> int:
    from fedseg.workflow.simulate.protocol import DEFAULT_PATIENCE  # fedseg simulate's own default

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sites", nargs="*", type=Path)
    parser.add_argument("--make-sites", type=Path, help="synthesize the demo's sites and an external one here")
    parser.add_argument("--cases", type=int, default=10, help="cases per site with --make-sites")
    parser.add_argument("--external", nargs="*", type=Path, default=[])
    parser.add_argument("--make-fresh", type=Path, help="synthesize --fresh-cases new cases of each training site's "
                        "profile here and score every model on them too (as external sites)")
    parser.add_argument("--fresh-cases", type=int, default=10, help="cases per site with --make-fresh")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--summarize", type=Path, nargs="+", help="print the table of campaign folders' finished seeds")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="with --summarize: compare VARIANT/MODE A "
                        "with B (e.g. steps-20/fl baseline/cds) case by case, on the test split and the fresh cases")
    parser.add_argument("--plot", type=Path, help="with --summarize: write each variant's mean validation curves "
                        "over seeds to PLOT/VARIANT.png")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one (another process can "
                        "run later seeds into another --out; --summarize merges the folders)")
    parser.add_argument("--patience", type=int, default=DEFAULT_PATIENCE)
    parser.add_argument("--max-rounds", type=int, default=30)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--modes", help="run only these modes of each variant (comma-separated; default: the variant's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plan", type=Path, help="model/training/aggregation template (default: sized to the CPU)")
    args = parser.parse_args()
    if args.summarize is not None and args.compare:
        print("| compared | cases | a: WT / TC / ET | b: WT / TC / ET | a / b | a − b: median (Wilcoxon p) |")
        print("|---|---|---|---|---|---|")
        for row in compare_rows(args.summarize, *args.compare):
            print(row)
        return 0
    if args.summarize is not None:
        return summarize_folder(args.summarize, args.plot)
    if args.plot is not None or args.compare:
        parser.error("--plot and --compare go with --summarize")
    if args.out is None:
        parser.error("--out is required")

    import torch

    torch.set_num_threads(args.threads)
    if args.make_sites is not None:
        args.sites, external = make_sites(args.make_sites, args.cases)
        args.external = [*args.external, external]
    if args.make_fresh is not None:
        args.external = [*args.external, *make_fresh(args.make_fresh, args.fresh_cases, seed=1)]
    if len(args.sites) < 2:
        parser.error("give at least two site datasets, or --make-sites DIR")
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.simulate import simulate
    from fedseg.workflow.simulate.seeds import simulate_repeated

    def say(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    if args.plan is not None:
        base = load_plan(args.plan)
    else:
        probe = args.out / "probe"  # a 1-round, 1-step run that writes the device-sized (demo) plan
        simulate(args.sites, out=probe, modes=["cds"], rounds=1, steps=1, device="cpu", say=say)
        from fedseg.workflow.demo import PRESETS

        probed = load_plan(probe / "fl" / "plan.toml")  # its 1 step a round is the probe's, not the demo's
        base = _plan(probed, {"steps_per_round": PRESETS["default"].steps_per_round}, {})
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    unknown_modes = [m for m in (args.modes or "").split(",") if m and m not in ("fl", "cds", "iil", "ciil", "local")]
    if unknown or unknown_modes:
        parser.error(f"unknown variant(s) {unknown} or mode(s) {unknown_modes}; variants: {', '.join(VARIANTS)}")
    for name in args.variants.split(","):
        modes, training, aggregation = VARIANTS[name]
        if args.modes:
            modes = ",".join(m for m in args.modes.split(",") if m in modes.split(","))
            if not modes:
                say(f"{name}: none of --modes {args.modes} is among its modes; skipped")
                continue
        start = time.perf_counter()
        summary = simulate_repeated(args.sites, out=args.out / name, seeds=args.seeds, seed=args.first_seed,
                                    external=args.external,
                                    modes=modes.split(","), budget="converged", patience=args.patience,
                                    max_rounds=args.max_rounds, plan=_plan(base, training, aggregation),
                                    device="cpu", say=say)
        line = {"variant": name, "training": training, "aggregation": aggregation,
                "seconds": round(time.perf_counter() - start), "summary": summary}
        with open(args.out / "campaign.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
