"""Run ITK filters whose result depends on the number of threads with one thread only.

Some ITK filters split their sums by thread and add the partial sums in an order that depends on the
thread count or on scheduling: the v4 registration metrics (Mattes MI accumulates one joint histogram
under a lock), and N4's B-spline fitting (per-thread lattices). Their results then differ in the last
bits from run to run and between ``--jobs`` settings, and registration amplifies those bits to ~1e-3 in
the resampled intensities. Inside :func:`single_threaded` every filter created uses one thread, so the
same input gives the same bytes whatever the machine's or the worker's thread count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["single_threaded"]


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Set SimpleITK's global default number of threads to 1 for the duration (restored after).

    The setting is process-wide: a caller that runs work in several Python threads enters it once, before
    starting them (nested entries then save and restore 1, so no thread's exit undoes it for another).
    """
    import SimpleITK as sitk

    saved = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(saved)
