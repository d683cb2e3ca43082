"""The HDF5 payload alone: deterministic encoding, decoding without a manifest, the name and dtype rules."""

from __future__ import annotations

import numpy as np
import pytest

from fedseg.errors import ArtifactError
from fedseg.federation.payload import check_finite, check_name, decode_payload, encode_payload, payload_dtype
from fedseg.tensorspec import TensorSpec

TENSORS = {"b": np.arange(3, dtype=np.float32), "a": np.ones((2, 2), np.float32), "s": np.float32(2.0)}


def test_encode_is_deterministic_and_decodes_to_the_same_values() -> None:
    data = encode_payload(TENSORS)
    assert data == encode_payload(dict(reversed(list(TENSORS.items()))))
    got = decode_payload(data, spec=None, dtype="float32", where="p")
    assert sorted(got) == ["a", "b", "s"]
    for name, value in TENSORS.items():
        np.testing.assert_array_equal(got[name], value)
        assert got[name].dtype == np.dtype("<f4")


def test_decode_checks_spec_declared_and_dtype() -> None:
    data = encode_payload(TENSORS)
    spec = {"a": TensorSpec((2, 2)), "b": TensorSpec((3,)), "s": TensorSpec(())}
    assert set(decode_payload(data, spec=spec, dtype="float32", where="p", load_values=False)) == set()
    with pytest.raises(ArtifactError, match="p: tensor 'b' has shape \\[3\\]; the model expects \\[4\\]"):
        decode_payload(data, spec={**spec, "b": TensorSpec((4,))}, dtype="float32", where="p")
    with pytest.raises(ArtifactError, match="missing"):
        decode_payload(data, spec={**spec, "c": TensorSpec((1,))}, dtype="float32", where="p")
    with pytest.raises(ArtifactError, match="not listed in the manifest"):
        decode_payload(data, spec=None, dtype="float32", where="p", declared={"a": [2, 2]})
    with pytest.raises(ArtifactError, match="declares little-endian float16"):
        decode_payload(data, spec=None, dtype="float16", where="p")
    with pytest.raises(ArtifactError, match="expected float32 or float16"):
        decode_payload(data, spec=None, dtype="float64", where="p")
    with pytest.raises(ArtifactError, match="must be float16, the payload is float32"):
        decode_payload(data, spec={k: TensorSpec(v.shape, "float16") for k, v in spec.items()}, dtype="float32",
                       where="p")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\x00b", 3])
def test_check_name_refuses(name) -> None:
    with pytest.raises(ArtifactError, match="tensor name"):
        check_name(name, "p")


def test_payload_dtype_needs_one_float_type() -> None:
    assert payload_dtype({"a": np.zeros(1, np.float16)}, "p") == "float16"
    with pytest.raises(ArtifactError, match="found float16, float32"):
        payload_dtype({"a": np.zeros(1, np.float16), "b": np.zeros(1, np.float32)}, "p")
    with pytest.raises(ArtifactError, match="found float64"):
        payload_dtype({"a": np.zeros(1)}, "p")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_check_finite_counts_bad_values(dtype) -> None:
    check_finite(np.zeros(5, dtype), "t", "p")
    with pytest.raises(ArtifactError, match="tensor 't' holds 2 NaN/Inf"):
        check_finite(np.array([0, np.nan, np.inf], dtype), "t", "p")
