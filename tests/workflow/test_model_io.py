"""Reading a global model file into a network: verified first, a wrong or tampered file refused."""

from __future__ import annotations

import pytest

from fedseg.configs.model import ModelConfig
from fedseg.errors import ArtifactError
from fedseg.model.spec import initial_weights
from fedseg.workflow.model_io import inference_spec, load_global_model
from tests.inference_fixtures import tiny_plan, write_global


def test_model_is_verified_and_mismatched_tensors_are_rejected(plan, site_keys, tmp_path) -> None:
    p = tiny_plan(plan)
    model = load_global_model(p, write_global(p, site_keys["coordinator"], tmp_path / "ok.fedseg"))
    assert not model.training and sum(t.numel() for t in model.parameters()) > 0
    other = ModelConfig(widths=(4, 8, 16), kernels=((3, 3, 3),) * 3, strides=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
                        convs_per_stage=1)
    bad = write_global(p, site_keys["coordinator"], tmp_path / "bad.fedseg", tensors=initial_weights(other, 0))
    with pytest.raises(ArtifactError, match="bad.fedseg"):
        load_global_model(p, bad)
    tampered = tmp_path / "tampered.fedseg"
    data = bytearray((tmp_path / "ok.fedseg").read_bytes())
    data[-20] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(ArtifactError):
        load_global_model(p, tampered)



def test_inference_spec_takes_what_the_network_needs_from_the_plan(plan) -> None:
    p = tiny_plan(plan)
    spec = inference_spec(p)
    assert spec.preprocessing == p.preprocessing and spec.in_channels == p.model.in_channels == 4
    assert spec.patch_size == p.training.patch_size == (8, 8, 8)
