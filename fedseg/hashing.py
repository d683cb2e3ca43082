"""Canonical JSON and SHA-256 digests shared by plans, artifacts, datasets and the ledger."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["canonical_json", "sha256_bytes", "sha256_file", "sha256_json"]

_CHUNK = 1 << 20


def canonical_json(obj: Any) -> bytes:
    """Serialize ``obj`` as canonical JSON: UTF-8, sorted keys, no spaces, no NaN/Infinity."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def sha256_bytes(data: bytes | memoryview) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_json(obj: Any) -> str:
    """Return the hex SHA-256 of the canonical JSON form of ``obj``."""
    return sha256_bytes(canonical_json(obj))


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
