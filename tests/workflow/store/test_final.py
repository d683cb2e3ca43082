"""The end of a store-driven federation: early stop on a plateau, the signed result, the sites' test scores."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.errors import SignatureError
from fedseg.federation.document import DocKind, read_document, write_document
from fedseg.federation.keys import load_private_key
from fedseg.federation.ledger import Ledger
from fedseg.federation.plan import load_plan
from fedseg.workflow.store import open_store
from fedseg.workflow.store.coordinator_loop import run_coordinator
from fedseg.workflow.store.final import public_score, read_scores
from fedseg.workflow.store.layout import FINAL_TEST, RESULT_KEY, global_key, score_key
from fedseg.workflow.store.overview import store_overview
from tests._store_fed import SITES, make_federation, run_federation


def _events(root: Path, event: str) -> list[dict]:
    return [e for e in Ledger(root / "coord" / "ledger.jsonl").entries() if e["event"] == event]


def test_early_stop_names_the_best_round_and_sites_score_it_on_test(tmp_path: Path) -> None:
    # min_delta 0.99: no global can improve on the first, so with patience 1 the plateau is certain once
    # global 1 is scored (when round 2 is aggregated): the result names global 0 and global 2 is never published
    make_federation(tmp_path, rounds=4, test=1, min_cases=1, early_stop_patience=1, early_stop_min_delta=0.99)
    plan = load_plan(tmp_path / "plan.toml")
    url = str(tmp_path / "store")
    run_federation(tmp_path, url)
    store = open_store(url)
    result = read_document(tmp_path / "store" / RESULT_KEY, plan, DocKind.RESULT)
    assert (result["reason"], result["round"], result["last_round"]) == ("plateau", 0, 1)
    assert [p["round"] for p in result["curve"]] == [0, 1] and result["best"]["round"] == 0
    assert store.exists(global_key(1)) and not store.exists(global_key(2))
    written = {e["round"]: e["sha256"] for e in _events(tmp_path, "global-written")}
    assert sorted(written) == [1, 2]  # round 2 was aggregated (it scored global 1) but not published
    assert result["sha256"] == result["curve"][0]["sha256"]  # the payload digest of global 0
    ended = _events(tmp_path, "federation-ended")
    assert len(ended) == 1 and ended[0]["round"] == 0
    for site in SITES:
        local = json.loads((tmp_path / site / "final" / "test-score.json").read_text())
        assert (local["global_round"], local["global_sha256"], local["split"], local["cases"]) == \
            (0, result["sha256"], "test", 1)
        assert set(local["dice"]) == {"WT", "TC", "ET"}
        signed = read_document(tmp_path / "store" / score_key(FINAL_TEST, site), plan, DocKind.SCORE)
        assert signed["signer"] == site and signed["dice"] == local["dice"]
    overview = store_overview(plan, store)
    assert [p["round"] for p in overview.curve] == [0, 1] and overview.best["round"] == 0
    assert overview.result["round"] == 0 and sorted(overview.test["answered"]) == list(SITES)
    assert overview.test["pooled"]["cases"] == 3
    shown = CliRunner().invoke(app, ["status", "--plan", str(tmp_path / "plan.toml"), "--store", url],
                               env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "federated validation" in shown.stdout and "★ best" in shown.stdout
    assert "result (plateau, last global 1): the global of round 0" in shown.stdout
    assert "3 of 3 site(s) reported" in shown.stdout
    as_json = json.loads(CliRunner().invoke(app, ["status", "--plan", str(tmp_path / "plan.toml"), "--store", url,
                                                  "--json"]).stdout)
    assert as_json["result"]["round"] == 0 and [p["round"] for p in as_json["curve"]] == [0, 1]
    # restarts after the end change nothing: the same result, no new ledger line, the site's kept score
    lines = len(Ledger(tmp_path / "coord" / "ledger.jsonl").entries())
    again = run_coordinator(plan, key=load_private_key(tmp_path / "keys" / "coordinator.key"), store=store,
                            work=tmp_path / "coord", poll=0.0, max_idle_polls=0)
    assert again.result == result and len(Ledger(tmp_path / "coord" / "ledger.jsonl").entries()) == lines
    site = CliRunner().invoke(app, ["site", "run", "--plan", str(tmp_path / "plan.toml"), "--data",
                                    str(tmp_path / "data" / "site-a"), "--key", str(tmp_path / "keys" / "site-a.key"),
                                    "--store", url, "--work", str(tmp_path / "site-a"), "--once", "--json"])
    assert site.exit_code == 0, site.output
    body = json.loads(site.stdout)
    assert body["finished"] and body["test_score"]["global_round"] == 0


def test_scores_of_another_global_or_split_are_left_out(tmp_path: Path) -> None:
    make_federation(tmp_path, rounds=1)
    plan = load_plan(tmp_path / "plan.toml")
    store = open_store(str(tmp_path / "store"))
    keys = {s: load_private_key(tmp_path / "keys" / f"{s}.key") for s in SITES}
    bodies = {"site-a": {"global_round": 1, "global_sha256": "d" * 64, "split": "test", "cases": 4,
                         "dice": {"WT": 0.9, "TC": 0.6, "ET": 0.3}},
              "site-b": {"global_round": 1, "global_sha256": "d" * 64, "split": "test", "cases": 2, "dice": None},
              "site-c": {"global_round": 0, "global_sha256": "d" * 64, "split": "test", "cases": 4,
                         "dice": {"WT": 0.1, "TC": 0.1, "ET": 0.1}}}  # another global
    for site, body in bodies.items():
        write_document(tmp_path / f"{site}.json", body, kind=DocKind.SCORE, key=keys[site], plan=plan)
        store.put(score_key(FINAL_TEST, site), tmp_path / f"{site}.json")
    store.put(score_key(FINAL_TEST, "site-x"), tmp_path / "site-a.json")  # not a member: ignored
    (tmp_path / "tmp").mkdir()
    scores, answered = read_scores(plan, store, FINAL_TEST, tmp_path / "tmp", round_=1, sha256="d" * 64,
                                   split="test")
    assert answered == ["site-a", "site-b"] and [s.site for s in scores] == ["site-a"]
    store.put(score_key(FINAL_TEST, "site-b"), tmp_path / "site-a.json")  # site-a's document under site-b's name
    scores, answered = read_scores(plan, store, FINAL_TEST, tmp_path / "tmp", round_=1, sha256="d" * 64,
                                   split="test")
    assert answered == ["site-a"]
    assert public_score(bodies["site-a"], 5)["dice"] is None and public_score(bodies["site-a"], 4)["dice"]


def test_last_round_is_scored_by_the_sites_and_a_forged_result_is_refused(tmp_path: Path) -> None:
    make_federation(tmp_path, rounds=2, test=1, min_cases=1)
    plan = load_plan(tmp_path / "plan.toml")
    url = str(tmp_path / "store")
    run_federation(tmp_path, url)
    result = read_document(tmp_path / "store" / RESULT_KEY, plan, DocKind.RESULT)
    assert result["reason"] == "last-round" and result["last_round"] == 2
    assert [p["round"] for p in result["curve"]] == [0, 1, 2]  # the last global too, from final/validation/
    assert all(len(p["sites"]) == 3 and p["cases"] == 3 for p in result["curve"])
    means = [p["mean"] for p in result["curve"]]
    best = 0
    for i, m in enumerate(means):  # the selection rule, by hand
        best = i if m > means[best] + 1e-4 else best
    assert result["round"] == best and result["sha256"] == result["curve"][best]["sha256"]
    assert len(_events(tmp_path, "global-validated")) == 1
    report = json.loads((tmp_path / "store" / "rounds" / "r0002" / "report.json").read_text())
    assert [p["round"] for p in report["curve"]] == [0, 1] and report["validation"]["round"] == 1
    # a result signed by a site is refused
    forged = tmp_path / "forged.json"
    body = json.loads((tmp_path / "store" / RESULT_KEY).read_text())
    body["key_id"] = load_plan(tmp_path / "plan.toml").site("site-a").key_id
    forged.write_text(json.dumps(body))
    with pytest.raises(SignatureError):
        read_document(forged, plan, DocKind.RESULT)


def test_a_restart_after_a_last_round_end_keeps_that_end(tmp_path: Path) -> None:
    # min_delta 0.99 and patience 1: the curve [0, 1, 2] has plateaued, but the last round is no early stop
    make_federation(tmp_path, rounds=2, min_cases=1, early_stop_patience=1, early_stop_min_delta=0.99)
    plan = load_plan(tmp_path / "plan.toml")
    url = str(tmp_path / "store")
    run_federation(tmp_path, url)
    store = open_store(url)
    key = load_private_key(tmp_path / "keys" / "coordinator.key")
    result = read_document(tmp_path / "store" / RESULT_KEY, plan, DocKind.RESULT)
    assert (result["reason"], result["last_round"]) == ("last-round", 2)
    again = run_coordinator(plan, key=key, store=store, work=tmp_path / "coord", poll=0.0, max_idle_polls=0)
    assert again.final_round == 2 and again.result == result
    # a kill after the last global's point was recorded, before the result was written
    ledger = tmp_path / "coord" / "ledger.jsonl"
    lines = ledger.read_bytes().split(b"\n")[:-1]
    assert json.loads(lines[-1])["event"] == "federation-ended"
    ledger.write_bytes(b"".join(line + b"\n" for line in lines[:-1]))
    head = {"seq": len(lines) - 2, "sha256": hashlib.sha256(lines[-2]).hexdigest()}
    (tmp_path / "coord" / "ledger.jsonl.head").write_text(json.dumps(head))
    (tmp_path / "coord" / "result.json").unlink()
    (tmp_path / "store" / RESULT_KEY).unlink()
    again = run_coordinator(plan, key=key, store=store, work=tmp_path / "coord", poll=0.0, max_idle_polls=0)
    assert again.final_round == 2 and again.result == result
