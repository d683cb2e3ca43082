"""Summaries over seeds: mean ± sd worked out by hand, the paired Wilcoxon test against scipy's own numbers."""

from __future__ import annotations

import pytest
from scipy.stats import wilcoxon

from fedseg.workflow.simulate.seeds import paired_test, summarize
from tests._scripts import load_script


def _entry(round_: int, dice: float, cases: list[float]) -> dict:
    return {"round": round_, "steps": 6 * round_, "test": {"dice": {"WT": dice, "TC": dice / 2, "ET": 0.0},
                                                          "case_dice": [["s", f"c{i}", d, d / 2, 0.0]
                                                                        for i, d in enumerate(cases)]},
            "external": {"x": {"dice": {"WT": dice, "TC": dice, "ET": dice}}}}


def _result(seed: int, fl: float, cds: float, fl_cases: list[float], cds_cases: list[float]) -> dict:
    modes = {"fl": _entry(2, fl, fl_cases), "cds": _entry(1, cds, cds_cases), "ciil": _entry(1, cds, cds_cases)}
    return {"config": {"seed": seed}, "protocols": {"equal": {"modes": modes}, "converged": {"modes": modes}}}


def test_mean_sd_ratio_and_pairs() -> None:
    results = [_result(0, 0.6, 0.8, [0.5, 0.7], [0.9, 0.6]), _result(1, 0.8, 0.8, [0.8, 0.9], [0.7, 0.95])]
    s = summarize(results)["converged"]
    assert s["modes"]["fl"]["test"]["WT"] == pytest.approx({"mean": 0.7, "sd": 0.1414213562})
    assert s["modes"]["cds"]["test"]["WT"] == {"mean": 0.8, "sd": 0.0}
    assert s["modes"]["fl"]["rounds"] == {"mean": 2.0, "sd": 0.0}
    assert s["modes"]["fl"]["external"]["x"]["ET"]["mean"] == pytest.approx(0.7)
    assert s["fl_over_cds"]["WT"] == pytest.approx(0.875)
    assert s["fl_over_cds"]["ET"] is None  # CDS scores 0: undefined
    wt = s["paired"]["fl_vs_cds"]["WT"]
    expected = wilcoxon([0.5, 0.7, 0.8, 0.9], [0.9, 0.6, 0.7, 0.95])
    assert wt["n"] == 4 and wt["p"] == pytest.approx(expected.pvalue)
    assert wt["median_difference"] == pytest.approx(0.025)  # differences -0.4, 0.1, 0.1, -0.05
    assert wt["nonzero"] == 4
    assert s["fl_over_cds_external"]["x"]["TC"] == pytest.approx(0.875)  # external 0.6, 0.8 against 0.8, 0.8
    assert s["paired"]["fl_vs_ciil"]["ET"]["p"] is None  # every difference zero: not defined


def test_single_seed_sd_is_zero_and_empty_pairs_are_undefined() -> None:
    assert paired_test([], []) == {"n": 0, "nonzero": 0, "median_difference": None, "statistic": None, "p": None}
    assert paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])["nonzero"] == 0
    s = summarize([_result(0, 0.6, 0.8, [0.5], [0.9])])["equal"]
    assert s["modes"]["fl"]["test"]["TC"] == {"mean": 0.3, "sd": 0.0}


def _campaign_script():  # noqa: ANN202 - the module of scripts/fl_vs_cds.py
    return load_script("fl_vs_cds")


def test_every_campaign_variant_makes_a_valid_plan(plan) -> None:  # noqa: ANN001 - the conftest fixture
    """``scripts/fl_vs_cds.py``'s variants name real settings with legal values (a typo would cost hours)."""
    module = _campaign_script()
    for name, (modes, training, aggregation) in module.VARIANTS.items():
        made = module._plan(plan, training, aggregation)
        assert set(modes.split(",")) <= {"fl", "cds", "iil", "ciil"}, name
        for key, value in training.items():
            assert getattr(made.training, key) == value, (name, key)
        for key, value in aggregation.items():
            assert getattr(made.aggregation, key) == value, (name, key)


def test_the_summary_table_shows_steps_and_external_fl_over_cds() -> None:
    from rich.console import Console

    from fedseg.cli._simtable import render_summary

    results = [_result(0, 0.6, 0.8, [0.5, 0.7], [0.9, 0.6]), _result(1, 0.8, 0.8, [0.8, 0.9], [0.7, 0.95])]
    console = Console(record=True, width=250)
    render_summary(console, {"all": summarize(results)})
    text = console.export_text()
    fl_cds = next(line for line in text.splitlines() if "FL / CDS" in line)
    assert fl_cds.count("0.875") == 5  # WT, TC on test; WT, TC, ET on the external site
    assert "steps" in text and "(4 differ)" in text


def test_campaign_pools_the_fresh_cases_over_sites_and_seeds() -> None:
    """``--make-fresh`` sites: each mode's Dice over every fresh case of every seed, FL/CDS, the paired test."""
    def result(seed: int, fl: list[float], cds: list[float]) -> dict:
        def entry(values: list[float]) -> dict:
            rows = [[site, f"{site}-{i}", v, v, v] for i, v in enumerate(values) for site in ("a-fresh",)]
            return {"external": {"a-fresh": {"case_dice": rows}, "hospital-d": {"case_dice": [["d", "x", 0, 0, 0]]}}}
        modes = {"fl": entry(fl), "cds": entry(cds)}
        return {"config": {"seed": seed}, "protocols": {"equal": {"modes": modes}, "converged": {"modes": modes}}}

    rows = _campaign_script().fresh_rows("v", [result(0, [0.6, 0.8], [0.8, 0.8]), result(1, [0.7, 0.5], [0.9, 1.0])],
                                         {"fl", "cds"})
    converged = [r for r in rows if "| converged" in r]
    assert "| fl | 0.650 / 0.650 / 0.650 |" in converged[0] and "(n=4)" in converged[0]  # hospital-d left out
    assert "| cds | 0.875 / 0.875 / 0.875 |" in converged[1]
    assert "0.743 / 0.743 / 0.743" in converged[2]  # 0.65 / 0.875
    expected = wilcoxon([0.6, 0.8, 0.7, 0.5], [0.8, 0.8, 0.9, 1.0])
    assert f"-0.200 (p {expected.pvalue:.2g})" in converged[3] and "n=4" in converged[3]


