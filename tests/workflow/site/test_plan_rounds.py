"""Which site a key is, round by round, along a plan chain (a join, a rotation)."""

from __future__ import annotations

import pytest

from fedseg.errors import PlanError
from fedseg.federation.keys import generate_keypair, load_private_key
from fedseg.workflow.site.received import site_for_round, site_in_chain
from tests._plan_chain import write_root, write_update


def test_site_for_round_follows_the_chain(tmp_path, plan, keydir, site_keys) -> None:
    for name in ("site-d", "site-b2"):
        generate_keypair(name, keydir)
    d, b2 = load_private_key(keydir / "site-d.key"), load_private_key(keydir / "site-b2.key")
    fed = tmp_path / "fed"
    v2 = write_update(fed, write_root(fed, plan), site_keys["coordinator"], from_round=2, add_sites=(("site-d", d.public_key, 3),))
    chain = write_update(fed, v2, site_keys["coordinator"], from_round=3, rotate_sites=(("site-b", b2.public_key),))
    assert site_for_round(chain, d, 2).id == "site-d"
    with pytest.raises(PlanError, match="site 'site-d' may not sign round 1: plan v1"):
        site_for_round(chain, d, 1)
    assert site_for_round(chain, site_keys["site-b"], 2).id == "site-b"
    with pytest.raises(PlanError, match="site 'site-b' may not sign round 3: plan v3"):
        site_for_round(chain, site_keys["site-b"], 3)
    assert site_in_chain(chain, site_keys["site-b"]).id == "site-b"  # the old key still signs rounds 1-2
    with pytest.raises(PlanError, match="is the coordinator's key"):
        site_in_chain(chain, site_keys["coordinator"])
