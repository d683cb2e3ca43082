"""The end of a store-driven federation: the sites' signed scores and the coordinator's signed result.

How a run ends (``fedseg coordinator run`` / ``fedseg site run``):

* **Early stop** (``aggregation.early_stop_patience`` > 0): when the federated validation curve
  (:mod:`fedseg.workflow.coordinator.fed_validation`) has not improved for that many evaluations, the
  coordinator publishes the result instead of the round's new global (which stays in its work folder).
* **Last round**: once the plan's last global is published, every site scores it on its validation split
  and uploads a signed score (``final/validation/rNNNN/<site>.json``); the last global can be scored by no later
  round, and this way it is judged exactly as every earlier global was. The coordinator waits for every site
  (or, after ``aggregation.round_deadline``, for ``min_sites``) of the plan version in force for that round,
  counting only verified scores of that global, records the point (ledger event
  ``global-validated``) and publishes the result.

The result (``final/result.json``, kind ``result``, signed by the coordinator) names the global of the best
point of the curve: its ``round`` and payload digest ``sha256``, the ``reason`` (``plateau``, ``last-round``,
or ``no-validation`` when no site could share a score: then it names the last global), the ``best`` point
and the whole ``curve``. Every site then scores that global on its test split, keeps the site-level score in
its work folder (``final/test-score.json``) and uploads it signed (``final/test/<site>.json``).

A score document says ``global_round``, ``global_sha256``, ``split``, ``cases`` and ``dice`` (the site's mean
Dice per region). As in updates (:func:`fedseg.workflow.site.export.site_metrics`), ``dice`` is null on the
store when the split holds fewer than ``training.metrics_min_cases`` cases: one or two patients' numbers do
not leave the site. Everything read here from the store is verified first (:mod:`fedseg.federation.document`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from fedseg.errors import ArtifactError, FedsegError
from fedseg.federation.document import MAX_DOCUMENT_BYTES, DocKind, read_document
from fedseg.federation.plan import Plan
from fedseg.workflow.coordinator.fed_validation import SiteScore, site_score
from fedseg.workflow.store.backend import Store
from fedseg.workflow.store.layout import RESULT_KEY, parse_score_name

__all__ = ["FEDERATION_ENDED", "public_score", "read_result", "read_scores"]

log = logging.getLogger(__name__)

FEDERATION_ENDED = "federation-ended"  # ledger event: the result the coordinator named


def public_score(body: Mapping[str, Any], min_cases: int) -> dict[str, Any]:
    """Return the score as it may leave the site: ``dice`` null over fewer than ``min_cases`` cases."""
    out = dict(body)
    if int(out.get("cases") or 0) < min_cases:
        if out.get("dice") is not None:
            log.info("the %s score stays at the site: %s case(s), fewer than training.metrics_min_cases = %d",
                     out.get("split"), out.get("cases"), min_cases)
        out["dice"] = None
    return out


def read_scores(plan: Plan, store: Store, folder: str, tmp: Path, *, round_: int, sha256: str,
                split: str, sites: Collection[str] | None = None) -> tuple[list[SiteScore], list[str]]:
    """Return the verified site scores of global (``round_``, ``sha256``) on ``split`` in ``folder``, and who sent one.

    Only the ``sites`` named count (default: the sites of ``plan``). A document that does not verify, or
    scores another global or split, is logged and left out; a site whose valid document holds no Dice (too
    few cases) counts as answered without a score.
    """
    sites = {s.id for s in plan.sites} if sites is None else set(sites)
    scores: list[SiteScore] = []
    answered: list[str] = []
    for name in sorted(store.list(folder)):
        site = parse_score_name(name)
        if site not in sites:
            continue
        dest = tmp / f"score-{site}.json"
        try:
            if not store.get(f"{folder}/{name}", dest, max_bytes=MAX_DOCUMENT_BYTES):
                continue
            doc = read_document(dest, plan, DocKind.SCORE)
        except FedsegError as exc:
            log.warning("%s/%s/%s is left out: %s", store.url, folder, name, exc)
            continue
        if (doc.get("signer"), doc.get("global_round"), doc.get("global_sha256"), doc.get("split")) != \
                (site, round_, sha256, split):
            log.warning("%s/%s/%s is left out: it is not %s's %s score of global %d (%s)", store.url, folder, name,
                        site, split, round_, sha256[:12])
            continue
        answered.append(site)
        score = site_score(site, doc.get("dice"), doc.get("cases"))
        if score is not None:
            scores.append(score)
    return scores, answered


def read_result(plan: Plan, store: Store, dest: Path) -> dict[str, Any] | None:
    """Return the verified result document on ``store``, or None while there is none."""
    if not store.get(RESULT_KEY, dest, max_bytes=MAX_DOCUMENT_BYTES):
        return None
    doc = read_document(dest, plan, DocKind.RESULT)
    round_, sha256 = doc.get("round"), doc.get("sha256")
    if not isinstance(round_, int) or isinstance(round_, bool) or not 0 <= round_ <= plan.rounds \
            or not isinstance(sha256, str):
        raise ArtifactError(f"{store.url}/{RESULT_KEY}: a result must name a round in 0..{plan.rounds} and a "
                            f"payload digest, got round {round_!r}, sha256 {sha256!r}")
    return doc
