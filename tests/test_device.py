"""Device resolution: the four accepted spellings, absent CUDA, out-of-range indices and bad strings."""

from __future__ import annotations

import pytest
import torch

from fedseg.device import check_device_name, resolve_device
from fedseg.errors import ConfigError, DeviceError


def _cuda(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Pretend torch sees ``count`` CUDA devices (0: none)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_cpu_and_auto_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _cuda(monkeypatch, 0)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_and_cuda_with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _cuda(monkeypatch, 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_asked_but_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    _cuda(monkeypatch, 0)
    for name in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(DeviceError) as info:
            resolve_device(name)
        message = str(info.value)
        assert f"--device '{name}'" in message  # what was asked
        assert "only the CPU" in message  # what is here
        assert "use --device cpu" in message  # the fix


def test_cuda_index_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    _cuda(monkeypatch, 2)
    with pytest.raises(DeviceError, match=r"no CUDA device 2; available here: cpu and 2 CUDA device\(s\): "
                                          r"cuda:0, cuda:1; use --device cuda:0 … cuda:1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["tpu", "", "CPU", "gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:1.0", " cpu",
                                  "cuda 0", "mps", "auto:0", "cuda:0:1"])
def test_bad_strings(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _cuda(monkeypatch, 1)
    with pytest.raises(DeviceError, match=r"expected one of auto \| cpu \| cuda \| cuda:N"):
        resolve_device(name)
    with pytest.raises(DeviceError):
        check_device_name(name)


def test_check_is_spelling_only_and_the_error_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _cuda(monkeypatch, 0)
    assert check_device_name("cuda:7") == "cuda:7"  # whether it exists is decided when it is used
    assert issubclass(DeviceError, ConfigError)
