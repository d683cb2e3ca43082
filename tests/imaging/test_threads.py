"""single_threaded: one ITK thread inside, the setting restored after (also on error)."""

from __future__ import annotations

import pytest
import SimpleITK as sitk

from fedseg.imaging.threads import single_threaded


def test_one_thread_inside_and_restored_after() -> None:
    saved = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(3)
    try:
        with single_threaded():
            assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 3
        with pytest.raises(RuntimeError), single_threaded():
            raise RuntimeError("boom")
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 3
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(saved)
