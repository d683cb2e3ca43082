"""The expected name, shape and dtype of a weight tensor, shared by the model (which states its spec) and the
artifact reader (which checks received tensors against it) without either importing the other."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TensorSpec"]


@dataclass(frozen=True)
class TensorSpec:
    """The expected shape of one tensor; ``dtype`` "float32" accepts float16 when the manifest says so."""

    shape: tuple[int, ...]
    dtype: str = "float32"
