"""Decide the label convention of a raw dataset once, over all its label maps, before any case is processed.

Which cases are decided together (:func:`fedseg.labels.decide_convention` over their value sets):

* BraTS folder layouts: the cases named like ``brats2021`` form one group and those named like
  ``brats2023`` another (a site may merge both releases). The naming is the fallback when no label map
  of the group holds a 3 or a 4; the values decide otherwise, so BraTS 2024 post-treatment data
  (2023 naming, 3 ET and 4 resection cavity) is recognised and its cavity never read as ET.
* CSV rows without a ``convention`` cell: one group (fallback brats2023 when label maps were read,
  brats2021 when there are none, as the BraTS 2018-2022 numbering is assumed for predictions then).
* nnU-Net and CSV rows that state a convention: kept (nnU-Net's dataset.json decides, since its 1 ED
  cannot be told from the values).

``--labels`` (``override``) replaces every case's convention. Only the label maps' value sets are read
(no resampling); a map that cannot be read is left out here and fails its case later with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from fedseg.data.discovery import Discovery, RawCase
from fedseg.errors import FedsegError
from fedseg.labels import LabelConvention, LabelDecision, Layout, decide_convention, label_values

__all__ = ["LabelGroup", "decide_dataset_labels", "read_label_values", "read_value_sets"]

log = logging.getLogger(__name__)

#: Reads the distinct values of one label file.
ValueReader = Callable[[Path], Sequence[int]]


@dataclass(frozen=True)
class LabelGroup:
    """The convention decided for a group of cases (``group`` names them: a naming, ``csv`` or ``nnunet``)."""

    group: str
    cases: int
    decision: LabelDecision

    def to_dict(self) -> dict[str, object]:
        return {"group": self.group, "cases": self.cases, **self.decision.to_dict()}


def read_label_values(path: Path) -> tuple[int, ...]:
    """Return the distinct values of the label map at ``path``."""
    from fedseg.imaging.io import read_image, to_array

    return label_values(to_array(read_image(path)))


def _values_or_none(path: Path, reader: ValueReader = read_label_values) -> set[int] | None:
    try:
        return set(reader(path))
    except (FedsegError, OSError, RuntimeError) as exc:  # its case fails later, with its reason
        log.debug("label scan: cannot read %s (%s)", path, exc)
        return None


def read_value_sets(paths: Sequence[Path], *, jobs: int = 1,
                    reader: ValueReader = read_label_values) -> list[set[int] | None]:
    """Return the value set of each label file of ``paths``, None where it cannot be read (``jobs`` processes)."""
    if jobs == 1 or len(paths) <= 1 or reader is not read_label_values:  # a test's reader stays in-process
        found = [_values_or_none(p, reader) for p in paths]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent may hold threads (rich's progress refresher, ITK's pool).
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=ctx) as pool:
            found = list(pool.map(_values_or_none, paths))
    return found


def _groups(found: Discovery) -> dict[str, tuple[list[RawCase], LabelConvention | None]]:
    """Return group name -> (its cases, the fallback; None when the cases keep their convention)."""
    groups: dict[str, tuple[list[RawCase], LabelConvention | None]] = {}
    for case in found.cases:
        if found.layout in (Layout.BRATS2021, Layout.BRATS2023):
            key, fallback = f"{case.convention.value} naming", case.convention
        elif case.convention is LabelConvention.AUTO:
            key, fallback = "csv", LabelConvention.AUTO
        else:
            key, fallback = f"{found.layout.value} ({case.convention.value} stated)", None
        groups.setdefault(key, ([], fallback))[0].append(case)
    return groups


def decide_dataset_labels(
    found: Discovery,
    override: LabelConvention | str = LabelConvention.AUTO,
    *,
    jobs: int = 1,
    reader: ValueReader = read_label_values,
) -> tuple[Discovery, list[LabelGroup]]:
    """Return ``found`` with every case's convention decided, and the decisions (logged, for the report)."""
    override = LabelConvention(override)
    decided: dict[str, LabelConvention] = {}
    groups: list[LabelGroup] = []
    if override is not LabelConvention.AUTO:
        decision = decide_convention([], override=override)
        decided = {c.id: override for c in found.cases}
        groups.append(LabelGroup("all", len(found.cases), decision))
    else:
        for key, (cases, fallback) in _groups(found).items():
            if fallback is None:
                conv = cases[0].convention
                stated = "nnU-Net dataset.json labels" if found.layout is Layout.NNUNET else "the CSV's convention column"
                decision = LabelDecision(conv, f"stated by {stated}")
            else:
                read = read_value_sets([c.seg for c in cases if c.seg is not None], jobs=jobs, reader=reader)
                sets = [v for v in read if v is not None]
                if fallback is LabelConvention.AUTO:
                    fallback = LabelConvention.BRATS2023 if sets else LabelConvention.BRATS2021
                decision = decide_convention(sets, fallback=fallback)
            groups.append(LabelGroup(key, len(cases), decision))
            decided.update(dict.fromkeys((c.id for c in cases), decision.convention))
    for group in groups:
        log.info("labels (%s, %d cases): %s; %s", group.group, group.cases, group.decision.convention.value,
                 group.decision.reason)
    cases = [replace(c, convention=decided[c.id]) for c in found.cases]
    return Discovery(found.root, found.layout, cases, list(found.problems)), groups
