"""`fedseg plan update` and `fedseg plan check` through CliRunner: sign versions, show the chain, refuse bad ones."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.federation.keys import generate_keypair
from fedseg.federation.plan import load_plan
from tests._plan_chain import write_root


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def test_update_then_check_shows_the_chain(tmp_path, plan, keydir) -> None:
    fed = tmp_path / "fed"
    write_root(fed, plan)
    generate_keypair("site-d", keydir)
    generate_keypair("site-b2", keydir)
    coord = keydir / "coordinator.key"
    added = run("plan", "update", "--plan", fed / "plan.toml", "--key", coord, "--add-site",
                f"site-d={keydir / 'site-d.pub'}:7", "--from-round", 2, "--out", fed)
    assert added.exit_code == 0, added.output
    assert "wrote plan v2" in added.stdout and "+site site-d" in added.stdout
    rotated = run("plan", "update", "--plan", fed, "--key", coord, "--rotate-site", f"site-b={keydir / 'site-b2.pub'}",
                  "--set", "training.steps_per_round=9", "--rounds", 20, "--from-round", 3,
                  "--out", fed / "plan-v0003.toml")
    assert rotated.exit_code == 0, rotated.output
    shown = run("plan", "check", fed / "plan.toml")
    assert shown.exit_code == 0, shown.output
    for text in ("plan chain", "+site site-d", "site site-b key rotated", "rounds 10 -> 20", "plan v3 sha256"):
        assert text in shown.stdout, text
    data = json.loads(run("plan", "check", fed, "--json").stdout)
    assert [r["version"] for r in data["chain"]] == [1, 2, 3]
    assert [r["from_round"] for r in data["chain"]] == [0, 2, 3]
    assert data["chain"][2]["previous_sha256"] == data["chain"][1]["sha256"]
    assert data["training"]["steps_per_round"] == 9
    explicit = run("plan", "check", fed / "plan.toml", fed / "plan-v0002.toml", "--json")
    assert json.loads(explicit.stdout)["version"] == 2
    assert load_plan(fed).version == 3


def test_update_refusals(tmp_path, plan, keydir, site_keys) -> None:
    fed = tmp_path / "fed"
    write_root(fed, plan)
    wrong_key = run("plan", "update", "--plan", fed, "--key", keydir / "site-a.key", "--rounds", 12,
                    "--from-round", 2, "--out", fed)
    assert wrong_key.exit_code == 1 and "is not the coordinator key of plan v1" in wrong_key.output
    bad_name = run("plan", "update", "--plan", fed, "--key", keydir / "coordinator.key", "--rounds", 12,
                   "--from-round", 2, "--out", fed / "next.toml")
    assert bad_name.exit_code == 1 and "must be named plan-v0002.toml" in bad_name.output
    revoked = run("plan", "update", "--plan", fed, "--key", keydir / "coordinator.key", "--revoke",
                  site_keys["site-c"].key_id, "--from-round", 2, "--out", fed)
    assert revoked.exit_code == 0, revoked.output
    again = run("plan", "update", "--plan", fed, "--key", keydir / "coordinator.key", "--rounds", 12,
                "--from-round", 2, "--out", fed / "plan-v0002.toml")
    assert again.exit_code == 1  # v3 is next; plan-v0002.toml is the wrong name
    (fed / "plan-v0002.toml").write_text((fed / "plan-v0002.toml").read_text().replace("from_round = 2", "from_round = 1"))
    broken = run("plan", "check", fed)
    assert broken.exit_code == 1 and "does not verify" in broken.output
    assert run("plan", "update", "--help").exit_code == 0 and "Example:" in run("plan", "update", "--help").stdout


def test_update_revokes_two_keys_at_once(tmp_path, plan, keydir, site_keys) -> None:
    fed = tmp_path / "fed"
    write_root(fed, plan)
    generate_keypair("site-c2", keydir)
    both = run("plan", "update", "--plan", fed, "--key", keydir / "coordinator.key", "--revoke",
               site_keys["site-b"].key_id, "--revoke", site_keys["site-c"].key_id, "--rotate-site",
               f"site-c={keydir / 'site-c2.pub'}", "--from-round", 2, "--out", fed)
    assert both.exit_code == 0, both.output
    newest = load_plan(fed)
    assert [s.id for s in newest.sites] == ["site-a", "site-c"]
    assert {r.member for r in newest.link.revoked} == {"site-b", "site-c"}
