"""The coordinator's server-optimizer state (FedAvgM momentum, FedAdam/FedYogi/FedAdagrad moments).

Kept in one HDF5 file beside the ledger (never pickle), one group per round::

    /round-000003  attrs: global_sha256 (the global this state produced), strategy
        /m/<tensor>, /v/<tensor>   float32 arrays

The state that produced global round ``r`` is read to aggregate round ``r + 1``; the new file keeps
round ``r`` and ``r + 1`` only, so re-running round ``r + 1`` finds its input state again. The file is
rewritten atomically (temp file, fsync, rename). Tensor names are escaped so ``/`` cannot create groups.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.errors import StateError
from fedseg.fsutil import atomic_path

__all__ = ["StateReader", "StateWriter", "open_state_writer", "read_state", "round_group"]

log = logging.getLogger(__name__)


def round_group(round_: int) -> str:
    """Return the group name of a round."""
    return f"round-{round_:06d}"


def _escape(name: str) -> str:
    return name.replace("%", "%25").replace("/", "%2F")


class StateReader:
    """Per-tensor access to the state of one round (None slots when starting fresh)."""

    def __init__(self, group: Any | None, slots: tuple[str, ...]) -> None:
        self._group = group
        self._slots = slots

    def get(self, name: str) -> dict[str, np.ndarray] | None:
        """Return {slot: array} of tensor ``name``, or None when the state starts fresh."""
        if self._group is None:
            return None
        try:
            return {slot: np.asarray(self._group[slot][_escape(name)][()]) for slot in self._slots}
        except KeyError:
            raise StateError(f"server state lacks slot/tensor for {name!r}; it belongs to another model") from None


@contextmanager
def read_state(path: Path, round_: int, *, global_sha256: str, strategy: str,
               slots: tuple[str, ...]) -> Iterator[StateReader]:
    """Yield the state that produced global ``round_`` (digest ``global_sha256``), or a fresh one.

    Fresh state is used when the file or the round's group is absent (first round, or the strategy was
    just switched on) and when the stored strategy differs; a group whose digest names another global
    raises StateError (the state belongs to a different history).
    """
    import h5py

    if not slots or not Path(path).exists():
        yield StateReader(None, slots)
        return
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise StateError(f"{path}: the server state file cannot be read ({exc})") from None
    with f:
        group = f.get(round_group(round_))
        if group is None:
            log.warning("%s has no state for round %d; the server optimizer starts fresh", path, round_)
            yield StateReader(None, slots)
            return
        if group.attrs.get("global_sha256") != global_sha256:
            raise StateError(f"{path}: the state of round {round_} belongs to global "
                             f"{str(group.attrs.get('global_sha256'))[:12]}, not the current {global_sha256[:12]}")
        if group.attrs.get("strategy") != strategy:
            log.warning("%s: round %d state is for %s, not %s; starting fresh", path, round_,
                        group.attrs.get("strategy"), strategy)
            yield StateReader(None, slots)
            return
        yield StateReader(group, slots)


class StateWriter:
    """Write the new round's state tensor by tensor into the (temporary) state file."""

    def __init__(self, group: Any) -> None:
        self._group = group

    def put(self, name: str, state: dict[str, np.ndarray]) -> None:
        for slot, array in state.items():
            sub = self._group.require_group(slot)
            sub.create_dataset(_escape(name), data=np.asarray(array, dtype=np.float32), track_times=False)


@contextmanager
def open_state_writer(path: Path, round_: int, *, keep_round: int, global_sha256_of: dict[str, str],
                      strategy: str) -> Iterator[StateWriter]:
    """Yield a writer for round ``round_``; on success the file is atomically replaced.

    The previous file's group ``keep_round`` is copied over. ``global_sha256_of["digest"]`` must be set
    by the caller before the block ends (the digest is known only once the global is written).
    """
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver=("v110", "v110")) as out:
            if path.exists():
                with h5py.File(path, "r") as old:
                    if round_group(keep_round) in old:
                        old.copy(old[round_group(keep_round)], out, name=round_group(keep_round))
            group = out.create_group(round_group(round_))
            yield StateWriter(group)
            group.attrs["global_sha256"] = global_sha256_of["digest"]
            group.attrs["strategy"] = strategy
