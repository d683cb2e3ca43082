"""Exporting a verified global model: hand-written safetensors and TorchScript, each with its config."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from fedseg.errors import ArtifactError
from fedseg.federation.artifact import read_artifact
from fedseg.model.spec import build_model
from fedseg.workflow.initial import write_initial_global
from fedseg.workflow.model_export import export_global, read_safetensors, safetensors_bytes
from tests._train_data import tiny_plan


def test_safetensors_layout_by_hand() -> None:
    data = safetensors_bytes({"b": np.array([1.0, 2.0], np.float32), "a": np.zeros((1, 2), np.float16)}, {"k": "v"})
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0
    header = json.loads(data[8 : 8 + n])
    assert header["a"] == {"dtype": "F16", "shape": [1, 2], "data_offsets": [0, 4]}
    assert header["b"] == {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}
    assert header["__metadata__"] == {"k": "v"}
    assert data[8 + n + 4 :] == np.array([1.0, 2.0], "<f4").tobytes()
    tensors, meta = read_safetensors(data)
    np.testing.assert_array_equal(tensors["b"], [1.0, 2.0]) and meta == {"k": "v"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
def test_export_global_safetensors_and_torchscript(plan, site_keys, tmp_path: Path) -> None:
    p = tiny_plan(plan)
    g = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed", seed=5)
    art = read_artifact(g, p)
    st = export_global(g, p, tmp_path / "model.safetensors", format="safetensors")
    tensors, meta = read_safetensors(st.read_bytes())
    assert set(tensors) == set(art.tensors)
    for name, arr in art.tensors.items():
        np.testing.assert_array_equal(tensors[name], arr)
    assert meta["fedseg_payload_sha256"] == art.digest
    info = json.loads((tmp_path / "model.safetensors.json").read_text())
    assert info["model"]["widths"] == [4, 8] and info["regions"] == ["WT", "TC", "ET"]
    assert info["source"]["round"] == 0 and info["input"]["modalities"] == ["t1", "t1ce", "t2", "flair"]

    ts = export_global(g, p, tmp_path / "model.pt", format="torchscript")
    loaded = torch.jit.load(str(ts))
    x = torch.randn(1, 4, 8, 12, 6)  # another size than the trace example
    reference = build_model(p.model, art.tensors).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), reference(x))
    assert (tmp_path / "model.pt.json").exists()


def test_export_refuses_a_tampered_global(plan, site_keys, tmp_path: Path) -> None:
    p = tiny_plan(plan)
    g = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed")
    raw = bytearray(g.read_bytes())
    raw[-50] ^= 1
    g.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError):
        export_global(g, p, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
    with pytest.raises(ValueError):
        export_global(g, p, tmp_path / "m.onnx", format="onnx")
