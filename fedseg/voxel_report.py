"""Short descriptions of bad voxels and value sets for error messages: how many, and where the first few are.

A label map of 240×240×155 can hold millions of bad voxels or thousands of distinct wrong values; an
error line lists a few and counts the rest instead of printing them all.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["format_values", "where_voxels"]

SHOWN = 3  # coordinates shown per message
SHOWN_VALUES = 8  # values shown per message


def where_voxels(mask: np.ndarray, *, shown: int = SHOWN) -> str:
    """Return ``"N voxel(s), first at (z, y, x), ..."`` for a boolean ``mask`` (array index order).

    Only the slices that hold a bad voxel are searched, until ``shown`` are found, so a map full of
    them never builds a list of every coordinate.
    """
    mask = np.asarray(mask, dtype=bool)
    count = int(np.count_nonzero(mask))
    if not count:
        return "0 voxels"
    first: list[tuple[int, ...]] = []
    if mask.ndim < 2:
        first = [tuple(c) for c in np.argwhere(mask)[:shown]]
    for z in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)) if mask.ndim >= 2 else ():
        first += [(int(z), *map(int, c)) for c in np.argwhere(mask[z])[: shown - len(first)]]
        if len(first) >= shown:
            break
    coords = ", ".join("(" + ", ".join(str(int(i)) for i in c) + ")" for c in first)
    return f"{count} voxel(s), first at {coords} (array index order)"


def format_values(values: Iterable[int], *, shown: int = SHOWN_VALUES) -> str:
    """Return ``"{a, b, c}"`` or, with many values, ``"{a, b, ... (N values)}"``."""
    ordered = sorted(values)
    if len(ordered) <= shown:
        return "{" + ", ".join(str(v) for v in ordered) + "}"
    return "{" + ", ".join(str(v) for v in ordered[:shown]) + f", ... ({len(ordered)} values)" + "}"
