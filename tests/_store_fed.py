"""A tiny 3-site federation for the store-loop tests: keys, plan, datasets, and a checker of the result."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fedseg.federation.keys import generate_keypair, load_public_key
from fedseg.federation.plan import Member, new_plan, write_plan
from tests._train_data import make_dataset, tiny_plan

SITES = ("site-a", "site-b", "site-c")


def make_federation(root: Path, *, rounds: int = 2, deadline: float = 0.0, test: int = 0,
                    min_cases: int | None = None, sites: tuple[str, ...] = SITES, **aggregation: object) -> Path:
    """Write keys/, plan.toml and data/<site>/ under ``root``; return the plan path.

    ``test`` cases per site, ``min_cases`` (training.metrics_min_cases) and ``aggregation`` settings
    (early_stop_patience=...) are for the federated validation tests.
    """
    keys = root / "keys"
    for name in ("coordinator", *sites):
        generate_keypair(name, keys)
    plan = new_plan("store-fed", Member("coordinator", load_public_key(keys / "coordinator.pub")),
                    [Member(s, load_public_key(keys / f"{s}.pub"), 2) for s in sites], rounds=rounds)
    plan = tiny_plan(plan, steps_per_round=2, **({} if min_cases is None else {"metrics_min_cases": min_cases}))
    plan = plan.with_settings(aggregation=replace(plan.aggregation, outlier_z=0.0, direction_z=0.0,
                                                  round_deadline=deadline, **aggregation))
    write_plan(plan, root / "plan.toml")
    for i, site in enumerate(sites):
        make_dataset(root / "data" / site, train=1, val=1, test=test, shape=(16, 16, 16), seed=i)
    return root / "plan.toml"


def check_finished(plan_path: Path, coordinator_work: Path, store_url: str) -> str:
    """Verify every global on the store, its match with the coordinator's ledger; return the final payload digest."""
    import tempfile

    from fedseg.federation.artifact import Kind, read_artifact
    from fedseg.federation.ledger import Ledger
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.store import open_store
    from fedseg.workflow.store.layout import global_key, update_key

    plan = load_plan(plan_path)
    store = open_store(store_url)
    ledger = Ledger(coordinator_work / "ledger.jsonl")
    ledger.verify()
    written = {e["round"]: e["sha256"] for e in ledger.entries() if e["event"] == "global-written"}
    assert sorted(written) == list(range(1, plan.rounds + 1)), written
    digest = ""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for r in range(plan.rounds + 1):
            assert store.get(global_key(r), tmp / "g.fedseg")
            art = read_artifact(tmp / "g.fedseg", plan, kind=Kind.GLOBAL)
            assert art.round == r
            if r:
                assert art.digest == written[r]
                sites = sorted(s.id for s in plan.sites)
                assert sorted(c["site"] for c in art.manifest["contributors"]) == sites
                for site in sites:
                    assert store.get(update_key(r, site), tmp / "u.fedseg")
                    read_artifact(tmp / "u.fedseg", plan, kind=Kind.UPDATE)
            digest = art.digest
    return digest


def run_federation(root: Path, url: str) -> None:
    """Run the coordinator and the three sites as threads of this process until the federation ends."""
    import threading

    import torch

    from fedseg.federation.keys import load_private_key
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.store import open_store
    from fedseg.workflow.store.coordinator_loop import run_coordinator
    from fedseg.workflow.store.site_loop import run_site

    torch.set_num_threads(1)
    plan = load_plan(root / "plan.toml")
    keys = root / "keys"
    errors: list[BaseException] = []

    def guard(fn, **kw):  # noqa: ANN001, ANN003, ANN202
        def run() -> None:
            try:
                fn(plan, store=open_store(url), poll=0.05, max_idle_polls=2000, **kw)
            except BaseException as exc:  # surfaced by the test below
                errors.append(exc)
        return threading.Thread(target=run, daemon=True)

    threads = [guard(run_coordinator, key=load_private_key(keys / "coordinator.key"), work=root / "coord")]
    threads += [guard(run_site, key=load_private_key(keys / f"{s}.key"), data=root / "data" / s,
                      work=root / s, device="cpu") for s in (m.id for m in plan.sites)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


def end_site(root: Path, name: str, monkeypatch: object, *, dice: float = 0.5, cases: int = 2) -> object:
    """Return a stand-in for ``name``'s site loop at the end (fedseg.workflow.store.site_end), without training.

    Its "scoring" of any global gives ``dice`` per region over ``cases`` cases; its globals are never
    downloaded (the path it names exists).
    """
    from types import SimpleNamespace

    from fedseg.federation.keys import load_private_key
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.store import open_store, site_end

    def score_global(site: object, path: Path, *, round_: int, sha256: str, split: str) -> dict:
        return {"global_round": round_, "global_sha256": sha256, "split": split, "cases": cases,
                "dice": {"WT": dice, "TC": dice, "ET": dice}}

    monkeypatch.setattr(site_end, "score_global", score_global)  # type: ignore[attr-defined]
    return SimpleNamespace(plan=load_plan(root / "plan.toml"), key=load_private_key(root / "keys" / f"{name}.key"),
                           store=open_store(str(root / "store")), work=root / name, site=name, max_global_bytes=1,
                           global_path=lambda r: root / "plan.toml")
