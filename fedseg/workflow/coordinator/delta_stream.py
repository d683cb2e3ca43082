"""Stream a round's verified updates into deltas: norms, the float64 running sum, and the per-tensor combine.

Every update is seen as its delta from the current global, ``d = x - g`` (a "delta" update already is
one), in float64: ``x`` and ``g`` are float32/float16, so the widened difference is exact. Work goes in
chunks of :data:`CHUNK` elements so the delta, its square and the scaled add happen while the chunk is in
cache, with one reused float64 buffer and the global's chunk read from its scratch file
(:class:`~fedseg.workflow.coordinator.scratch.TensorFile`): memory beyond the update being read is the running sum
alone. Median and trimmed mean read each tensor slice by slice from every update's scratch file, so their
working set is (updates x slice), not (updates x tensor).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.errors import AggregationError
from fedseg.federation.manifest import WeightsKind
from fedseg.federation.plan import Plan
from fedseg.federation.strategies import (
    Combine,
    WeightedMean,
    clip_scale,
    coordinate_median,
    coordinate_trimmed_mean,
)
from fedseg.workflow.coordinator.round_report import UpdateVerdict
from fedseg.workflow.coordinator.scratch import TensorFile

__all__ = ["CHUNK", "combined_delta", "consume", "delta_pass", "direction_cosines", "rebuild"]

CHUNK = 1 << 16  # elements per fused step: 512 KiB of float64 stays in cache


def delta_pass(x: np.ndarray, g: TensorFile, name: str, weights: str, out: np.ndarray | None, factor: float,
               buf: np.ndarray) -> float:
    """Return the float64 sum of squares of tensor ``name``'s delta; with ``out``, add ``factor * delta`` to it."""
    xf = x.reshape(-1)
    of = out.reshape(-1) if out is not None else None
    total = 0.0
    for start in range(0, xf.size, CHUNK):
        stop = min(start + CHUNK, xf.size)
        b = buf[: stop - start]
        np.copyto(b, xf[start:stop])  # widen first: subtracting in float64 is exact, in float32 it is not
        if weights != WeightsKind.DELTA:
            np.subtract(b, g.read_range(name, start, stop), out=b)
        total += float(np.einsum("i,i->", b, b))  # not np.dot: BLAS threads cost more than they save here
        if of is not None:
            b *= factor
            of[start:stop] += b
    return total


def consume(tensors: dict[str, np.ndarray], g: TensorFile, verdict: UpdateVerdict, *, acc: WeightedMean | None,
            spill: Path | None, clip_norm: float) -> float:
    """Return the update's delta norm; add it to ``acc`` (streaming) or copy it into a file in ``spill``.

    Without clipping one pass both measures and adds; with clipping the scale needs the whole norm, so a
    second pass adds. The update enters the sum with weight ``verdict.weight``.
    """
    buf = np.empty(CHUNK, dtype=np.float64)
    weight = float(verdict.weight or 1.0)
    one_pass = acc is not None and clip_norm == 0
    total = 0.0
    for name, x in tensors.items():
        out = acc.running_sum(name, x.shape) if one_pass and acc is not None else None
        total += delta_pass(x, g, name, verdict.weights, out, weight, buf)
    norm = math.sqrt(total)
    if acc is not None and not one_pass:
        factor = weight * clip_scale(norm, clip_norm)
        for name, x in tensors.items():
            delta_pass(x, g, name, verdict.weights, acc.running_sum(name, x.shape), factor, buf)
    if acc is not None:
        acc.finish_model(weight)
        verdict.added = True
    if spill is not None:
        verdict.scratch = TensorFile(spill / f"update-{len(list(spill.iterdir())):04d}.bin", tensors)
    return norm


