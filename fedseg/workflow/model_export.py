"""Take a verified global model out to other tools: safetensors or TorchScript, with its config beside it.

The safetensors file is written by hand (no dependency), following the published format
(https://github.com/huggingface/safetensors#format): an 8-byte little-endian header length N, N bytes of
JSON header ``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__":
{...}}`` padded with spaces to a multiple of 8, then the raw little-endian tensor bytes in header order.
TorchScript is a traced :class:`~fedseg.model.unet.UNet3D` (trace works for any input size divisible by
the model's stride product). Both get ``<out>.json``: the model config, the plan's patch size and
preprocessing, the region order and the provenance (federation, round, digest).
"""

from __future__ import annotations

import enum
import json
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.configtools import config_to_dict
from fedseg.errors import ConfigError
from fedseg.federation.plan import Plan
from fedseg.fsutil import atomic_path, atomic_write_bytes, atomic_write_json, refuse_output_overlap
from fedseg.labels import REGIONS

__all__ = ["ExportFormat", "export_global", "read_safetensors", "safetensors_bytes"]

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64"}


class ExportFormat(str, enum.Enum):
    SAFETENSORS = "safetensors"
    TORCHSCRIPT = "torchscript"


def safetensors_bytes(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """Return the safetensors encoding of ``tensors`` (sorted by name) with string ``metadata``."""
    header: dict[str, Any] = {}
    chunks, offset = [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype not in _DTYPES:
            raise ConfigError(f"tensor {name}: cannot write dtype {arr.dtype} to safetensors")
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(chunks)


def read_safetensors(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse safetensors bytes written by :func:`safetensors_bytes` (for tests and round trips)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    names = {v: k for k, v in _DTYPES.items()}
    body = data[8 + n :]
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(body[begin:end], dtype=names[info["dtype"]].newbyteorder("<")).reshape(info["shape"])
    return out, metadata


def export_global(global_path: Path, plan: Plan, out: Path, *, format: str | ExportFormat = "safetensors") -> Path:
    """Verify the global at ``global_path`` against ``plan`` and write it to ``out`` plus ``<out>.json``."""
    from fedseg.workflow.site.received import read_global

    fmt = ExportFormat(format)
    out = Path(out)
    for path in (out, out.with_name(out.name + ".json")):
        refuse_output_overlap(path, {"plan": plan.source, "global": global_path})
    art = read_global(plan, global_path)
    tensors = {name: np.asarray(arr, dtype=np.float32) for name, arr in art.tensors.items()}
    info = {
        "model": config_to_dict(plan.model),
        "regions": list(REGIONS),
        "output": "logits; apply a sigmoid per channel (WT, TC, ET)",
        "input": {"modalities": list(plan.preprocessing.modalities), "layout": "[B, C, Z, Y, X]",
                  "patch_size": list(plan.training.patch_size), "divisor": list(plan.model.divisor)},
        "preprocessing": config_to_dict(plan.preprocessing),
        "source": {"federation_id": plan.federation_id, "round": art.typed_manifest.round,
                   "payload_sha256": art.digest, "file": Path(global_path).name},
        "format": fmt.value,
    }
    out = Path(out)
    if fmt is ExportFormat.SAFETENSORS:
        metadata = {"format": "pt", "fedseg_model": json.dumps(info["model"], sort_keys=True),
                    "fedseg_round": str(info["source"]["round"]), "fedseg_payload_sha256": art.digest}
        atomic_write_bytes(out, safetensors_bytes(tensors, metadata))
    else:
        import torch

        from fedseg.model.spec import build_model

        model = build_model(plan.model, tensors).eval()
        # twice the stride product: instance norm needs more than one voxel at the bottleneck
        example = torch.zeros((1, plan.model.in_channels, *(2 * d for d in plan.model.divisor)), dtype=torch.float32)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates TorchScript; asked for here
            traced = torch.jit.trace(model, example)
            with atomic_path(out) as tmp:
                torch.jit.save(traced, str(tmp))
    atomic_write_json(out.with_name(out.name + ".json"), info)
    return out
