"""The one place where names given in configs map to classes.

Every lookup raises a ``ValueError`` that names the argument, lists the allowed names and shows the
value it got, so a typo in a YAML file or a CLI override reads as one clear sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import torch
from torch import nn

from lit_reg.schedules import InverseTimeDecay

T = TypeVar("T")

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
}

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamax": torch.optim.Adamax,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

#: optimizers that take a ``momentum`` argument
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")

#: optimizer arguments that have their own lit_reg argument, so ``optimizer_kwargs`` may not set them
OWN_OPTIMIZER_ARGUMENTS = ("lr", "weight_decay", "momentum", "nesterov")

#: learning-rate schedulers by name; their arguments are the torch classes' own (``lr_scheduler_kwargs``)
LR_SCHEDULERS: dict[str, type] = {
    "step": torch.optim.lr_scheduler.StepLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "cosine_restarts": torch.optim.lr_scheduler.CosineAnnealingWarmRestarts,
    "cyclic": torch.optim.lr_scheduler.CyclicLR,
    "onecycle": torch.optim.lr_scheduler.OneCycleLR,
    "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
    "inverse_time": InverseTimeDecay,
}

#: schedulers stepped after every batch (Lightning ``interval="step"``); the others step once per epoch
STEP_SCHEDULERS = ("cyclic", "onecycle", "inverse_time")

#: weight initializations of the ``nn.Linear`` layers (biases are set to zero); ``default`` keeps PyTorch's
INITS: dict[str, Callable[[torch.Tensor], torch.Tensor] | None] = {
    "default": None,
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": nn.init.kaiming_uniform_,
    "kaiming_normal": nn.init.kaiming_normal_,
}


def lookup(registry: Mapping[str, T], name: str, argument: str) -> T:
    """Return ``registry[name]`` (case-insensitive) or raise a ``ValueError`` naming ``argument``.

    Example:
        >>> lookup(ACTIVATIONS, "ReLU", "activation")
        <class 'torch.nn.modules.activation.ReLU'>
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in registry:
        raise ValueError(f"`{argument}` must be one of {sorted(registry)}, got {name!r}")
    return registry[key]


def check_positive_int(value: int, argument: str) -> int:
    """Raise a ``ValueError`` naming ``argument`` unless ``value`` is an ``int`` (not a bool) > 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}")
    return value


def check_in_range(value: float, argument: str, low: float, high: float | None = None, *,
                   include_low: bool = True) -> float:
    """Raise a ``ValueError`` naming ``argument`` unless ``low <= value < high`` (``low < value`` when
    ``include_low`` is false; no upper bound when ``high`` is None)."""
    ok_low = value >= low if include_low else value > low
    ok_high = high is None or value < high
    if not (ok_low and ok_high):
        interval = f"{'[' if include_low else '('}{low}, {'inf' if high is None else high})"
        raise ValueError(f"`{argument}` must be in {interval}, got {value!r}")
    return value
