"""``scripts/fl_drift.py`` on a tiny finished simulation: every site's model of the round is scored, and a
tampered update is refused before it is read."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fedseg.workflow.simulate import simulate
from tests._scripts import load_script
from tests._train_data import make_dataset, tiny_plan


def _script():  # noqa: ANN202 - the module of scripts/fl_drift.py
    return load_script("fl_drift")


def test_drift_table_scores_the_received_global_each_site_and_the_average(plan, tmp_path: Path,  # noqa: ANN001
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture) -> None:
    sites = [make_dataset(tmp_path / f"site-{s}", train=1, val=1, shape=(16, 16, 16), seed=i)
             for i, s in enumerate("ab")]
    sim = tmp_path / "sim"
    simulate(sites, out=sim, modes=["fl"], rounds=1, plan=tiny_plan(plan, steps_per_round=1, batch_size=1))
    monkeypatch.setattr(sys, "argv", ["fl_drift.py", str(sim), "1", "--on", str(sites[0]), "--json"])
    assert _script().main() == 0
    numbers = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert list(numbers["dice"]) == ["global r0 (received)", "site-a after round 1", "site-b after round 1",
                                     "global r1 (their average)"]
    for by_site in numbers["dice"].values():
        assert set(by_site) == {"site-a"} and all(0.0 <= v <= 1.0 for v in by_site["site-a"].values())

    update = sim / "fl" / "updates" / "r0001" / "site-b.fedseg"
    data = bytearray(update.read_bytes())
    data[-10] ^= 0xFF  # a flipped payload byte: the signature no longer covers it
    update.write_bytes(bytes(data))
    assert _script().main() == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
