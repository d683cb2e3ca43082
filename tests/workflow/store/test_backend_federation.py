"""A whole 3-site federation run by the loops alone over SFTP and over S3, each a real server on localhost.

The folder backend's run is in test_loops.py; here the same federation goes through the network
backends, and every global, every update and the coordinator's ledger must verify at the end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedseg.federation.plan import load_plan
from fedseg.workflow.store import open_store
from fedseg.workflow.store.overview import store_overview
from tests._store_fed import check_finished, make_federation, run_federation


@pytest.mark.parametrize("backend", ["sftp", "s3"])
def test_federation_runs_by_itself_over_a_network_store(backend: str, store_servers: dict, tmp_path: Path) -> None:
    make_federation(tmp_path, rounds=2)
    url = (f"sftp://127.0.0.1:{store_servers['sftp_port']}/federation" if backend == "sftp"
           else "s3://fedseg-test/federation")
    run_federation(tmp_path, url)
    digest = check_finished(tmp_path / "plan.toml", tmp_path / "coord", url)
    assert len(digest) == 64
    overview = store_overview(load_plan(tmp_path / "plan.toml"), open_store(url))
    assert [r.published for r in overview.rounds] == [True, True, True]
    assert all(cell == "accepted" for r in overview.rounds[1:] for cell in r.sites.values())
    assert overview.errors == {}
