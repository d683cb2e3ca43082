"""Read a global model file into a network, and what the network needs of its inputs, from the plan.

Both live here, above ``federation`` and ``inference``, so ``inference`` works on a network and settings it is
handed: it neither reads an artifact (DESIGN.md §3: nothing below ``workflow`` reads a ``.fedseg`` file) nor
imports the plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fedseg.inference.spec import InferenceSpec

if TYPE_CHECKING:
    import torch

    from fedseg.federation.plan import Plan

__all__ = ["inference_spec", "load_global_model"]


def load_global_model(plan: Plan, path: Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Verify the global model file ``path`` against ``plan`` and return the network in eval mode.

    The artifact is verified (signature, plan binding, kind global, tensor names and shapes of the
    plan's architecture, finite values) before any byte of its payload is parsed; any failure raises
    an ArtifactError subclass and nothing is returned.
    """
    from fedseg.federation.artifact import Kind, read_artifact
    from fedseg.model.spec import build_model, model_tensor_spec

    artifact = read_artifact(Path(path), plan, kind=Kind.GLOBAL, spec=model_tensor_spec(plan.model))
    model = build_model(plan.model, artifact.tensors)
    return model.to(device).eval()


def inference_spec(plan: Plan) -> InferenceSpec:
    """Return what the plan's network needs of its inputs: preprocessing, input channels, window (training patch)."""
    return InferenceSpec(preprocessing=plan.preprocessing, in_channels=plan.model.in_channels,
                         patch_size=plan.training.patch_size)