def rebuild(accepted: list[UpdateVerdict], plan: Plan, spec: dict[str, Any], g: TensorFile, clip_norm: float,
            buffer: np.ndarray | None) -> WeightedMean:
    """Sum the accepted updates again from a second verified read (a rejected one had been added)."""
    from fedseg.federation.artifact import Kind, read_artifact

    acc = WeightedMean()
    buf = np.empty(CHUNK, dtype=np.float64)
    for verdict in accepted:
        art = read_artifact(verdict.path, plan, kind=Kind.UPDATE, spec=spec, buffer=buffer)
        if art.digest != verdict.sha256:
            raise AggregationError(f"{verdict.path}: the file changed during aggregation "
                                   f"({str(verdict.sha256)[:12]} -> {art.digest[:12]})")
        weight = float(verdict.weight or 1.0)
        factor = weight * clip_scale(verdict.norm or 0.0, clip_norm)
        for name, x in art.tensors.items():
            delta_pass(x, g, name, verdict.weights, acc.running_sum(name, x.shape), factor, buf)
        acc.finish_model(weight)
        del art  # its tensors view ``buffer``, which the next read overwrites
    return acc


def direction_cosines(verdicts: list[UpdateVerdict], g: TensorFile) -> list[float]:
    """Return each update's cosine similarity to the coordinate-wise median delta of ``verdicts``.

    Every update must have been spilled to its scratch file. Works slice by slice like
    :func:`combined_delta`, accumulating the dot products with the median and the median's squared norm,
    so memory is (updates x slice). A zero median (or a zero delta) gives cosine 0: no direction to judge.
    """
    dots = np.zeros(len(verdicts), dtype=np.float64)
    median_sq = 0.0
    step = max(1, CHUNK * 4 // max(1, len(verdicts)))
    for name in g.names:
        size = int(np.prod(g.shape(name), dtype=np.int64))
        for start in range(0, size, step):
            stop = min(start + step, size)
            base = np.array(g.read_range(name, start, stop), dtype=np.float32)  # copy: the view is reused
            deltas = []
            for v in verdicts:
                assert v.scratch is not None
                deltas.append(_delta64(v.scratch.read_range(name, start, stop), base, v.weights))
            m = coordinate_median(deltas, dtype=np.float64)
            median_sq += float(np.einsum("i,i->", m, m))
            for i, d in enumerate(deltas):
                dots[i] += float(np.einsum("i,i->", d, m))
    median_norm = math.sqrt(median_sq)
    return [float(dots[i] / (v.norm * median_norm)) if v.norm and median_norm > 0 else 0.0
            for i, v in enumerate(verdicts)]


def _delta64(x: np.ndarray, g: np.ndarray, weights: str) -> np.ndarray:
    """Return the float64 delta of one tensor slice (client - global; a "delta" update already is one)."""
    if weights == WeightsKind.DELTA:
        return x.astype(np.float64)
    return np.subtract(x, g, dtype=np.float64)


def combined_delta(name: str, *, strat: Any, config: Any, acc: WeightedMean | None, accepted: list[UpdateVerdict],
                   g: np.ndarray) -> np.ndarray:
    """Return the float64 combined delta of one tensor (``g`` is the current global's tensor).

    The mean comes from the running sum (which is then released); median and trimmed mean read the
    tensor from every update's scratch file slice by slice.
    """
    if acc is not None:
        return acc.pop_mean(name)
    flat_g = g.reshape(-1)
    result = np.empty(flat_g.size, dtype=np.float64)
    scales = [clip_scale(v.norm or 0.0, config.clip_norm) for v in accepted]
    step = max(1, CHUNK * 4 // max(1, len(accepted)))
    for start in range(0, flat_g.size, step):
        stop = min(start + step, flat_g.size)
        deltas = []
        for v, scale in zip(accepted, scales):
            assert v.scratch is not None
            deltas.append(_delta64(v.scratch.read_range(name, start, stop), flat_g[start:stop], v.weights) * scale)
        if strat.combine is Combine.MEDIAN:
            result[start:stop] = coordinate_median(deltas, dtype=np.float64)
        else:
            result[start:stop] = coordinate_trimmed_mean(deltas, config.trim_fraction, dtype=np.float64)
    return result.reshape(g.shape)
