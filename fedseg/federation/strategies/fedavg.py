"""Federated Averaging: the example-weighted mean of client models.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017. The server model is ``sum_k n_k w_k / sum_k n_k`` where ``n_k`` is the
number of examples client ``k`` trained on.

Arithmetic: every product ``n_k * w_k`` and every running sum is kept in float64 (float16/float32 inputs
are widened first) and the result is cast to float32 once, at the end. :class:`WeightedMean` streams: it
holds one float64 running sum per tensor, so memory stays O(model) however many clients are averaged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from fedseg.errors import AggregationError

__all__ = ["WeightedMean", "fedavg", "weighted_mean"]


def _check_weight(weight: float, where: str) -> float:
    value = float(weight)
    if not np.isfinite(value) or value <= 0.0:
        raise AggregationError(f"{where}: expected a positive finite weight (example count), got {weight!r}")
    return value


class WeightedMean:
    """Accumulate ``sum_k n_k * x_k`` tensor by tensor in float64; :meth:`mean` divides by ``sum_k n_k``.

    Every added model must carry exactly the tensor names and shapes of the first one.
    """

    def __init__(self) -> None:
        self._sums: dict[str, np.ndarray] = {}
        self.total_weight = 0.0
        self.count = 0

    def add(self, tensors: Mapping[str, np.ndarray], weight: float, *, scale: float = 1.0) -> None:
        """Add one model (or delta) with weight ``weight``; ``scale`` multiplies its values (clipping)."""
        w = _check_weight(weight, f"model {self.count}")
        if self._sums and set(tensors) != set(self._sums):
            missing = sorted(set(self._sums) ^ set(tensors))
            raise AggregationError(f"model {self.count}: tensor names differ from the first model's ({missing[:3]})")
        for name, array in tensors.items():
            self.add_tensor(name, array, w * float(scale))
        self.finish_model(w)

    def add_tensor(self, name: str, array: np.ndarray, factor: float) -> None:
        """Add ``factor * array`` to the running sum of tensor ``name`` (streaming, one tensor at a time).

        Call :meth:`finish_model` with the model's weight once all its tensors are added.
        """
        acc = self._sums.get(name)
        if acc is None:
            self._sums[name] = np.multiply(array, np.float64(factor), dtype=np.float64)
            return
        if acc.shape != array.shape:
            raise AggregationError(f"tensor {name!r}: expected shape {acc.shape}, got {array.shape}")
        if array.dtype == np.float64:
            # in place: no temporary the size of the tensor
            acc += array if factor == 1.0 else np.multiply(array, factor)
        else:
            acc += np.multiply(array, np.float64(factor), dtype=np.float64)

    def running_sum(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Return the float64 running sum of tensor ``name`` (zeros at first) for a caller that adds in place.

        Streaming callers add ``weight * values`` into it chunk by chunk, then call :meth:`finish_model`.
        """
        acc = self._sums.get(name)
        if acc is None:
            acc = self._sums[name] = np.zeros(shape, dtype=np.float64)
        elif acc.shape != tuple(shape):
            raise AggregationError(f"tensor {name!r}: expected shape {acc.shape}, got {tuple(shape)}")
        return acc

    def finish_model(self, weight: float) -> None:
        """Count one model of weight ``weight`` whose tensors were added with :meth:`add_tensor`."""
        self.total_weight += _check_weight(weight, f"model {self.count}")
        self.count += 1

    def mean_tensor(self, name: str) -> np.ndarray:
        """Return the float64 weighted mean of one tensor."""
        if not self.count:
            raise AggregationError("no models were added; nothing to average")
        return self._sums[name] / self.total_weight

    def pop_mean(self, name: str) -> np.ndarray:
        """Return the float64 weighted mean of one tensor and release its running sum (streaming output)."""
        mean = self.mean_tensor(name)
        del self._sums[name]
        return mean

    def names(self) -> list[str]:
        """Return the tensor names in insertion order."""
        return list(self._sums)

    def mean(self, dtype: type = np.float32) -> dict[str, np.ndarray]:
        """Return the weighted mean of every tensor, cast to ``dtype`` (float32 by default)."""
        if not self.count:
            raise AggregationError("no models were added; nothing to average")
        return {name: self.mean_tensor(name).astype(dtype) for name in self._sums}


def weighted_mean(arrays: Iterable[tuple[np.ndarray, float]]) -> np.ndarray:
    """Return the float32 weighted mean of ``(array, weight)`` pairs (float64 accumulation)."""
    acc = WeightedMean()
    for array, weight in arrays:
        acc.add({"x": array}, weight)
    return acc.mean()["x"]


def fedavg(updates: Iterable[tuple[Mapping[str, np.ndarray], int]]) -> dict[str, np.ndarray]:
    """Return the example-weighted average of ``(weights, num_examples)`` pairs, tensor by tensor.

    Raises AggregationError for an empty input, a non-positive example count, or mismatched tensors.
    """
    acc = WeightedMean()
    for tensors, num_examples in updates:
        acc.add(tensors, num_examples)
    return acc.mean()
