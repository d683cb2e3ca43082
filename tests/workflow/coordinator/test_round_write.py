"""Writing a round's result: refusals of another history, the ledger lines appended, an idempotent rerun."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np
import pytest

from fedseg.errors import AggregationError, StateError
from fedseg.federation.artifact import Kind, read_artifact
from fedseg.federation.ledger import Ledger
from fedseg.federation.plan import Plan
from fedseg.federation.screening import Reason
from fedseg.federation.strategies import WeightedMean, get_strategy
from fedseg.workflow.coordinator.round_report import AggregateReport, UpdateVerdict
from fedseg.workflow.coordinator.round_write import (
    STATE_FILE,
    _refuse_other_global,
    check_current_global,
    write_round,
)
from fedseg.workflow.coordinator.scratch import TensorFile
from fedseg.workflow.coordinator.server_state import round_group
from tests._aggregate_data import SHAPES, model, write_global

STAMP = datetime(2024, 1, 3, 12, 0, tzinfo=timezone.utc)


def _fake_ledger(*entries: dict[str, Any]) -> Any:
    return SimpleNamespace(entries=lambda: list(entries))


def test_check_current_global_refuses_only_a_contradicting_entry(tmp_path: Path) -> None:
    path = tmp_path / "global.fedseg"
    check_current_global(_fake_ledger(), 0, "a" * 64, path)  # empty ledger: nothing to contradict
    ledger = _fake_ledger({"event": "global-written", "round": 0, "sha256": "a" * 64},
                          {"event": "global-written", "round": 1, "sha256": "b" * 64},
                          {"event": "update-accepted", "round": 2, "sha256": "c" * 64})
    check_current_global(ledger, 0, "a" * 64, path)
    check_current_global(ledger, 2, "d" * 64, path)  # an update line is not a global
    with pytest.raises(StateError, match=r"records global bbbbbbbbbbbb for round 1, this file is dddddddddddd"):
        check_current_global(ledger, 1, "d" * 64, path)


class _Round:
    """Round 0 written, its tensors in scratch, two accepted updates (deltas +1 and +3) and one rejected."""

    def __init__(self, tmp_path: Path, plan: Plan, keys: dict[str, Any]) -> None:
        self.plan, self.keys = plan, keys
        (tmp_path / "g0").mkdir()
        self.current = write_global(plan, keys, tmp_path / "g0" / "global-0.fedseg", model(0.5))
        self.g = TensorFile(tmp_path / "global.bin", self.current.tensors)
        self.outdir = tmp_path / "out"
        self.outdir.mkdir()
        self.out = self.outdir / "global-1.fedseg"
        self.ledger_path = tmp_path / "ledger.jsonl"
        self.ledger = Ledger(self.ledger_path)
        self.config = plan.aggregation
        self.strat = get_strategy(self.config.strategy)

    def report(self) -> AggregateReport:
        verdicts = [UpdateVerdict(path=Path("b.fedseg"), site="site-b", sha256="b" * 64, num_examples=30, norm=3.0,
                                  weight=30.0),
                    UpdateVerdict(path=Path("a.fedseg"), site="site-a", sha256="a" * 64, num_examples=10, norm=1.0,
                                  weight=10.0),
                    UpdateVerdict(path=Path("x.fedseg"), claimed_site="site-c",
                                  reason=Reason("signature", "does not verify"))]
        return AggregateReport(round=1, strategy=self.config.strategy.value, params={}, min_sites=2,
                               verdicts=verdicts, ledger=self.ledger_path, parent=self.current.digest)

    def acc(self, shift: float = 0.0) -> WeightedMean:
        acc = WeightedMean()
        for delta, weight in ((1.0 + shift, 10.0), (3.0, 30.0)):
            acc.add({n: np.full(s, delta) for n, s in SHAPES.items()}, weight)
        return acc

    def write(self, report: AggregateReport, acc: WeightedMean, key: Any = "coordinator") -> None:
        write_round(report, plan=self.plan, key=self.keys.get(key), current=self.current, g=self.g, out=self.out,
                    ledger=self.ledger, config=self.config, strat=self.strat, acc=acc, stamp=STAMP)


@pytest.fixture
def rnd(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> Iterator[_Round]:
    r = _Round(tmp_path, plan, site_keys)
    yield r
    r.g.close()


def test_write_round_signs_the_global_and_appends_the_ledger(rnd: _Round) -> None:
    report = rnd.report()
    rnd.write(report, rnd.acc())
    assert report.status == "written" and report.out == rnd.out and report.server_state is None  # fedavg: no state
    assert report.created_at == "2024-01-03T12:00:00Z"
    art = read_artifact(rnd.out, rnd.plan, kind=Kind.GLOBAL)
    assert art.digest == report.digest and art.round == 1 and art.manifest["parent_sha256"] == rnd.current.digest
    for name in SHAPES:  # 0.5 + (10 * 1 + 30 * 3) / 40
        np.testing.assert_array_equal(art.tensors[name], np.full(SHAPES[name], 3.0, np.float32))
    assert [c["site"] for c in art.manifest["contributors"]] == ["site-a", "site-b"]
    lines = rnd.ledger.entries()
    assert [(e["event"], e.get("site")) for e in lines] == [
        ("update-accepted", "site-b"), ("update-accepted", "site-a"), ("update-rejected", None),
        ("global-written", None)]
    assert lines[0]["num_examples"] == 30 and lines[0]["norm"] == 3.0 and lines[0]["path"] == "b.fedseg"
    assert lines[2]["reason"] == "signature: does not verify" and lines[2]["claimed_site"] == "site-c"
    last = lines[3]
    assert last["sha256"] == report.digest and last["path"] == str(rnd.out) and last["round"] == 1
    assert last["parent_sha256"] == rnd.current.digest
    assert last["contributors"] == [{"site": "site-a", "sha256": "a" * 64, "num_examples": 10},
                                    {"site": "site-b", "sha256": "b" * 64, "num_examples": 30}]
    assert list(rnd.outdir.iterdir()) == [rnd.out]  # the temporary file is gone


def test_rerun_is_idempotent_and_completes_an_interrupted_ledger(rnd: _Round) -> None:
    first = rnd.report()
    rnd.write(first, rnd.acc())
    data = rnd.out.read_bytes()
    again = rnd.report()
    rnd.write(again, rnd.acc())
    assert again.status == "already-aggregated" and again.digest == first.digest
    assert rnd.out.read_bytes() == data and len(rnd.ledger.entries()) == 4

    # a crash after the rename and one update line: the rerun appends only the missing lines
    rnd.ledger_path.unlink()
    rnd.ledger.head_path.unlink()
    rnd.ledger.append("update-accepted", round=1, site="site-b", sha256="b" * 64, path="b.fedseg",
                      num_examples=30, norm=3.0)
    third = rnd.report()
    rnd.write(third, rnd.acc())
    assert third.status == "written"
    assert [e["event"] for e in rnd.ledger.entries()] == ["update-accepted", "update-accepted", "update-rejected",
                                                          "global-written"]
    assert [e.get("site") for e in rnd.ledger.entries()][:2] == ["site-b", "site-a"]


def test_a_different_result_for_a_written_round_is_refused(rnd: _Round) -> None:
    rnd.write(rnd.report(), rnd.acc())
    data = rnd.out.read_bytes()
    with pytest.raises(StateError, match="round 1 was already aggregated"):
        rnd.write(rnd.report(), rnd.acc(shift=1.0))
    assert rnd.out.read_bytes() == data and len(rnd.ledger.entries()) == 4
    assert sorted(p.name for p in rnd.outdir.iterdir()) == ["global-1.fedseg"]


def test_no_key_is_refused(rnd: _Round) -> None:
    with pytest.raises(AggregationError, match="coordinator key is needed"):
        rnd.write(rnd.report(), rnd.acc(), key="nobody")
    assert not rnd.out.exists() and rnd.ledger.entries() == []


def test_refuse_other_global_beside_the_output(rnd: _Round, tmp_path: Path) -> None:
    state = tmp_path / STATE_FILE
    other = write_global(rnd.plan, rnd.keys, rnd.outdir / "other.fedseg", model(9.0), round_=1,
                         parent=rnd.current.digest)
    write_global(rnd.plan, rnd.keys, rnd.outdir / "round2.fedseg", model(8.0), round_=2)  # another round: ignored
    (rnd.outdir / "junk.fedseg").write_bytes(b"not an artifact")  # does not verify: ignored
    _refuse_other_global(rnd.plan, 1, other.digest, rnd.out, state)  # the same global again is fine
    with pytest.raises(StateError, match=r"other\.fedseg is already the round-1 global"):
        _refuse_other_global(rnd.plan, 1, "f" * 64, rnd.out, state)
    _refuse_other_global(rnd.plan, 3, "f" * 64, rnd.out, state)


def test_refuse_other_global_recorded_in_the_server_state(rnd: _Round, tmp_path: Path) -> None:
    state = tmp_path / STATE_FILE
    with h5py.File(state, "w") as f:
        f.create_group(round_group(1)).attrs["global_sha256"] = "e" * 64
        f.create_group(round_group(0))  # no digest recorded: nothing to contradict
    _refuse_other_global(rnd.plan, 1, "e" * 64, rnd.out, state)
    _refuse_other_global(rnd.plan, 0, "f" * 64, rnd.out, state)
    _refuse_other_global(rnd.plan, 2, "f" * 64, rnd.out, state)
    with pytest.raises(StateError, match=r"records global eeeeeeeeeeee for round 1"):
        _refuse_other_global(rnd.plan, 1, "f" * 64, rnd.out, state)
    state.write_bytes(b"not hdf5")
    with pytest.raises(StateError, match="server state file cannot be read"):
        _refuse_other_global(rnd.plan, 1, "f" * 64, rnd.out, state)
