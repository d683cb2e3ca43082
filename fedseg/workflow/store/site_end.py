"""A site's end of a store-driven run: score the last global on validation, then the result on test.

See :mod:`fedseg.workflow.store.final` for the protocol. Both scores go through the scorer of validation
(:func:`fedseg.train.validate.validate`, which scores with :func:`fedseg.inference.score.score_model`) over
the split's labelled cases, after the global is verified (signature, plan binding, tensor spec) and matched
to the round and digest it must have. Work folder::

    final/validation-rNNNN.json, .uploaded       the signed validation score of the last global (round NNNN)
    final/test-score.json                        the site-level test score of the result's global (kept here)
    final/test.json, test.uploaded               the same, signed, as it may leave the site

Every step is repeatable: a kill before a marker is written scores and uploads again (the same numbers).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fedseg.errors import BindingError
from fedseg.federation.document import DocKind, write_document
from fedseg.federation.plan import Plan
from fedseg.fsutil import atomic_write_json
from fedseg.workflow.store.final import public_score
from fedseg.workflow.store.layout import FINAL_TEST, global_key, score_key, validation_folder

__all__ = ["is_site_at", "report_last_validation", "score_result"]

log = logging.getLogger(__name__)


def score_global(site: Any, path: Path, *, round_: int, sha256: str, split: str) -> dict[str, Any]:
    """Verify the global at ``path`` as (``round_``, ``sha256``) and return its site-level score on ``split``."""
    from fedseg.data.dataset import load_dataset
    from fedseg.device import resolve_device
    from fedseg.federation.artifact import Kind, read_artifact
    from fedseg.model.spec import build_model, model_tensor_spec
    from fedseg.train.validate import validate

    plan = site.plan
    art = read_artifact(path, plan, kind=Kind.GLOBAL, spec=model_tensor_spec(plan.model))
    if art.round != round_ or art.digest != sha256:
        raise BindingError(f"{path}: the global of round {art.round} ({art.digest[:12]}), expected round {round_} "
                           f"({sha256[:12]})")
    dataset = load_dataset(site.data)
    readers = [r for r in (dataset.reader(c) for c in dataset.split(split)) if r.has_label]
    dice = None
    if readers:
        dev = resolve_device(site.device)
        model = build_model(plan.model, art.tensors).to(dev)
        config = plan.training
        dice = validate(model, readers, patch_size=config.patch_size, overlap=config.val_overlap, device=str(dev),
                        amp=config.amp and dev.type == "cuda")
    log.info("%s: global %d on its %s split (%d labelled case(s)): %s", site.site, round_, split, len(readers), dice)
    return {"global_round": round_, "global_sha256": sha256, "split": split, "cases": len(readers), "dice": dice}


def _upload(site: Any, body: dict[str, Any], folder: str, name: str) -> None:
    signed = site.work / "final" / f"{name}.json"
    write_document(signed, public_score(body, site.plan.training.metrics_min_cases), kind=DocKind.SCORE,
                   key=site.key, plan=site.plan)
    site.store.put(score_key(folder, site.site), signed)
    (site.work / "final" / f"{name}.uploaded").write_text("uploaded\n")


def report_last_validation(site: Any, last: dict[str, Any]) -> None:
    """Score the accepted last global (``last``: its round and digest) on validation and upload it, once.

    Once per last round: when a plan update extends the rounds, the new last global is scored again.
    """
    round_, sha256 = int(last["round"]), str(last["sha256"])
    name = f"validation-r{round_:04d}"
    if (site.work / "final" / f"{name}.uploaded").exists():
        return
    path = site.global_path(round_)
    if not path.exists() and not site.store.get(global_key(round_), path, max_bytes=site.max_global_bytes):
        raise BindingError(f"{site.store.url}/{global_key(round_)}: the last global is gone from the store and "
                           "from the work folder")
    _upload(site, score_global(site, path, round_=round_, sha256=sha256, split="val"), validation_folder(round_), name)
    log.info("%s: uploaded its validation score of the last global (round %d)", site.site, round_)


def is_site_at(plan: Plan, key_id: str, round_: int) -> bool:
    """Return whether ``key_id`` is a site key of the version of ``plan`` in force for ``round_``."""
    governing = plan.in_force(round_)
    member = governing.member_by_key_id(key_id)
    return member is not None and member in governing.sites


def score_result(site: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Score the result's global on the test split, keep it locally and upload it signed (once); return it.

    A site whose key is no site key at the end (it left, or its key was revoked or rotated out) keeps its
    score here and uploads nothing: the federation would not accept its signature.
    """
    local = site.work / "final" / "test-score.json"
    round_, sha256 = int(result["round"]), str(result["sha256"])
    end = int(result.get("last_round", round_))
    # a site of the version in force at the end, and of the newest one, which its signed documents bind to
    member = is_site_at(site.plan, site.key.key_id, end) and is_site_at(site.plan, site.key.key_id, site.plan.from_round)
    if local.exists() and (not member or (site.work / "final" / "test.uploaded").exists()):
        return dict(json.loads(local.read_text()))
    path = site.global_path(round_)
    if not path.exists():
        site.store.get(global_key(round_), path, max_bytes=site.max_global_bytes)
    body = score_global(site, path, round_=round_, sha256=sha256, split="test")
    atomic_write_json(local, body)
    if not member:
        log.info("%s: its key is no site key of the plan at the end (round %d): the test score stays at the site, "
                 "not uploaded", site.site, end)
        return body
    _upload(site, body, FINAL_TEST, "test")
    log.info("%s: the federation's result (round %d) scored %s on its test split", site.site, round_, body["dice"])
    return body
