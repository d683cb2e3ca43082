"""What a site checks before training: the received global (typed, expiry) and its own key."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from fedseg.errors import BindingError, PlanError
from fedseg.federation.manifest import GlobalManifest
from fedseg.workflow.initial import global_filename, write_initial_global
from fedseg.workflow.site.received import read_global, site_of_key
from tests._train_data import tiny_plan


def test_read_global_gives_a_typed_manifest_and_checks_expiry(plan, site_keys, tmp_path: Path) -> None:
    p = tiny_plan(plan)
    path = write_initial_global(p, site_keys["coordinator"], tmp_path, seed=1)
    assert path.name == global_filename(0) == "global-r0000.fedseg"
    manifest = read_global(p, path).typed_manifest
    assert isinstance(manifest, GlobalManifest) and manifest.round == 0 and manifest.seed == 1
    assert manifest.expires_at - manifest.created_at == timedelta(days=p.aggregation.global_expiry_days)
    later = manifest.expires_at + timedelta(seconds=1)
    with pytest.raises(BindingError, match="expired at 20"):
        read_global(p, path, now=later)
    read_global(p, path, now=datetime(2000, 1, 1, tzinfo=timezone.utc))


def test_site_of_key(plan, site_keys) -> None:
    assert site_of_key(plan, site_keys["site-b"]).id == "site-b"
    with pytest.raises(PlanError, match="the coordinator's key"):
        site_of_key(plan, site_keys["coordinator"])
    with pytest.raises(PlanError, match="not a member's key"):
        site_of_key(plan, site_keys["outsider"])
