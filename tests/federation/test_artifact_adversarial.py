"""Every way a received .fedseg file can be wrong gets its own test: the specific error, and nothing returned.

Hostile payloads are built with h5py and signed with a member key through ``_write_envelope`` (as a
compromised site could), so they pass the signature and digest checks and reach the HDF5 walk.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import struct
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from fedseg.errors import ArtifactError, BindingError, SignatureError
from fedseg.federation.artifact import (
    DEFAULT_MAX_FILE_BYTES,
    MAX_HEADER_BYTES,
    Kind,
    TensorSpec,
    _write_envelope,
    read_artifact,
    write_artifact,
)
from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
from fedseg.federation.plan import Member, new_plan

W, B = "enc.0.conv.weight", "enc.0.conv.bias"
SPEC = {W: TensorSpec((4, 2, 3, 3, 3)), B: TensorSpec((4,))}


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    names = ("coordinator", "site-a", "site-b", "outsider", "other-coord")
    for name in names:
        generate_keypair(name, d)
    pub = {n: load_public_key(d / f"{n}.pub") for n in names}
    plan = new_plan("fed", Member("coordinator", pub["coordinator"]), [Member("site-a", pub["site-a"]),
                                                                       Member("site-b", pub["site-b"])])
    return plan, {n: load_private_key(d / f"{n}.key") for n in names}, pub


def good_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {W: rng.standard_normal((4, 2, 3, 3, 3)).astype(np.float32), B: np.arange(4, dtype=np.float32)}


@pytest.fixture
def good(fed, tmp_path) -> Path:
    plan, keys, _ = fed
    path = tmp_path / "u.fedseg"
    write_artifact(path, manifest={"kind": "update", "round": 1, "signer": "site-a", "parent_sha256": None},
                   tensors=good_tensors(), key=keys["site-a"], plan=plan)
    return path


def reject(path: Path, plan, error: type[Exception], match: str, **kwargs) -> None:
    """Assert read_artifact raises exactly ``error`` (not a subclass) and returns nothing."""
    result = None
    with pytest.raises(ArtifactError) as info:
        result = read_artifact(path, plan, **kwargs)
    assert result is None
    assert type(info.value) is error, f"expected {error.__name__}, got {type(info.value).__name__}: {info.value}"
    assert str(path) in str(info.value)
    assert re.search(match, str(info.value)), str(info.value)


def rewrite(path: Path, edit: Callable[[bytearray], bytes | bytearray]) -> Path:
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(edit(data)))
    return path


def h5(build: Callable[[h5py.File], None]) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver=("v110", "v110")) as f:
        build(f)
    return buffer.getvalue()


def signed(tmp_path: Path, plan, key, payload: bytes, *, signer: str = "site-a", kind: str = "update",
           dtype: str = "float32", **extra) -> Path:
    manifest = {"kind": kind, "round": 1, "signer": signer, "parent_sha256": None, "federation_id": plan.federation_id,
                "plan_sha256": plan.sha256, "payload_sha256": hashlib.sha256(payload).hexdigest(),
                "payload_bytes": len(payload), "dtype": dtype, "format_version": 1, **extra}
    path = tmp_path / "evil.fedseg"
    _write_envelope(path, manifest, payload, key)
    return path


def write_good(f: h5py.File) -> None:
    for name, array in good_tensors().items():
        f.create_dataset(name, data=array)


# ------------------------------------------------------------------------------------------- envelope


def test_helper_builds_acceptable_files(fed, tmp_path):
    """Guard for the tests below: the crafted envelope itself verifies when its payload is sound."""
    plan, keys, _ = fed
    path = signed(tmp_path, plan, keys["site-a"], h5(write_good))
    got = read_artifact(path, plan, spec=SPEC, kind=Kind.UPDATE)
    np.testing.assert_array_equal(got.tensors[B], good_tensors()[B])


def test_empty_file(fed, tmp_path):
    (tmp_path / "e.fedseg").write_bytes(b"")
    reject(tmp_path / "e.fedseg", fed[0], ArtifactError, "empty")


@pytest.mark.parametrize(
    ("where", "cut", "match"),
    [
        ("magic", lambda d, h: 3, "truncated inside the magic"),
        ("length", lambda d, h: 10, "truncated inside the header length"),
        ("header", lambda d, h: 12 + h // 2, "truncated inside the header"),
        ("payload", lambda d, h: 12 + h + 100, r"payload is \d+ bytes, the manifest declares"),
        ("last byte", lambda d, h: len(d) - 1, r"payload is \d+ bytes, the manifest declares"),
    ],
)
def test_truncation(fed, good, where, cut, match):
    header_len = struct.unpack("<I", good.read_bytes()[8:12])[0]
    rewrite(good, lambda d: d[: cut(d, header_len)])
    reject(good, fed[0], ArtifactError, match)


def flip(offset_of: Callable[[bytearray], int], mask: int = 0x01) -> Callable[[bytearray], bytearray]:
    def edit(data: bytearray) -> bytearray:
        data[offset_of(data)] ^= mask
        return data

    return edit


def test_flipped_bit_in_magic(fed, good):
    reject(rewrite(good, flip(lambda d: 0)), fed[0], ArtifactError, "bad magic")


def test_flipped_low_bit_in_header_length(fed, good):
    reject(rewrite(good, flip(lambda d: 8)), fed[0], ArtifactError, "not valid JSON|not canonical")


def test_flipped_high_bit_in_header_length(fed, good):
    reject(rewrite(good, flip(lambda d: 11, 0x80)), fed[0], ArtifactError, "header length")


def test_flipped_bit_in_manifest(fed, good):
    # '"round":1' -> '"round":3': still canonical JSON, so only the signature can catch it.
    reject(rewrite(good, flip(lambda d: d.index(b'"round":1') + 8, 0x02)), fed[0], SignatureError, "does not verify")


def test_flipped_bit_in_signature(fed, good):
    def first_letter_of_signature(d: bytearray) -> int:
        i = d.index(b'"signature":"') + len(b'"signature":"')
        while not chr(d[i]).isalpha():
            i += 1
        return i

    # Swapping a letter's case keeps valid base64 but changes the signature bytes.
    reject(rewrite(good, flip(first_letter_of_signature, 0x20)), fed[0], SignatureError, "does not verify")


def test_flipped_bit_in_payload(fed, good):
    reject(rewrite(good, flip(lambda d: len(d) - 1)), fed[0], ArtifactError, "SHA-256 does not match")


def test_trailing_bytes(fed, good):
    reject(rewrite(good, lambda d: d + b"\x00"), fed[0], ArtifactError, "trailing bytes")


def test_header_over_the_limit(fed, tmp_path):
    big = MAX_HEADER_BYTES + 1
    (tmp_path / "h.fedseg").write_bytes(b"FEDSEG\x00\x01" + struct.pack("<I", big) + b"{" + b" " * big)
    reject(tmp_path / "h.fedseg", fed[0], ArtifactError, "header length")


def test_writer_refuses_header_over_the_limit(fed, tmp_path):
    plan, keys, _ = fed
    with pytest.raises(ArtifactError, match="header is"):
        _write_envelope(tmp_path / "x.fedseg", {"blob": "x" * MAX_HEADER_BYTES}, b"", keys["site-a"])


def test_header_not_canonical(fed, tmp_path, good):
    data = good.read_bytes()
    length = struct.unpack("<I", data[8:12])[0]
    header = data[12 : 12 + length].replace(b'{"key_id"', b'{ "key_id"', 1)
    (tmp_path / "n.fedseg").write_bytes(data[:8] + struct.pack("<I", len(header)) + header + data[12 + length :])
    reject(tmp_path / "n.fedseg", fed[0], ArtifactError, "not canonical")


def test_file_over_the_size_limit_is_refused_before_reading(fed, tmp_path, good):
    reject(good, fed[0], ArtifactError, "the limit is 100", max_bytes=100)
    sparse = tmp_path / "huge.fedseg"
    with open(sparse, "wb") as fh:  # a sparse file: reading it would take minutes, stat takes microseconds
        fh.truncate(DEFAULT_MAX_FILE_BYTES + 1)
    reject(sparse, fed[0], ArtifactError, "the limit is")


def test_pickle_renamed(fed, tmp_path):
    (tmp_path / "p.fedseg").write_bytes(pickle.dumps({W: [1.0, 2.0]}))
    reject(tmp_path / "p.fedseg", fed[0], ArtifactError, "bad magic.*pickle")


def test_bare_hdf5_renamed(fed, tmp_path):
    (tmp_path / "b.fedseg").write_bytes(h5(write_good))
    reject(tmp_path / "b.fedseg", fed[0], ArtifactError, "bad magic.*bare HDF5")


def test_future_format_version(fed, good):
    reject(rewrite(good, flip(lambda d: 7, 0x02)), fed[0], ArtifactError, "format version 3")


# ------------------------------------------------------------------------------------ keys and binding


def test_key_not_in_plan(fed, tmp_path):
    plan, keys, _ = fed
    reject(signed(tmp_path, plan, keys["outsider"], h5(write_good)), plan, SignatureError, "unknown key")


def test_member_key_signing_as_another_member(fed, tmp_path):
    plan, keys, _ = fed
    path = signed(tmp_path, plan, keys["site-b"], h5(write_good), signer="site-a")
    reject(path, plan, SignatureError, "claims signer 'site-a'.*belongs to 'site-b'")


def test_site_signing_a_global(fed, tmp_path):
    plan, keys, _ = fed
    path = signed(tmp_path, plan, keys["site-a"], h5(write_good), kind="global")
    reject(path, plan, SignatureError, "signed by coordinator")


def test_coordinator_signing_an_update(fed, tmp_path):
    plan, keys, _ = fed
    path = signed(tmp_path, plan, keys["coordinator"], h5(write_good), signer="coordinator")
    reject(path, plan, SignatureError, "signed by a member site")


def test_valid_file_against_another_plan_with_same_keys(fed, good):
    plan, _, _ = fed
    other = new_plan("fed", plan.coordinator, list(plan.sites))  # fresh federation id, same members
    reject(good, other, BindingError, "made for federation")


def test_valid_file_against_a_plan_with_other_keys(fed, good):
    plan, _, pub = fed
    other = new_plan("fed", Member("coordinator", pub["other-coord"]), [Member("site-a", pub["outsider"])])
    reject(good, other, SignatureError, "unknown key")


def test_same_federation_but_edited_plan(fed, good):
    plan, _, _ = fed
    reject(good, plan.with_settings(rounds=plan.rounds + 1), BindingError, "plan")


def test_wrong_kind(fed, good):
    reject(good, fed[0], BindingError, "expected a global artifact", kind=Kind.GLOBAL)


# ------------------------------------------------------------------- signed but hostile HDF5 payloads


def hostile(build: Callable[[h5py.File], None], **kw):
    return pytest.param(build, kw, id=build.__name__)


def soft_link(f):
    f.create_dataset(W, data=good_tensors()[W])
    f[B] = h5py.SoftLink("/" + W)


def external_link(f):
    f.create_dataset(W, data=good_tensors()[W])
    f[B] = h5py.ExternalLink("/etc/passwd", "/x")


def link_in_group(f):
    f.create_dataset(B, data=good_tensors()[B])
    f.create_group("enc").create_dataset("0.conv.weight", data=good_tensors()[W])


def external_storage(f):
    f.create_dataset(B, data=good_tensors()[B])
    f.create_dataset(W, shape=(4, 2, 3, 3, 3), dtype="<f4", external=[("/etc/passwd", 0, 4 * 216)])


def virtual_dataset(f):
    f.create_dataset(B, data=good_tensors()[B])
    layout = h5py.VirtualLayout(shape=(4, 2, 3, 3, 3), dtype="<f4")
    layout[...] = h5py.VirtualSource("/tmp/elsewhere.h5", "w", shape=(4, 2, 3, 3, 3))
    f.create_virtual_dataset(W, layout)


def extra_tensor(f):
    write_good(f)
    f.create_dataset("backdoor", data=np.ones(3, np.float32))


def missing_tensor(f):
    f.create_dataset(W, data=good_tensors()[W])


def wrong_shape(f):
    f.create_dataset(W, data=good_tensors()[W])
    f.create_dataset(B, data=np.zeros(5, np.float32))


def wrong_dtype(f):
    f.create_dataset(W, data=good_tensors()[W])
    f.create_dataset(B, data=np.zeros(4, np.float64))


def big_endian(f):
    f.create_dataset(W, data=good_tensors()[W])
    f.create_dataset(B, data=np.zeros(4, ">f4"))


def integer_dtype(f):
    f.create_dataset(W, data=good_tensors()[W])
    f.create_dataset(B, data=np.zeros(4, np.int32))


def nan_value(f):
    f.create_dataset(W, data=good_tensors()[W])
    f.create_dataset(B, data=np.array([0, np.nan, 1, 2], np.float32))


def inf_value(f):
    w = good_tensors()[W]
    w[1, 1, 1, 1, 1] = -np.inf
    f.create_dataset(W, data=w)
    f.create_dataset(B, data=good_tensors()[B])


def chunked_compressed(f):
    f.create_dataset(W, data=np.zeros((4, 2, 3, 3, 3), np.float32), chunks=(1, 2, 3, 3, 3), compression="gzip")
    f.create_dataset(B, data=good_tensors()[B])


def unallocated_storage(f):
    # Contiguous but never written: it stores 0 bytes while its shape declares 216 floats.
    f.create_dataset(W, shape=(4, 2, 3, 3, 3), dtype="<f4")
    f.create_dataset(B, data=good_tensors()[B])


def shared_storage(f):
    f.create_dataset(W, data=good_tensors()[W])
    f.create_dataset(B, data=good_tensors()[B])
    f["enc.1.conv.bias"] = f[B]  # a second hard link to the same bytes


def dataset_attribute(f):
    write_good(f)
    f[B].attrs["note"] = "hidden"


def root_attribute(f):
    write_good(f)
    f.attrs["note"] = "hidden"


HOSTILE = [
    (soft_link, "soft link"),
    (external_link, "external link"),
    (link_in_group, "is a group"),
    (external_storage, "external storage"),
    (virtual_dataset, "virtual dataset"),
    (extra_tensor, "unexpected tensor 'backdoor'"),
    (missing_tensor, f"tensor '{B}' is missing"),
    (wrong_shape, rf"tensor '{B}' has shape \[5\]; the model expects \[4\]"),
    (wrong_dtype, f"tensor '{B}' has dtype float64"),
    (big_endian, f"tensor '{B}' has dtype >f4"),
    (integer_dtype, f"tensor '{B}' has dtype int32"),
    (nan_value, f"tensor '{B}' holds 1 NaN/Inf"),
    (inf_value, f"tensor '{W}' holds 1 NaN/Inf"),
    (chunked_compressed, f"tensor '{W}' is chunked"),
    (unallocated_storage, f"tensor '{W}' stores 0 bytes"),
    (shared_storage, "overlap"),
    (dataset_attribute, f"tensor '{B}' carries attributes"),
    (root_attribute, "root carries attributes"),
]


@pytest.mark.parametrize(("build", "match"), HOSTILE, ids=[b.__name__ for b, _ in HOSTILE])
def test_signed_hostile_payload(fed, tmp_path, build, match):
    plan, keys, _ = fed
    spec = {**SPEC, "enc.1.conv.bias": TensorSpec((4,))} if build is shared_storage else SPEC
    reject(signed(tmp_path, plan, keys["site-a"], h5(build)), plan, ArtifactError, match, spec=spec)


@pytest.mark.parametrize("build", [soft_link, external_link, link_in_group, external_storage, virtual_dataset,
                                   chunked_compressed, unallocated_storage])
def test_structural_checks_hold_without_a_spec(fed, tmp_path, build):
    """``inspect`` reads without a spec; unsafe structure is still refused."""
    plan, keys, _ = fed
    with pytest.raises(ArtifactError):
        read_artifact(signed(tmp_path, plan, keys["site-a"], h5(build)), plan)


def test_manifest_tensor_table_must_match_the_payload(fed, tmp_path):
    plan, keys, _ = fed
    path = signed(tmp_path, plan, keys["site-a"], h5(write_good), tensors={W: [4, 2, 3, 3, 3], B: [3]})
    reject(path, plan, ArtifactError, r"tensor 'enc.0.conv.bias' has shape \[4\]; the manifest lists \[3\]")


def test_float16_payload_declared_float32(fed, tmp_path):
    plan, keys, _ = fed
    payload = h5(lambda f: [f.create_dataset(n, data=a.astype(np.float16)) for n, a in good_tensors().items()])
    reject(signed(tmp_path, plan, keys["site-a"], payload), plan, ArtifactError, "has dtype float16", spec=SPEC)


def test_signed_garbage_payload(fed, tmp_path):
    plan, keys, _ = fed
    path = signed(tmp_path, plan, keys["site-a"], b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    reject(path, plan, ArtifactError, "not a valid tensor HDF5 file")


def test_signed_manifest_with_bad_fields(fed, tmp_path):
    plan, keys, _ = fed
    reject(signed(tmp_path, plan, keys["site-a"], h5(write_good), dtype="float64"), plan, ArtifactError,
           "manifest dtype")
    reject(signed(tmp_path, plan, keys["site-a"], h5(write_good), format_version=2), plan, ArtifactError,
           "format_version")


def test_payload_with_a_user_block(fed, tmp_path):
    plan, keys, _ = fed
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver=("v110", "v110"), userblock_size=512) as f:
        write_good(f)
    path = signed(tmp_path, plan, keys["site-a"], buffer.getvalue())
    reject(path, plan, ArtifactError, "512-byte user block", spec=SPEC)
