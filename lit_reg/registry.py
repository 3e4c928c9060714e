"""The one place where names given in configs map to classes.

Every lookup raises a ``ValueError`` that names the argument, lists the allowed names and shows the
value it got, so a typo in a YAML file or a CLI override reads as one clear sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import torch
from torch import nn

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
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

#: optimizers that take a ``momentum`` argument
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")


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
