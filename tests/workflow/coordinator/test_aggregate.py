"""The coordinator's round: screening verdicts, streaming aggregation, idempotent and crash-safe writes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedseg.configs.aggregation import Strategy
from fedseg.errors import StateError
from fedseg.federation.artifact import Kind, read_artifact
from fedseg.federation.ledger import Ledger
from fedseg.federation.plan import Plan
from fedseg.federation.strategies import coordinate_median, fedadam_step
from fedseg.workflow.coordinator import aggregate as agg
from fedseg.workflow.coordinator.aggregate import QuorumError, aggregate_round
from tests._aggregate_data import (
    model,
    weighted_mean,
    write_global,
    write_nan_update,
    write_update,
)

SITES = ("site-a", "site-b", "site-c")
COUNTS = {"site-a": 10, "site-b": 30, "site-c": 20}


@pytest.fixture
def round0(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    g = write_global(plan, site_keys, tmp_path / "fed" / "global-r0000.fedseg", model(0.0, rng))
    models = {s: model(0.0, np.random.default_rng(i + 1)) for i, s in enumerate(SITES)}
    paths = {s: write_update(plan, site_keys, tmp_path / f"{s}.fedseg", s, g.digest, models[s],
                             num_examples=COUNTS[s], created_at=f"2024-01-0{i + 2}T10:00:00Z")
             for i, s in enumerate(SITES)}
    return {"global": g, "models": models, "paths": paths, "out": tmp_path / "fed" / "global-r0001.fedseg",
            "dir": tmp_path}


def run(plan: Plan, site_keys: dict[str, Any], r0: dict[str, Any], paths: list[Path], **kw: Any) -> agg.AggregateReport:
    return aggregate_round(plan=plan, global_path=r0["global"].path, key=site_keys["coordinator"],
                           update_paths=paths, out=r0["out"], **kw)


def verdicts(report: agg.AggregateReport) -> dict[str, str | None]:
    return {v.path.stem: (v.reason.rule if v.reason else None) for v in report.verdicts}


def test_fedavg_round_writes_signed_global_and_ledger(plan: Plan, site_keys: dict[str, Any], round0: dict[str, Any]) -> None:
    report = run(plan, site_keys, round0, list(round0["paths"].values()))
    assert report.status == "written" and len(report.accepted) == 3
    out = read_artifact(round0["out"], plan, kind=Kind.GLOBAL)
    expected = weighted_mean([round0["models"][s] for s in SITES], [COUNTS[s] for s in SITES])
    for name, value in expected.items():  # FedAvg == NumPy weighted mean to float32 rounding
        np.testing.assert_allclose(out.tensors[name], value, rtol=0, atol=1e-7)
    m = out.manifest
    assert m["round"] == 1 and m["parent_sha256"] == round0["global"].digest and m["weights"] == "full"
    assert [c["site"] for c in m["contributors"]] == list(SITES)
    assert [c["num_examples"] for c in m["contributors"]] == [10, 30, 20]
    assert m["contributors"][0]["sha256"] == read_artifact(round0["paths"]["site-a"], plan).digest
    assert m["strategy"] == {"name": "fedavg", "params": {"clip_norm": 0.0}}
    assert m["created_at"] == "2024-01-04T10:00:00Z" and m["expires_at"] == "2024-02-03T10:00:00Z"
    events = [(e["event"], e.get("site")) for e in Ledger(round0["out"].parent / "ledger.jsonl").entries()]
    assert events == [("update-accepted", s) for s in SITES] + [("global-written", None)]
    assert not list(round0["out"].parent.glob(".*"))  # no temp files or scratch left behind


BAD_CASES = ["unknown-key", "wrong-round", "wrong-parent", "nan", "wrong-shape", "zero-examples", "absurd-examples",
             "wrong-model", "norm-outlier"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_each_rule_rejects_its_case_while_others_aggregate(case: str, plan: Plan, site_keys: dict[str, Any],
                                                          round0: dict[str, Any], tmp_path: Path) -> None:
    g = round0["global"].digest
    bad = tmp_path / "bad.fedseg"
    tensors = model(0.0, np.random.default_rng(9))
    expected_rule = {"unknown-key": "signature", "wrong-round": "round", "wrong-parent": "parent", "nan": "payload",
                     "wrong-shape": "payload", "zero-examples": "examples", "absurd-examples": "examples",
                     "wrong-model": "model", "norm-outlier": "norm-outlier"}[case]
    message = {"unknown-key": "unknown key", "nan": "NaN", "wrong-shape": "shape", "zero-examples": "found 0",
               "absurd-examples": "1..1100 (the site's 1000 enrolled", "wrong-round": "expected round 1", "wrong-parent": "expected parent",
               "wrong-model": "differs", "norm-outlier": "robust z-score"}[case]
    if case == "unknown-key":
        write_update(plan, site_keys, bad, "site-c", g, tensors, key_name="outsider")
    elif case == "wrong-round":
        write_update(plan, site_keys, bad, "site-c", g, tensors, round_=2)
    elif case == "wrong-parent":
        write_update(plan, site_keys, bad, "site-c", g, tensors, parent_sha256="0" * 64)
    elif case == "nan":
        write_nan_update(plan, site_keys, bad, "site-c", g, tensors)
    elif case == "wrong-shape":
        tensors["enc.weight"] = np.zeros((4, 4), np.float32)
        write_update(plan, site_keys, bad, "site-c", g, tensors)
    elif case == "zero-examples":
        write_update(plan, site_keys, bad, "site-c", g, tensors, num_examples=0)
    elif case == "absurd-examples":
        write_update(plan, site_keys, bad, "site-c", g, tensors, num_examples=10**9)
    elif case == "wrong-model":
        write_update(plan, site_keys, bad, "site-c", g, tensors, model={"widths": [8, 16]})
    else:
        write_update(plan, site_keys, bad, "site-c", g, model(1e3, np.random.default_rng(9)))
    paths = [round0["paths"]["site-a"], round0["paths"]["site-b"], bad]
    report = run(plan, site_keys, round0, paths)
    got = verdicts(report)
    assert got == {"site-a": None, "site-b": None, "bad": expected_rule}
    rejected = next(v for v in report.verdicts if not v.accepted)
    assert message in rejected.reason.detail
    out = read_artifact(round0["out"], plan, kind=Kind.GLOBAL)
    expected = weighted_mean([round0["models"]["site-a"], round0["models"]["site-b"]], [10, 30])
    np.testing.assert_allclose(out.tensors["enc.weight"], expected["enc.weight"], atol=1e-7)
    rejected_lines = [e for e in Ledger(round0["out"].parent / "ledger.jsonl").entries() if e["event"] == "update-rejected"]
    assert len(rejected_lines) == 1 and expected_rule in rejected_lines[0]["reason"]


def test_duplicate_site_rejects_both_and_same_file_counts_once(plan: Plan, site_keys: dict[str, Any],
                                                               round0: dict[str, Any], tmp_path: Path) -> None:
    second = write_update(plan, site_keys, tmp_path / "a2.fedseg", "site-a", round0["global"].digest, model(0.5),
                          num_examples=5)
    p = round0["paths"]
    report = run(plan, site_keys, round0, [p["site-a"], second, p["site-b"], p["site-c"], p["site-b"]])
    rules = [(v.path.stem, v.reason.rule if v.reason else "") for v in report.verdicts]
    assert sorted(rules) == [("a2", "duplicate"), ("site-a", "duplicate"), ("site-b", ""), ("site-b", "duplicate"),
                             ("site-c", "")]
    out = read_artifact(round0["out"], plan)
    assert [c["site"] for c in out.manifest["contributors"]] == ["site-b", "site-c"]
    expected = weighted_mean([round0["models"]["site-b"], round0["models"]["site-c"]], [30, 20])
    np.testing.assert_allclose(out.tensors["dec.weight"], expected["dec.weight"], atol=1e-7)


def test_update_already_in_ledger_for_the_round_is_a_duplicate(plan: Plan, site_keys: dict[str, Any],
                                                               round0: dict[str, Any]) -> None:
    Ledger(round0["out"].parent / "ledger.jsonl").append("update-accepted", round=1, site="site-a", sha256="f" * 64)
    report = run(plan, site_keys, round0, list(round0["paths"].values()))
    assert verdicts(report)["site-a"] == "duplicate"
    assert "ledger already holds" in next(v for v in report.verdicts if v.site == "site-a").reason.detail


def test_below_quorum_writes_nothing(plan: Plan, site_keys: dict[str, Any], round0: dict[str, Any], tmp_path: Path) -> None:
    bad = write_update(plan, site_keys, tmp_path / "bad.fedseg", "site-c", round0["global"].digest, model(), round_=5)
    with pytest.raises(QuorumError, match="2 acceptable update.*quorum is 3") as info:
        run(plan, site_keys, round0, [round0["paths"]["site-a"], round0["paths"]["site-b"], bad], min_sites=3)
    assert info.value.report.status == "below-quorum"
    assert sorted(p.name for p in round0["out"].parent.iterdir()) == ["global-r0000.fedseg"]  # no file, no ledger


def test_dry_run_screens_only(plan: Plan, site_keys: dict[str, Any], round0: dict[str, Any]) -> None:
    report = run(plan, site_keys, round0, list(round0["paths"].values()), dry_run=True)
    assert report.status == "dry-run" and len(report.accepted) == 3 and all(v.norm for v in report.verdicts)
    assert sorted(p.name for p in round0["out"].parent.iterdir()) == ["global-r0000.fedseg"]


def test_rerun_is_byte_identical_and_does_not_duplicate_ledger(plan: Plan, site_keys: dict[str, Any],
                                                               round0: dict[str, Any]) -> None:
    paths = list(round0["paths"].values())
    first = run(plan, site_keys, round0, paths)
    data = round0["out"].read_bytes()
    ledger = round0["out"].parent / "ledger.jsonl"
    lines = ledger.read_bytes()
    second = run(plan, site_keys, round0, paths[::-1])  # argument order does not matter either
    assert second.status == "already-aggregated" and second.digest == first.digest
    assert round0["out"].read_bytes() == data and ledger.read_bytes() == lines


def test_different_result_for_an_aggregated_round_is_refused(plan: Plan, site_keys: dict[str, Any],
                                                             round0: dict[str, Any]) -> None:
    p = round0["paths"]
    run(plan, site_keys, round0, [p["site-a"], p["site-b"]])
    data = round0["out"].read_bytes()
    with pytest.raises(StateError, match="already aggregated"):
        run(plan, site_keys, round0, [p["site-a"], p["site-b"], p["site-c"]])
    assert round0["out"].read_bytes() == data


def test_crash_before_rename_leaves_no_global_and_no_ledger(plan: Plan, site_keys: dict[str, Any],
                                                            round0: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = agg.os.replace

    def boom(src: Any, dst: Any) -> None:  # the final rename of the next global fails (power cut)
        if Path(dst) == round0["out"]:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(agg.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        run(plan, site_keys, round0, list(round0["paths"].values()))
    assert sorted(p.name for p in round0["out"].parent.iterdir()) == ["global-r0000.fedseg"]


def test_crash_during_ledger_append_is_completed_by_a_rerun(plan: Plan, site_keys: dict[str, Any],
                                                            round0: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = Ledger.append

    def flaky(self: Ledger, event: str, **fields: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, event, **fields)

    monkeypatch.setattr(Ledger, "append", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(plan, site_keys, round0, list(round0["paths"].values()))
    data = round0["out"].read_bytes()  # the global is complete; one ledger line made it
    monkeypatch.setattr(Ledger, "append", real)
    report = run(plan, site_keys, round0, list(round0["paths"].values()))
    assert report.status == "written" and round0["out"].read_bytes() == data
    events = [e["event"] for e in Ledger(round0["out"].parent / "ledger.jsonl").entries()]
    assert events == ["update-accepted"] * 3 + ["global-written"]


def test_fedadam_keeps_server_state_between_rounds(plan: Plan, site_keys: dict[str, Any], round0: dict[str, Any],
                                                   tmp_path: Path) -> None:
    cfg = replace(plan.aggregation, strategy=Strategy.FEDADAM, server_learning_rate=0.1)
    plan = plan.with_settings(aggregation=cfg)
    g0 = write_global(plan, site_keys, tmp_path / "fed" / "global-r0000.fedseg", model(0.0))
    p1 = [write_update(plan, site_keys, tmp_path / f"{s}-1.fedseg", s, g0.digest, model(1.0), num_examples=5)
          for s in SITES]
    out1 = tmp_path / "fed" / "global-r0001.fedseg"
    aggregate_round(plan=plan, global_path=g0.path, key=site_keys["coordinator"], update_paths=p1, out=out1)
    g1 = read_artifact(out1, plan)
    x1, s1 = fedadam_step(np.zeros(4, np.float32), np.ones(4), None, learning_rate=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    np.testing.assert_array_equal(g1.tensors["enc.bias"], x1)
    p2 = [write_update(plan, site_keys, tmp_path / f"{s}-2.fedseg", s, g1.digest, model(2.0), round_=2,
                       weights="full") for s in SITES]
    out2 = tmp_path / "fed" / "global-r0002.fedseg"
    report = aggregate_round(plan=plan, global_path=out1, key=site_keys["coordinator"], update_paths=p2, out=out2)
    x2, _ = fedadam_step(x1, 2.0 - x1.astype(np.float64), s1, learning_rate=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    np.testing.assert_allclose(read_artifact(out2, plan).tensors["enc.bias"], x2, rtol=1e-6)
    import h5py

    with h5py.File(report.server_state, "r") as f:
        assert sorted(f) == ["round-000001", "round-000002"]
        assert f["round-000002"].attrs["global_sha256"] == report.digest
        assert sorted(f["round-000002"]) == ["m", "v"]


def test_median_resists_a_byzantine_site_and_handles_delta_and_float16(plan: Plan, site_keys: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    cfg = replace(plan.aggregation, strategy=Strategy.MEDIAN, outlier_z=0.0)
    plan = plan.with_settings(aggregation=cfg)
    g = write_global(plan, site_keys, tmp_path / "g0.fedseg", model(1.0))
    honest_a, honest_b = model(1.0, np.random.default_rng(1)), model(1.0, np.random.default_rng(2))
    delta_b = {k: (v.astype(np.float64) - 1.0).astype(np.float16) for k, v in honest_b.items()}
    paths = [write_update(plan, site_keys, tmp_path / "a.fedseg", "site-a", g.digest, honest_a),
             write_update(plan, site_keys, tmp_path / "b.fedseg", "site-b", g.digest, delta_b, weights="delta"),
             write_update(plan, site_keys, tmp_path / "c.fedseg", "site-c", g.digest,
                          {k: v * np.float32(1e6) for k, v in honest_a.items()})]
    out = tmp_path / "g1.fedseg"
    aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=paths, out=out)
    got = read_artifact(out, plan).tensors
    b_full = {k: (1.0 + v.astype(np.float64)).astype(np.float32) for k, v in delta_b.items()}
    for name in got:
        lo = np.minimum(honest_a[name], b_full[name])
        hi = np.maximum(honest_a[name], b_full[name])
        assert np.all(got[name] >= lo - 1e-6) and np.all(got[name] <= hi + 1e-6)
        # median of 3 = the middle one, i.e. the larger honest value here (the attacker is far above)
        np.testing.assert_allclose(got[name], coordinate_median([honest_a[name], b_full[name], 1e6 * honest_a[name]]),
                                   atol=1e-6)


def test_clipping_and_timestamp_option(plan: Plan, site_keys: dict[str, Any], tmp_path: Path) -> None:
    cfg = replace(plan.aggregation, clip_norm=1.0, outlier_z=0.0, min_sites=1)
    plan = plan.with_settings(aggregation=cfg)
    g = write_global(plan, site_keys, tmp_path / "g0.fedseg", model(0.0))
    big = {k: np.zeros(s, np.float32) for k, s in ((k, v.shape) for k, v in model().items())}
    big["enc.bias"][:] = [3.0, 4.0, 0.0, 0.0]  # norm 5 -> scaled by 0.2
    p = write_update(plan, site_keys, tmp_path / "a.fedseg", "site-a", g.digest, big)
    stamp = datetime(2030, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    report = aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=[p],
                             out=tmp_path / "g1.fedseg", timestamp=stamp)
    out = read_artifact(tmp_path / "g1.fedseg", plan)
    np.testing.assert_allclose(out.tensors["enc.bias"], [0.6, 0.8, 0.0, 0.0], rtol=1e-6)
    assert out.manifest["created_at"] == "2030-05-06T07:08:09Z" == report.created_at
    assert out.manifest["strategy"]["params"] == {"clip_norm": 1.0}
    assert report.verdicts[0].norm == pytest.approx(5.0)


def test_outlier_found_after_streaming_rebuilds_the_sum(plan: Plan, site_keys: dict[str, Any], round0: dict[str, Any],
                                                        tmp_path: Path) -> None:
    # site-a's outlier is read first (sorted by site) and added optimistically, then rejected: the sum is rebuilt.
    bad = write_update(plan, site_keys, tmp_path / "aa.fedseg", "site-a", round0["global"].digest, model(50.0))
    p = round0["paths"]
    report = run(plan, site_keys, round0, [bad, p["site-b"], p["site-c"]])
    assert verdicts(report) == {"aa": "norm-outlier", "site-b": None, "site-c": None}
    out = read_artifact(round0["out"], plan)
    expected = weighted_mean([round0["models"]["site-b"], round0["models"]["site-c"]], [30, 20])
    np.testing.assert_allclose(out.tensors["enc.weight"], expected["enc.weight"], atol=1e-7)
    assert json.dumps(report.to_dict())  # the report is plain JSON data


def test_one_read_buffer_serves_every_file_of_a_round(plan: Plan, site_keys: dict[str, Any],
                                                      round0: dict[str, Any]) -> None:
    # aggregate_round reads all payloads into one buffer: a read lands in it, a later read overwrites it,
    # and a payload that does not fit gets its own buffer.
    a, b = round0["paths"]["site-a"], round0["paths"]["site-b"]
    size = read_artifact(a, plan).manifest["payload_bytes"]
    buffer = np.empty(size, dtype=np.uint8)
    first = read_artifact(a, plan, kind=Kind.UPDATE, buffer=buffer)
    assert np.shares_memory(first.tensors["enc.weight"], buffer)
    np.testing.assert_array_equal(first.tensors["enc.weight"], round0["models"]["site-a"]["enc.weight"])
    second = read_artifact(b, plan, kind=Kind.UPDATE, buffer=buffer)
    np.testing.assert_array_equal(second.tensors["enc.weight"], round0["models"]["site-b"]["enc.weight"])
    small = np.empty(size - 1, dtype=np.uint8)
    third = read_artifact(a, plan, kind=Kind.UPDATE, buffer=small)
    assert not np.shares_memory(third.tensors["enc.weight"], small)
    np.testing.assert_array_equal(third.tensors["enc.weight"], round0["models"]["site-a"]["enc.weight"])


def test_rejected_update_read_between_accepted_ones_does_not_leak_into_the_sum(
        plan: Plan, site_keys: dict[str, Any], round0: dict[str, Any], tmp_path: Path) -> None:
    # site-b's NaN update is read into the shared buffer after site-a's and before site-c's.
    bad = write_nan_update(plan, site_keys, tmp_path / "site-b-bad.fedseg", "site-b", round0["global"].digest,
                           model(5.0))
    p = round0["paths"]
    report = run(plan, site_keys, round0, [p["site-a"], bad, p["site-c"]])
    assert verdicts(report) == {"site-a": None, "site-b-bad": "payload", "site-c": None}
    out = read_artifact(round0["out"], plan)
    expected = weighted_mean([round0["models"]["site-a"], round0["models"]["site-c"]], [10, 20])
    for name, value in expected.items():
        np.testing.assert_allclose(out.tensors[name], value, rtol=0, atol=1e-7)
