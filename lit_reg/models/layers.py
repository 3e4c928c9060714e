"""Noise layers of the dense stack: input noise, Gaussian dropout and DropConnect (each the identity in eval mode)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_reg.registry import check_in_range


class GaussianNoise(nn.Module):
    """Add ``N(0, std²)`` noise to the input in training mode; the identity in eval mode (Keras' ``GaussianNoise``).

    Example:
        >>> layer = GaussianNoise(0.1).eval()
        >>> layer(torch.ones(2, 3)).tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = check_in_range(float(std), "input_noise", 0.0)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return x
        return x + torch.randn_like(x) * self.std

    def extra_repr(self) -> str:
        return f"std={self.std}"


class GaussianDropout(nn.Module):
    """Multiply every input by ``N(1, p/(1-p))`` noise in training mode; the identity in eval mode.

    Srivastava et al. (2014), section 10: the same mean and variance as Bernoulli dropout with rate ``p``
    followed by the 1/(1-p) rescaling (Keras' ``GaussianDropout``).

    Example:
        >>> GaussianDropout(0.5)
        GaussianDropout(p=0.5)
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = check_in_range(float(p), "dropout", 0.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        std = (self.p / (1.0 - self.p)) ** 0.5
        return x * (1.0 + torch.randn_like(x) * std)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DropConnectLinear(nn.Linear):
    """``nn.Linear`` whose weights (not biases) are dropped with rate ``p`` in training mode (Wan et al., 2013).

    Each batch draws one Bernoulli(1-p) mask over the weight matrix and rescales the kept weights by 1/(1-p), as
    inverted dropout does to activations; in eval mode the full weights are used. The parameters and their names are
    ``nn.Linear``'s, so checkpoints load into either.

    Example:
        >>> DropConnectLinear(4, 2, p=0.25)
        DropConnectLinear(in_features=4, out_features=2, bias=True, p=0.25)
    """

    def __init__(self, in_features: int, out_features: int, p: float, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.p = check_in_range(float(p), "dropout", 0.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return super().forward(x)
        return F.linear(x, F.dropout(self.weight, self.p, training=True), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"
