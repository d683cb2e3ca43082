"""Shared fixtures: member keys and a small plan, made at run time in a temp folder."""

from __future__ import annotations

import os
from pathlib import Path

# Busy-waiting OpenMP threads make torch CPU ops 10-100x slower on a shared, oversubscribed machine;
# this must be set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
from fedseg.federation.plan import Member, Plan, new_plan

ENROLLED = 1000  # each test site's enrolled case count in the ``plan`` fixture
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    """A folder with key pairs for coordinator, site-a, site-b, site-c and an outsider."""
    d = tmp_path / "keys"
    for name in ("coordinator", "site-a", "site-b", "site-c", "outsider"):
        generate_keypair(name, d)
    return d


@pytest.fixture
def plan(keydir: Path) -> Plan:
    """A three-site plan with default settings; each site enrolled with 1000 cases (quorum: a majority, 2)."""
    return new_plan(
        "test-fed",
        Member("coordinator", load_public_key(keydir / "coordinator.pub")),
        [Member(s, load_public_key(keydir / f"{s}.pub"), ENROLLED) for s in ("site-a", "site-b", "site-c")],
    )


@pytest.fixture
def site_keys(keydir: Path):
    """Private keys by member id."""
    return {n: load_private_key(keydir / f"{n}.key") for n in ("coordinator", "site-a", "site-b", "site-c", "outsider")}


@pytest.fixture(autouse=True)
def _restore_fedseg_logger():
    """Undo what a command did to the ``fedseg`` logger (the store loops add a stderr handler for their process)."""
    import logging

    logger = logging.getLogger("fedseg")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
