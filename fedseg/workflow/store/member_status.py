"""A member's last error, left on the store as ``status/<member>.json`` so `fedseg status` can show it.

Best effort: the error being reported may be the store itself failing, so writing the status never
raises. The text is scrubbed of URL credentials; it never holds key material or patient data (fedseg's
error messages name files, rounds and tensors only).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from fedseg.workflow.store.backend import Store
from fedseg.workflow.store.layout import status_key
from fedseg.workflow.store.location import redact

__all__ = ["record_error"]

log = logging.getLogger(__name__)


def record_error(store: Store, member: str, round_: int | None, error: BaseException | str) -> None:
    """Write ``status/<member>.json`` with the time, the round and the one-line error (never raises)."""
    body: dict[str, Any] = {
        "member": member, "round": round_, "error": redact(str(error)).splitlines()[0][:2000] if str(error) else "",
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    try:
        store.put(status_key(member), (json.dumps(body, sort_keys=True) + "\n").encode())
    except Exception as exc:  # the store may be what failed; the log still has the error
        log.warning("%s: could not leave the error on the store (%s)", member, redact(str(exc)))
