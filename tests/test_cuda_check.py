"""The NVML-based CUDA check Lightning turns on is dropped only where NVML cannot be loaded."""

import ctypes
import ctypes.util
import os

import pytest
import torch

from lit_reg import cuda_check
from lit_reg.cuda_check import NVML_CHECK_VARIABLE, drop_unusable_nvml_check, nvml_loadable


def test_dropped_when_nvml_cannot_be_loaded(monkeypatch):
    monkeypatch.setenv(NVML_CHECK_VARIABLE, "1")
    monkeypatch.setattr(cuda_check, "nvml_loadable", lambda: False)
    assert drop_unusable_nvml_check() is True
    assert NVML_CHECK_VARIABLE not in os.environ


@pytest.mark.parametrize(("value", "loadable"), [("1", True), ("0", False), (None, False)])
def test_kept_where_nvml_loads_or_the_check_is_not_on(monkeypatch, value, loadable):
    if value is None:
        monkeypatch.delenv(NVML_CHECK_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(NVML_CHECK_VARIABLE, value)
    monkeypatch.setattr(cuda_check, "nvml_loadable", lambda: loadable)
    assert drop_unusable_nvml_check() is False
    assert os.environ.get(NVML_CHECK_VARIABLE) == value


def test_missing_library_is_not_loadable():
    assert nvml_loadable("libno-such-library-for-lit-reg.so") is False


def test_the_answer_of_cuda_is_available_does_not_change(monkeypatch):
    monkeypatch.setenv(NVML_CHECK_VARIABLE, "1")
    with_nvml_check = torch.cuda.is_available()
    drop_unusable_nvml_check()
    assert torch.cuda.is_available() == with_nvml_check


def test_a_library_that_loads_here_is_loadable():
    library = ctypes.util.find_library("c")  # the C library, present on every machine that runs Python
    assert library is not None and nvml_loadable(library) is True


@pytest.mark.parametrize(("loads", "dropped"), [(False, True), (True, False)], ids=["nvml_missing", "nvml_loads"])
def test_the_check_loads_the_library_torch_loads(monkeypatch, loads, dropped):
    asked: list[str] = []

    def fake_cdll(name: str, *args, **kwargs) -> object:
        asked.append(name)
        if not loads:
            raise OSError(f"{name}: cannot open shared object file")
        return object()

    monkeypatch.setattr(ctypes, "CDLL", fake_cdll)
    monkeypatch.setenv(NVML_CHECK_VARIABLE, "1")
    assert drop_unusable_nvml_check() is dropped
    assert asked == ["libnvidia-ml.so.1"]  # the name torch.cuda's NVML-based check opens
    assert (NVML_CHECK_VARIABLE in os.environ) is not dropped
