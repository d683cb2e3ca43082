"""A killed aggregate's temp files are removed by the next run, under the folder's lock, and nothing else is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedseg.errors import LockError
from fedseg.federation.plan import Plan
from fedseg.fsutil import folder_lock
from fedseg.workflow.coordinator.aggregate import aggregate_round
from fedseg.workflow.coordinator.round_lock import LOCK_NAME
from tests._aggregate_data import model, write_global, write_update

SITES = ("site-a", "site-b", "site-c")
LEFTOVERS = (".global-r0001.fedseg.1a2b3c4d.tmp", "..global-r0001.fedseg.1a2b3c4d.tmp.k3j_x9q2.tmp",
             ".server-state.h5.abc_1234.tmp", ".ledger.jsonl.head.q1w2e3r4.tmp", ".ledger.jsonl.zz99yy88.tmp")
# Not aggregate's: a site's update being written into the shared folder, someone's notes, another tool's temp.
OTHERS = (".site-a-r0001.fedseg.p0o9i8u7.tmp", "notes.txt", ".plan.toml.a1b2c3d4.tmp", "global-r0001.fedseg.bak")


@pytest.fixture
def fed(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> dict[str, Any]:
    g = write_global(plan, site_keys, tmp_path / "fed" / "global-r0000.fedseg", model(0.0, np.random.default_rng(0)))
    paths = [write_update(plan, site_keys, tmp_path / f"{s}.fedseg", s, g.digest,
                          model(0.0, np.random.default_rng(i + 1)), num_examples=10,
                          created_at=f"2024-01-0{i + 2}T10:00:00Z") for i, s in enumerate(SITES)]
    return {"global": g.path, "paths": paths, "out": tmp_path / "fed" / "global-r0001.fedseg"}


def _plant(folder: Path) -> None:
    scratch = folder / ".fedseg-scratch-k2j3h4g5"
    scratch.mkdir()
    (scratch / "global.bin").write_bytes(b"\0" * 64)
    for name in LEFTOVERS + OTHERS:
        (folder / name).write_bytes(b"left")


def _aggregate(plan: Plan, site_keys: dict[str, Any], fed: dict[str, Any]) -> Any:
    return aggregate_round(plan=plan, global_path=fed["global"], key=site_keys["coordinator"],
                           update_paths=fed["paths"], out=fed["out"])


def test_a_rerun_removes_leftovers_of_killed_runs_and_nothing_else(plan: Plan, site_keys: dict[str, Any],
                                                                   fed: dict[str, Any]) -> None:
    folder = fed["out"].parent
    _plant(folder)
    report = _aggregate(plan, site_keys, fed)
    assert report.status == "written"
    names = {p.name for p in folder.iterdir()}
    assert names == {"global-r0000.fedseg", "global-r0001.fedseg", "ledger.jsonl", "ledger.jsonl.head", *OTHERS}
    assert not any(n.startswith(".fedseg-scratch-") or n == LOCK_NAME for n in names)


def test_a_custom_ledger_folder_is_locked_and_cleaned_too(plan: Plan, site_keys: dict[str, Any],
                                                          fed: dict[str, Any], tmp_path: Path) -> None:
    books = tmp_path / "books"
    books.mkdir()
    (books / ".ledger.jsonl.head.q1w2e3r4.tmp").write_bytes(b"left")
    (books / ".global-r0001.fedseg.1a2b3c4d.tmp").write_bytes(b"not in the output folder: not ours here")
    aggregate_round(plan=plan, global_path=fed["global"], key=site_keys["coordinator"], update_paths=fed["paths"],
                    out=fed["out"], ledger_path=books / "ledger.jsonl")
    assert {p.name for p in books.iterdir()} == {"ledger.jsonl", "ledger.jsonl.head",
                                                 ".global-r0001.fedseg.1a2b3c4d.tmp"}


def test_a_live_holder_keeps_its_files_and_the_second_run_writes_nothing(plan: Plan, site_keys: dict[str, Any],
                                                                         fed: dict[str, Any]) -> None:
    folder = fed["out"].parent
    _plant(folder)
    before = sorted(p.name for p in folder.iterdir())
    with folder_lock(folder, LOCK_NAME, holder="aggregate"), pytest.raises(LockError, match="another aggregate"):
        _aggregate(plan, site_keys, fed)
    assert sorted(p.name for p in folder.iterdir()) == before  # the live run's temp files are all still there
    assert not fed["out"].exists()


def test_the_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    with folder_lock(tmp_path, "x.lock", holder="test"):
        with pytest.raises(LockError, match=r"x\.lock"), folder_lock(tmp_path, "x.lock", holder="test"):
            pass
        assert (tmp_path / "x.lock").exists()
    assert not (tmp_path / "x.lock").exists()
    with folder_lock(tmp_path, "x.lock", holder="test"):  # free again
        pass
