"""Smooth random fields on a physical grid: the raw material of every irregular shape in the phantom.

A field is white Gaussian noise on a lattice whose node spacing is half the correlation length,
low-pass filtered on that small lattice with a binomial kernel ([1, 2, 1] / 4 applied twice per axis,
about a Gaussian of one node), normalised to unit standard deviation, and interpolated trilinearly onto the target grid
(separably, in NumPy). The lattice is small, so a field costs a few passes over the target grid,
which keeps a full-size case within its time budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["smooth_field"]

_MARGIN_NODES = 3  # spare lattice nodes beyond the grid on each side, so filtering edges do not show


def _binomial(array: np.ndarray, passes: int = 2) -> np.ndarray:
    """Smooth along every axis with ``passes`` applications of [1, 2, 1] / 4 (edges reflect)."""
    out = array
    for axis in range(out.ndim):
        for _ in range(passes):
            padded = np.concatenate([np.take(out, [1], axis=axis), out, np.take(out, [-2], axis=axis)], axis=axis)
            n = out.shape[axis]
            out = 0.25 * np.take(padded, range(0, n), axis=axis) + 0.5 * out + 0.25 * np.take(padded, range(2, n + 2), axis=axis)
    return out


def smooth_field(rng: np.random.Generator, reference: sitk.Image, correlation_mm: float) -> np.ndarray:
    """Return a float32 [Z, Y, X] field on ``reference``'s grid with ~unit std, smooth over ``correlation_mm``.

    ``reference`` must have an identity direction (the phantom's grids are axis-aligned).
    """
    size = np.array(reference.GetSize(), dtype=float)
    spacing = np.array(reference.GetSpacing(), dtype=float)
    origin = np.array(reference.GetOrigin(), dtype=float)
    step = max(float(correlation_mm) / 2.0, 0.5)
    nodes = np.ceil((size - 1) * spacing / step).astype(int) + 1 + 2 * _MARGIN_NODES
    lattice = _binomial(rng.standard_normal(tuple(int(n) for n in nodes[::-1])))
    std = float(lattice.std())
    lattice = (lattice / (std if std > 0 else 1.0)).astype(np.float32)
    # Trilinear interpolation is separable: interpolate along x, then y, then z (2 taps per axis).
    # Doing it in NumPy avoids a multi-threaded resampler that suffers on a busy machine.
    out = lattice
    for axis, (n, d, o) in enumerate(zip(size, spacing, origin, strict=True)):
        array_axis = 2 - axis  # x is the last array axis
        pos = (o + d * np.arange(int(n)) - (o - _MARGIN_NODES * step)) / step
        lo = np.clip(np.floor(pos).astype(int), 0, out.shape[array_axis] - 2)
        w = (pos - lo).astype(np.float32)
        shape = [1, 1, 1]
        shape[array_axis] = int(n)
        w = w.reshape(shape)
        out = np.take(out, lo, axis=array_axis) * (1 - w) + np.take(out, lo + 1, axis=array_axis) * w
    return np.ascontiguousarray(out, dtype=np.float32)
