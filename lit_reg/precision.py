"""``precision: auto``: bf16 mixed precision where the hardware runs bfloat16 natively, full precision elsewhere.

Lightning's ``Trainer`` takes ``precision="bf16-mixed"`` (autocast to bfloat16 on CPU and CUDA; the weights, the
optimizer state, the losses and the metrics stay float32) but has no ``auto`` setting. :func:`auto_precision` picks
one from the hardware found at run time:

- a CUDA device that runs bf16 natively (``torch.cuda.is_bf16_supported(including_emulation=False)``: Ampere and
  later) → ``"bf16-mixed"``;
- a CPU with AVX512-BF16 or AMX (the ``avx512_bf16`` / ``amx_bf16`` flags of ``/proc/cpuinfo``: Intel Cooper Lake,
  Sapphire Rapids and later, AMD Zen 4 and later) → ``"bf16-mixed"``;
- anything else (older CPUs, where bf16 is emulated and slower than fp32; Apple MPS; no ``/proc/cpuinfo``) →
  ``"32-true"``.

It is opt-in, never the default: the same config then gives the same numbers on every machine. Turn it on with
``--trainer.precision auto`` (or ``trainer: {precision: auto}`` in a YAML config; the ``lit-reg`` CLI resolves it
before it builds the Trainer and the run's ``config.yaml`` records the precision used), or in a script::

    trainer = pl.Trainer(precision=auto_precision())
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import torch
from lightning_fabric.plugins.precision.precision import (
    _PRECISION_INPUT_INT,
    _PRECISION_INPUT_STR,
    _PRECISION_INPUT_STR_ALIAS,
)

AUTO = "auto"
BF16 = "bf16-mixed"
FP32 = "32-true"
CPUINFO = "/proc/cpuinfo"
#: ``/proc/cpuinfo`` flags of x86 CPUs that compute in bfloat16 natively (AVX512-BF16 dot products, AMX tiles)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: every ``precision`` Lightning's Trainer takes, then ``"auto"``
PRECISION_CHOICES: tuple[Any, ...] = (*get_args(_PRECISION_INPUT_INT), *get_args(_PRECISION_INPUT_STR),
                                      *get_args(_PRECISION_INPUT_STR_ALIAS), AUTO)


def cpu_flags(cpuinfo: str | Path | None = None) -> set[str]:
    """The feature flags of the CPU (the ``flags`` lines of ``cpuinfo``, default :data:`CPUINFO`); empty where the
    file is missing (not Linux).

    Example:
        >>> cpu_flags("/nonexistent/cpuinfo")
        set()
    """
    try:
        text = Path(CPUINFO if cpuinfo is None else cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return flags


def cpu_supports_bf16(cpuinfo: str | Path | None = None) -> bool:
    """Whether the CPU computes in bfloat16 natively: AVX512-BF16 or AMX-BF16 among its :func:`cpu_flags`."""
    return not cpu_flags(cpuinfo).isdisjoint(BF16_CPU_FLAGS)


def cuda_supports_bf16() -> bool:
    """Whether a CUDA device is available and runs bfloat16 natively (not emulated: compute capability >= 8.0)."""
    if not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no including_emulation and reports native support only
        return bool(torch.cuda.is_bf16_supported())


def _accelerator_name(accelerator: Any) -> str:
    """``"cpu"``, ``"cuda"``, ``"auto"``, ... for an accelerator name or a Lightning ``Accelerator`` instance."""
    if isinstance(accelerator, str):
        name = accelerator.lower()
        return "cuda" if name == "gpu" else name
    name = type(accelerator).__name__.lower()  # CPUAccelerator, CUDAAccelerator, MPSAccelerator, ...
    return name.removesuffix("accelerator") or "auto"


def auto_precision(accelerator: Any = "auto") -> str:
    """``"bf16-mixed"`` where ``accelerator`` runs bfloat16 natively, else ``"32-true"``.

    ``accelerator`` is the Trainer's: ``"auto"`` (CUDA when available, else the CPU, as Lightning picks;
    Apple's MPS gets ``"32-true"``), ``"cpu"``, ``"gpu"``/``"cuda"``, or an ``Accelerator`` instance; any other
    accelerator gets ``"32-true"``.

    Example:
        >>> auto_precision("cpu") in ("bf16-mixed", "32-true")
        True
        >>> auto_precision("mps")
        '32-true'
    """
    name = _accelerator_name(accelerator)
    if name == "cuda" or (name == AUTO and torch.cuda.is_available()):
        return BF16 if cuda_supports_bf16() else FP32
    if name == "cpu" or (name == AUTO and not _mps_available()):
        return BF16 if cpu_supports_bf16() else FP32
    return FP32


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_precision(precision: Any, accelerator: Any = "auto") -> Any:
    """``precision`` as Lightning's Trainer takes it: ``"auto"`` becomes :func:`auto_precision` of
    ``accelerator``; None and Lightning's own values are returned unchanged.

    Raises:
        ValueError: naming ``precision`` and the accepted values, for anything else.

    Example:
        >>> resolve_precision("bf16-mixed"), resolve_precision(32), resolve_precision(None)
        ('bf16-mixed', 32, None)
    """
    if precision is None:
        return None
    if isinstance(precision, str) and precision.lower() == AUTO:
        return auto_precision(accelerator)
    if isinstance(precision, bool) or precision not in PRECISION_CHOICES:
        raise ValueError(f"`precision` must be one of {list(PRECISION_CHOICES)}, got {precision!r}: "
                         "'auto' picks 'bf16-mixed' where the hardware runs bfloat16 natively, else '32-true'")
    return precision
