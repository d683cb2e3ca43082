"""Publish a file on the store exactly once: create it, or find the very same bytes already there.

The coordinator publishes globals, plan versions and the federation's result with "create if absent".
When the key exists (an earlier run of this loop published it before a crash) the store's bytes must
equal the local file's; other bytes mean a second coordinator, another work folder or a re-signed file,
and publishing on would fork the federation, so :class:`PublishConflict` stops the loop.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fedseg.errors import StoreError
from fedseg.hashing import sha256_file
from fedseg.workflow.store.backend import Store

__all__ = ["PublishConflict", "create_or_same"]


class PublishConflict(StoreError):
    """The store already holds other bytes under a key this coordinator publishes (a global, plan, result)."""


def create_or_same(store: Store, key: str, path: Path, what: str) -> bool:
    """Create ``key`` from ``path`` (True) unless the store holds the same bytes (False); PublishConflict if other."""
    path = Path(path)
    if store.create(key, path):
        return True
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".published-check-") as scratch:
        theirs = Path(scratch) / path.name
        store.get(key, theirs)
        same = theirs.exists() and sha256_file(theirs) == sha256_file(path)
    if not same:
        raise PublishConflict(f"{store.url}/{key}: another {what} is already published; a second coordinator (or "
                              "another work folder, or a re-signed file) publishes on this store; stopping rather "
                              "than fork the federation")
    return False
