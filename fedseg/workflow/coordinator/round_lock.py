"""One aggregation at a time per coordinator folder, and the leftovers of killed runs cleaned under that lock.

``aggregate`` writes in two folders (often the same one): the output's (the next global, written as a
temp file and renamed; its ``.fedseg-scratch-*`` folder) and the ledger's (``ledger.jsonl`` and its
head, ``server-state.h5``, each replaced through a temp file). A run killed with ``kill -9`` leaves those
temp files behind, and nothing else would ever remove them. So each run first takes the lock of each of
its folders (:func:`fedseg.fsutil.folder_lock`, never waiting: a second run fails with LockError and
touches nothing), then removes the leftovers of earlier runs there — only aggregate's own kinds of temp
file (:data:`OUTPUT_LEFTOVERS`, :data:`LEDGER_LEFTOVERS`), so a site's update being written into a
shared folder, or any other file, is never touched.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fedseg.fsutil import folder_lock, refuse_output_overlap, remove_stale_temps
from fedseg.workflow.coordinator.round_write import STATE_FILE

__all__ = ["LOCK_NAME", "hold_round_folders", "holding_round_folders", "leftover_patterns", "refuse_round_overlaps"]

log = logging.getLogger(__name__)

LOCK_NAME = ".fedseg-aggregate.lock"
_SCRATCH = r"\.fedseg-scratch-[A-Za-z0-9_]+"
# A global's temp: ``.<name>.<random>.tmp``, and the writer's own ``..<name>.<random>.tmp.<random>.tmp``,
# for the default global names and this run's --out name (an earlier run's custom name is left alone).
_GLOBAL_TEMP = r"\.{{1,2}}(?:global-r\d+\.fedseg|{out})\..+\.tmp"
_LEDGER_TEMP = r"\.(?:{ledger}|{ledger}\.head|{state})\.[^/]+\.tmp"


def leftover_patterns(out: Path, ledger_path: Path) -> dict[Path, re.Pattern[str]]:
    """Return, per folder aggregate writes in, the pattern of its own temp files there."""
    kinds: dict[Path, list[str]] = {}  # resolved: the same folder spelled twice is locked once
    kinds.setdefault(Path(out).parent.resolve(), []).extend(
        [_SCRATCH, _GLOBAL_TEMP.format(out=re.escape(Path(out).name))])
    kinds.setdefault(Path(ledger_path).parent.resolve(), []).append(
        _LEDGER_TEMP.format(ledger=re.escape(Path(ledger_path).name), state=re.escape(STATE_FILE)))
    return {folder: re.compile("|".join(f"(?:{k})" for k in ks)) for folder, ks in kinds.items()}


def refuse_round_overlaps(out: Path, ledger_path: Path, *, plan: Path | None, global_: Path,
                          updates: Sequence[Path], key: str | None) -> None:
    """Refuse an --out or --ledger that is the plan, the current global, an update, the key (or each other)."""
    inputs: dict[str, Path | str | None] = {"plan": plan, "current global": global_, "coordinator key": key}
    inputs.update({f"update {Path(u).name}": u for u in updates})
    refuse_output_overlap(ledger_path, inputs, what="--ledger")
    head = ledger_path.with_name(ledger_path.name + ".head")
    refuse_output_overlap(out, dict(inputs, ledger=ledger_path, **{"ledger head": head},
                                    **{"server state": ledger_path.parent / STATE_FILE}))


@contextlib.contextmanager
def hold_round_folders(out: Path, ledger_path: Path) -> Iterator[None]:
    """Lock the output's and the ledger's folders for the block, after removing earlier runs' leftovers."""
    patterns = leftover_patterns(out, ledger_path)
    with contextlib.ExitStack() as stack:
        for folder in sorted(patterns):  # one order: no two runs deadlock
            stack.enter_context(folder_lock(folder, LOCK_NAME, holder="aggregate"))
        for folder, pattern in patterns.items():
            removed = remove_stale_temps(folder, pattern)
            if removed:
                log.info("%s: removed %d temp file(s) left by an interrupted aggregate", folder, removed)
        yield


F = TypeVar("F", bound=Callable[..., Any])


def holding_round_folders(default_ledger: Callable[[Path], Path]) -> Callable[[F], F]:
    """Decorate a keyword-only ``(out=, ledger_path=, dry_run=, ...)`` round function to run under the lock.

    A dry run writes nothing in the folders (its scratch goes to the system temp folder), so it neither
    locks nor cleans.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def run(**kwargs: Any) -> Any:
            if kwargs.get("dry_run"):
                return fn(**kwargs)
            out = Path(kwargs["out"])
            ledger = kwargs.get("ledger_path")
            with hold_round_folders(out, Path(ledger) if ledger else default_ledger(out)):
                return fn(**kwargs)

        return run  # type: ignore[return-value]

    return decorate
