"""Assign cases to train/val/test so each split holds its share, and a recorded split never moves.

* Targets: for ``N`` cases, the counts ``fraction × N`` rounded by largest remainder (Hamilton's
  method; ties go to test, then val), so 10 cases with ``val_fraction = 0.3`` give exactly 3 validation
  cases; train always keeps at least one. When a non-zero
  fraction would round to no case at all, one case is taken from train for it, provided train keeps
  at least one (only tiny datasets are affected).
* Stability: a case whose split is recorded (``previous``, from the existing ``dataset.json``) keeps
  it, whatever the new targets say, so a test case can never move into training.
* New cases are taken in the order of a seeded hash of their id (so the choice does not depend on
  discovery order) and each goes to the split furthest below its target count (ties: test, val,
  train), so a site that grows drifts back towards its fractions.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from fedseg.configs.preprocess import PreprocessConfig
from fedseg.data.dataset import CaseRecord, load_dataset
from fedseg.errors import DatasetError

__all__ = ["SPLIT_ORDER", "assign_splits", "recorded_splits", "settle_splits", "target_counts"]

#: Tie-break order: the held-out splits first, so tiny datasets still get their validation case.
SPLIT_ORDER = ("test", "val", "train")


def _score(case_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"fedseg-split\x00{seed}\x00{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def target_counts(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Return the number of cases per split for ``n`` cases (largest remainder, see the module docstring)."""
    shares = {"test": test_fraction, "val": val_fraction, "train": 1.0 - val_fraction - test_fraction}
    exact = {s: shares[s] * n for s in SPLIT_ORDER}
    counts = {s: math.floor(exact[s] + 1e-9) for s in SPLIT_ORDER}
    by_remainder = sorted(SPLIT_ORDER, key=lambda s: (-(exact[s] - counts[s]), SPLIT_ORDER.index(s)))
    for s in by_remainder[: n - sum(counts.values())]:
        counts[s] += 1
    if n and counts["train"] == 0:  # a tie lost to a held-out split: training needs a case
        largest = max(("test", "val"), key=lambda s: counts[s])
        counts[largest], counts["train"] = counts[largest] - 1, 1
    for s in ("test", "val"):
        if shares[s] > 0 and counts[s] == 0 and counts["train"] >= 2:
            counts[s], counts["train"] = 1, counts["train"] - 1
    return counts


def assign_splits(case_ids: Sequence[str], config: PreprocessConfig,
                  previous: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return case id -> ``train``/``val``/``test``; ids in ``previous`` keep their recorded split."""
    previous = previous or {}
    splits = {c: previous[c] for c in case_ids if previous.get(c) in SPLIT_ORDER}
    targets = target_counts(len(case_ids), config.val_fraction, config.test_fraction)
    counts = {s: sum(1 for v in splits.values() if v == s) for s in SPLIT_ORDER}
    for case in sorted((c for c in case_ids if c not in splits), key=lambda c: (_score(c, config.split_seed), c)):
        choice = max(SPLIT_ORDER, key=lambda s: (targets[s] - counts[s], -SPLIT_ORDER.index(s)))
        splits[case] = choice
        counts[choice] += 1
    return splits


def recorded_splits(root: Path) -> dict[str, str]:
    """Return case id -> split recorded in ``root/dataset.json`` (whatever its settings), else nothing."""
    try:
        return {c.id: c.split for c in load_dataset(root).cases} if (Path(root) / "dataset.json").exists() else {}
    except DatasetError:
        return {}


def settle_splits(records: list[CaseRecord], config: PreprocessConfig, recorded: Mapping[str, str],
                  accept: Sequence[str] = ()) -> None:
    """Give every record its split (recorded ones keep theirs) and mark the ids in ``accept`` accepted."""
    splits = assign_splits([r.id for r in records], config, recorded)
    for r in records:
        r.split = splits[r.id]
        r.accepted = r.accepted or r.id in accept
