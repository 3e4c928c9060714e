"""Inverse-time decay of the learning rate, as Keras' ``InverseTimeDecay`` (``lr_scheduler="inverse_time"``).

It imports only torch, and sits beside :mod:`lit_reg.registry`, which maps the name to it: the models and the
callbacks import the registry, so a module under ``lit_reg.models`` would be a circular import.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


class InverseTimeDecay(LambdaLR):
    """``η₀ / (1 + decay_rate · s / decay_steps)`` after ``s`` scheduler steps, the lecture's η₀/(1+k·s).

    A :class:`~torch.optim.lr_scheduler.LambdaLR` with named arguments (so ``lr_scheduler_kwargs`` can be checked
    against them). ``lr_scheduler="inverse_time"`` steps it after every batch, as Keras counts optimizer
    iterations: Keras' ``InverseTimeDecay(η₀, decay_steps, decay_rate, staircase)`` is
    ``lr=η₀, lr_scheduler_kwargs={"decay_rate": ..., "decay_steps": ..., "staircase": ...}``.

    Args:
        optimizer: the wrapped optimizer; η₀ is its learning rate.
        decay_rate: k >= 0; the rate is η₀/(1+k) after ``decay_steps`` steps.
        decay_steps: the steps s is counted in, a positive integer (e.g. the batches of an epoch).
        staircase: decay in whole units of ``decay_steps`` (``⌊s/decay_steps⌋``) instead of continuously.
        last_epoch: the index of the last step, ``-1`` to start.

    Raises:
        ValueError: for ``decay_rate < 0`` or a ``decay_steps`` that is not a positive integer.

    Example:
        >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> scheduler = InverseTimeDecay(optimizer, decay_rate=0.5, decay_steps=2)
        >>> for _ in range(2):
        ...     optimizer.step()
        ...     scheduler.step()
        >>> scheduler.get_last_lr()  # 1 / (1 + 0.5 · 2/2)
        [0.6666666666666666]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, decay_rate: float, decay_steps: int = 1,
                 staircase: bool = False, last_epoch: int = -1) -> None:
        if isinstance(decay_rate, bool) or not isinstance(decay_rate, (int, float)) or not decay_rate >= 0:
            raise ValueError(f"`lr_scheduler_kwargs` decay_rate must be a number >= 0, got {decay_rate!r}")
        if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps <= 0:
            raise ValueError(f"`lr_scheduler_kwargs` decay_steps must be a positive integer, got {decay_steps!r}")
        self.decay_rate, self.decay_steps, self.staircase = float(decay_rate), decay_steps, bool(staircase)
        rate = self.decay_rate

        def factor(step: int) -> float:  # a plain function: LambdaLR's state_dict leaves it out
            units = step / decay_steps
            return 1.0 / (1.0 + rate * (math.floor(units) if staircase else units))

        super().__init__(optimizer, factor, last_epoch)
