"""Ed25519 member keys: files, modes, ids, passphrases and malformed input."""

from __future__ import annotations

import base64
import stat

import pytest

from fedseg.errors import KeyFileError
from fedseg.federation.keys import (
    PUBLIC_PREFIX,
    PublicKey,
    generate_keypair,
    key_id_of,
    load_private_key,
    load_public_key,
    parse_public_key,
)


def test_generate_writes_private_0600_and_public_line(tmp_path):
    private, public = generate_keypair("site-a", tmp_path / "k")
    assert private.name == "site-a.key" and public.name == "site-a.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    line = public.read_text().strip()
    assert line.startswith(PUBLIC_PREFIX + " ") and line.endswith(" site-a")
    assert load_public_key(public) == load_public_key(private) == load_private_key(private).public_key


def test_refuses_to_overwrite(tmp_path):
    private, _ = generate_keypair("site-a", tmp_path)
    before = private.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keypair("site-a", tmp_path)
    assert private.read_bytes() == before


def test_out_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(KeyFileError, match="expected a folder"):
        generate_keypair("a", tmp_path / "f")


def test_key_id_depends_only_on_public_bytes(tmp_path):
    generate_keypair("a", tmp_path)
    generate_keypair("b", tmp_path)
    a, b = load_public_key(tmp_path / "a.pub"), load_public_key(tmp_path / "b.pub")
    assert a.key_id != b.key_id
    assert a.key_id == key_id_of(a.raw) == PublicKey(a.raw).key_id
    assert a.key_id.startswith("ed25519:") and len(a.key_id) == len("ed25519:") + 32
    # The comment (member name) is not part of the id.
    assert parse_public_key(a.to_text("renamed"), where="x").key_id == a.key_id


def test_sign_and_verify(tmp_path):
    generate_keypair("a", tmp_path)
    key = load_private_key(tmp_path / "a.key")
    sig = key.sign(b"message")
    assert len(sig) == 64
    assert key.public_key.verify(sig, b"message")
    assert not key.public_key.verify(sig, b"messagE")
    assert not key.public_key.verify(b"\x00" * 64, b"message")
    assert not key.public_key.verify(b"short", b"message")


def test_repr_never_shows_key_material(tmp_path):
    generate_keypair("a", tmp_path)
    key = load_private_key(tmp_path / "a.key")
    pem_body = "".join(key.to_pem().decode().splitlines()[1:-1])
    for text in (repr(key), str(key)):
        assert key.key_id in text and pem_body not in text and "PRIVATE" not in text


def test_passphrase(tmp_path):
    private, public = generate_keypair("a", tmp_path, passphrase=b"correct horse")
    assert b"ENCRYPTED" in private.read_bytes()
    assert load_private_key(private, b"correct horse").public_key == load_public_key(public)
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_private_key(private, b"wrong")
    with pytest.raises(KeyFileError, match="encrypted; give its passphrase"):
        load_private_key(private)
    with pytest.raises(KeyFileError, match="encrypted private key; give the .pub"):
        load_public_key(private)


@pytest.mark.parametrize(("content", "match"), [
    (b"", "expected a PKCS#8 PEM"),
    (b"hello", "expected a PKCS#8 PEM"),
    (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "malformed PEM"),
])
def test_malformed_private_key(tmp_path, content, match):
    (tmp_path / "x.key").write_bytes(content)
    with pytest.raises(KeyFileError, match=match):
        load_private_key(tmp_path / "x.key")


def test_non_ed25519_private_key(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "ec.key").write_bytes(pem)
    with pytest.raises(KeyFileError, match="expected an Ed25519 private key"):
        load_private_key(tmp_path / "ec.key")


@pytest.mark.parametrize(("text", "match"), [
    ("ssh-ed25519 AAAA", "expected a public key line"),
    (PUBLIC_PREFIX, "expected a public key line"),
    (f"{PUBLIC_PREFIX} !!!notbase64", "not valid base64"),
    (f"{PUBLIC_PREFIX} {base64.b64encode(b'x' * 31).decode()}", "32-byte"),
])
def test_malformed_public_key(text, match):
    with pytest.raises(KeyFileError, match=match):
        parse_public_key(text, where="here")


def test_missing_and_binary_public_key_files(tmp_path):
    with pytest.raises(KeyFileError, match="cannot read"):
        load_public_key(tmp_path / "nope.pub")
    (tmp_path / "bin.pub").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(KeyFileError, match="binary data"):
        load_public_key(tmp_path / "bin.pub")