def test_campaign_merges_side_by_side_folders_of_one_seed_with_their_curves() -> None:
    """``--summarize`` over a fl,cds and a ciil folder: one result per seed, every mode's entry and curve
    (``--plot`` draws the curves); folders of another seed are refused."""
    module = _campaign_script()
    a = {**_result(0, 0.6, 0.8, [0.5], [0.9]), "curves": {"fl": [1], "cds": [2]}}
    a["config"]["sites"] = {"a": "/a"}
    a["protocols"] = {p: {"modes": {m: e for m, e in part["modes"].items() if m != "ciil"}}
                      for p, part in a["protocols"].items()}  # the fl,cds folder
    b = {"config": {"seed": 0, "sites": {"a": "/a"}}, "curves": {"ciil": [3]},
         "protocols": {p: {"modes": {"ciil": _entry(1, 0.7, [0.7])}} for p in ("equal", "converged")}}
    merged = module._merged([a, b])
    assert merged["curves"] == {"fl": [1], "cds": [2], "ciil": [3]} and "ciil" not in a["curves"]
    assert merged["protocols"]["converged"]["modes"]["ciil"]["test"]["dice"]["WT"] == 0.7
    with pytest.raises(SystemExit, match="other seeds or sites"):
        module._merged([a, {**b, "config": {"seed": 1, "sites": {"a": "/a"}}}])


def test_campaign_summarizes_folders_split_by_seed_and_mode() -> None:
    """``--summarize`` over IIL seed 0, CIIL seed 1 and CDS+CIIL+IIL seed 2 (no mode in every seed): each mode over
    the seeds that have it, the seed with every mode for the paired tests, nothing empty and nothing twice."""
    def result(seed: int, modes: set[str]) -> dict:
        entries = {m: _entry(1, 0.5, [0.5]) for m in modes}
        return {"config": {"seed": seed}, "protocols": {p: {"modes": entries} for p in ("equal", "converged")}}

    def groups(results: list[dict]) -> list[tuple[list[int], set[str]]]:
        return [([r["config"]["seed"] for r in group], modes) for group, modes in _campaign_script()._mode_groups(results)]

    results = [result(0, {"iil"}), result(1, {"ciil"}), result(2, {"cds", "ciil", "iil"})]
    assert groups(results) == [([2], {"cds", "ciil", "iil"}), ([1, 2], {"ciil"}), ([0, 2], {"iil"})]
    # campaigns split by mode only: the common modes over every seed, the extra mode's seed with every mode
    results = [result(0, {"fl", "cds", "ciil"}), result(1, {"fl", "cds"})]
    assert groups(results) == [([0, 1], {"fl", "cds"}), ([0], {"fl", "cds", "ciil"})]


def test_campaign_compares_two_variants_case_by_case(tmp_path) -> None:  # noqa: ANN001
    """``--compare steps-20/fl baseline/cds``: both variants' cases of the same seeds, their means, a / b and the
    paired test, on the test split, on the fresh cases and on hospital-d (an external site, not fresh) apart."""
    import json

    def write(variant: str, mode: str, test: list[float], fresh: list[float], d: float) -> None:
        entry = {"test": {"case_dice": [["a", f"t{i}", v, v, v] for i, v in enumerate(test)]},
                 "external": {"a-fresh": {"case_dice": [["a-fresh", f"f{i}", v, v, v] for i, v in enumerate(fresh)]},
                              "hospital-d": {"case_dice": [["d", "x", d, d, 1.0]]}}}
        folder = tmp_path / variant / "seed-0"
        folder.mkdir(parents=True)
        (folder / "simulation.json").write_text(json.dumps({
            "config": {"seed": 0, "sites": {"a": "/a"}}, "curves": {mode: []},
            "protocols": {p: {"modes": {mode: entry}} for p in ("equal", "converged")}}))

    write("steps-20", "fl", [0.8, 0.6], [0.9, 0.7, 0.5], 0.9)
    write("baseline", "cds", [0.4, 0.6], [0.8, 0.8, 0.6], 0.6)
    test, fresh, external = _campaign_script().compare_rows([tmp_path], "steps-20/fl", "baseline/cds")
    assert "| hospital-d (n=1, seeds 0) | 0.900 / 0.900 / 1.000 | 0.600 / 0.600 / 1.000 | 1.500 / 1.500 / 1.000 |" in external
    assert "| test (n=2, seeds 0) | 0.700 / 0.700 / 0.700 | 0.500 / 0.500 / 0.500 | 1.400 / 1.400 / 1.400 |" in test
    expected = wilcoxon([0.9, 0.7, 0.5], [0.8, 0.8, 0.6])
    assert "| fresh cases (n=3, seeds 0) | 0.700 / 0.700 / 0.700 | 0.733 / 0.733 / 0.733 |" in fresh
    assert f"-0.100 (p {expected.pvalue:.2g})" in fresh
    with pytest.raises(SystemExit, match="expected VARIANT/MODE"):
        _campaign_script().compare_rows([tmp_path], "nothing/fl", "baseline/cds")
