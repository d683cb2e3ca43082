"""Ed25519 member keys: generate, store, load, sign and verify.

Private keys are PKCS#8 PEM files with mode 0600, encrypted with the passphrase when one is given.
Public keys travel as one line of text, ``fedseg-ed25519 <base64 of the 32 raw bytes> [comment]``, so they
can be pasted into plan.toml or an e-mail. A key id is derived from the public key bytes alone
(``ed25519:`` + the first 32 hex digits of SHA-256 over a domain tag and the raw key), so it names the key,
not the member that holds it. No function here logs or formats private key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from fedseg.errors import KeyFileError
from fedseg.fsutil import atomic_write_bytes

__all__ = [
    "PUBLIC_PREFIX",
    "PrivateKey",
    "PublicKey",
    "generate_keypair",
    "key_id_of",
    "load_private_key",
    "load_public_key",
    "parse_public_key",
]

PUBLIC_PREFIX = "fedseg-ed25519"
_KEY_ID_TAG = b"fedseg-key-id-v1\x00"


def key_id_of(raw_public: bytes) -> str:
    """Return the key id of 32 raw Ed25519 public key bytes."""
    return "ed25519:" + hashlib.sha256(_KEY_ID_TAG + raw_public).hexdigest()[:32]


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key (32 raw bytes) with its derived id."""

    raw: bytes

    @property
    def key_id(self) -> str:
        return key_id_of(self.raw)

    def to_text(self, comment: str = "") -> str:
        """Return the one-line text form."""
        line = f"{PUBLIC_PREFIX} {base64.b64encode(self.raw).decode('ascii')}"
        return f"{line} {comment}".rstrip()

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Return whether ``signature`` is a valid Ed25519 signature of ``message`` by this key."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class PrivateKey:
    """An Ed25519 signing key. Its ``repr`` and ``str`` never show key material."""

    __slots__ = ("_key", "source")

    def __init__(self, key: object, source: str = "<memory>") -> None:
        self._key = key
        self.source = source

    def __repr__(self) -> str:
        return f"PrivateKey(key_id={self.public_key.key_id!r}, source={self.source!r})"

    __str__ = __repr__

    @property
    def public_key(self) -> PublicKey:
        from cryptography.hazmat.primitives import serialization

        raw = self._key.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return PublicKey(raw)

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)  # type: ignore[attr-defined]

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """Return the PKCS#8 PEM form, encrypted with ``passphrase`` when given."""
        from cryptography.hazmat.primitives import serialization

        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return self._key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def generate_keypair(name: str, out_dir: Path, *, passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Create ``NAME.key`` (PKCS#8 PEM, mode 0600) and ``NAME.pub`` in ``out_dir``; refuse to overwrite."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise KeyFileError(f"{out_dir}: expected a folder for the key files, found a file")
    private_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path}: a key file already exists; refusing to overwrite it")
    key = PrivateKey(Ed25519PrivateKey.generate(), source=str(private_path))
    atomic_write_bytes(private_path, key.to_pem(passphrase), mode=0o600)
    atomic_write_bytes(public_path, (key.public_key.to_text(name) + "\n").encode("ascii"), mode=0o644)
    return private_path, public_path


def parse_public_key(text: str, *, where: str) -> PublicKey:
    """Parse the one-line public key form; ``where`` names its origin in errors."""
    parts = text.strip().split()
    if len(parts) < 2 or parts[0] != PUBLIC_PREFIX:
        raise KeyFileError(f"{where}: expected a public key line '{PUBLIC_PREFIX} <base64> [comment]'")
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{where}: the public key is not valid base64") from None
    if len(raw) != 32:
        raise KeyFileError(f"{where}: expected a 32-byte Ed25519 public key, got {len(raw)} bytes")
    return PublicKey(raw)


def load_public_key(path: Path) -> PublicKey:
    """Read a ``.pub`` file, or derive the public key from a private key file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({exc.strerror})") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        if b"ENCRYPTED" in data:
            raise KeyFileError(f"{path}: this is an encrypted private key; give the .pub file instead")
        return load_private_key(path).public_key
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: expected a one-line text public key, found binary data") from None
    return parse_public_key(text, where=str(path))


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """Load a PKCS#8 PEM Ed25519 private key; wrong passphrase or malformed file is a KeyFileError."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({exc.strerror})") from None
    if not data.lstrip().startswith(b"-----BEGIN"):
        raise KeyFileError(f"{path}: expected a PKCS#8 PEM private key ('-----BEGIN PRIVATE KEY-----')")
    encrypted = b"ENCRYPTED" in data
    if encrypted and not passphrase:
        raise KeyFileError(f"{path}: the private key is encrypted; give its passphrase (--passphrase-env VAR)")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except (ValueError, TypeError) as exc:
        reason = "wrong passphrase or corrupt key" if encrypted else "malformed PEM"
        raise KeyFileError(f"{path}: cannot load the private key ({reason})") from exc.__class__(reason)
    except Exception:  # cryptography raises UnsupportedAlgorithm and friends for odd keys
        raise KeyFileError(f"{path}: cannot load the private key (unsupported key type)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 private key, found {type(key).__name__}")
    return PrivateKey(key, source=str(path))
