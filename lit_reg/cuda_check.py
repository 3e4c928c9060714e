"""Keep Lightning's NVML-based CUDA check from costing every optimizer step on machines without NVML.

Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that ``torch.cuda.is_available()`` asks
NVML instead of initializing CUDA (which would make a later ``fork`` unsafe). torch's Adam, AdamW,
RMSprop, ... call ``torch.cuda.is_available()`` in every ``step()``; where ``libnvidia-ml`` is missing
(every CPU-only machine) that call tries to load the library again each time, fails, and falls back to
the default check, ``cudaGetDeviceCount``: about 0.1 ms per optimizer step for nothing, since the answer
and the fallback are exactly what the default check gives.
"""

from __future__ import annotations

import ctypes
import os

NVML_CHECK_VARIABLE = "PYTORCH_NVML_BASED_CUDA_CHECK"
NVML_LIBRARY = "libnvidia-ml.so.1"  # the name torch loads, on every platform


def nvml_loadable(library: str = NVML_LIBRARY) -> bool:
    """Whether the NVML library torch's NVML-based check loads can be loaded here."""
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def drop_unusable_nvml_check() -> bool:
    """Unset ``PYTORCH_NVML_BASED_CUDA_CHECK`` when NVML cannot be loaded; return whether it was unset.

    Without NVML the variable changes no answer of ``torch.cuda.is_available()`` (torch falls back to
    the default check), only its cost. Where NVML loads, nothing is changed.

    Example:
        >>> import torch
        >>> before = torch.cuda.is_available()
        >>> _ = drop_unusable_nvml_check()
        >>> torch.cuda.is_available() == before
        True
    """
    if os.environ.get(NVML_CHECK_VARIABLE) != "1" or nvml_loadable():
        return False
    del os.environ[NVML_CHECK_VARIABLE]
    return True
