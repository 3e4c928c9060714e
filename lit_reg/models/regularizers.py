"""The loss terms, the weight constraint and the batch mixing that :class:`~lit_reg.models.base.RegularizedModule` uses.

Each is a plain function of tensors, so a test can compute the same number by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def weight_penalty(params: Sequence[Tensor], l1: float = 0.0, l2: float = 0.0) -> Tensor:
    """``l1·Σ|w| + l2·Σw²`` over the entries of ``params`` (a scalar tensor; 0 when both are 0).

    Example:
        >>> weight_penalty([torch.tensor([1.0, -2.0])], l1=0.5, l2=0.25).item()
        2.75
    """
    total = torch.zeros((), device=params[0].device if params else None)
    if l1:
        total = total + l1 * torch.stack([p.abs().sum() for p in params]).sum()
    if l2:
        total = total + l2 * torch.stack([p.square().sum() for p in params]).sum()
    return total


def orthogonality_penalty(weights: Sequence[Tensor]) -> Tensor:
    """``Σ ‖W Wᵀ − I‖²_F`` over the weight matrices, each ``(out, in)`` as in ``nn.Linear``: its rows (each unit's
    incoming weights) pushed towards an orthonormal set. In Keras' ``(in, out)`` kernel layout this is ``‖WᵀW − I‖²_F``.

    Example:
        >>> orthogonality_penalty([torch.eye(3)]).item(), orthogonality_penalty([2 * torch.eye(2)]).item()
        (0.0, 18.0)
    """
    terms = []
    for w in weights:
        gram = w @ w.T
        terms.append((gram - torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)).square().sum())
    return torch.stack(terms).sum()


def activity_penalty(activations: Sequence[Tensor], l1: float = 0.0, l2: float = 0.0) -> Tensor:
    """``l1·mean|h| + l2·mean h²``, the means over every entry of every hidden activation (all layers pooled).

    Example:
        >>> activity_penalty([torch.tensor([[1.0, -3.0]]), torch.tensor([[0.0, 0.0]])], l1=1.0, l2=0.5).item()
        2.25
    """
    count = sum(h.numel() for h in activations)
    total = torch.zeros((), device=activations[0].device if activations else None)
    if l1:
        total = total + l1 * torch.stack([h.abs().sum() for h in activations]).sum() / count
    if l2:
        total = total + l2 * torch.stack([h.square().sum() for h in activations]).sum() / count
    return total


@torch.no_grad()
def apply_max_norm(weights: Sequence[Tensor], max_norm: float) -> None:
    """Rescale, in place, every row of each weight matrix (a unit's incoming weights) whose L2 norm exceeds
    ``max_norm`` to norm ``max_norm`` (``torch.renorm``); shorter rows stay as they are.

    Example:
        >>> w = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
        >>> apply_max_norm([w], 1.0)
        >>> w.norm(dim=1).tolist()
        [1.0, 0.5]
    """
    for w in weights:
        w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=max_norm))


def mixup(x: Tensor, target: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """Mix each sample of the batch with another one (Zhang et al., 2018): ``λ·x + (1-λ)·x[perm]``.

    λ ~ Beta(α, α), one per batch, and the permutation are drawn from torch's global generator (so a seeded or
    resumed run draws the same ones). Returns the mixed inputs, the partner targets ``target[perm]`` and λ: the loss
    is ``λ·loss(out, target) + (1-λ)·loss(out, target[perm])``, which for cross-entropy is the cross-entropy against
    the mixed (one-hot or smoothed) targets.
    """
    lam = torch.distributions.Beta(alpha, alpha).sample().to(x.device)
    perm = torch.randperm(x.shape[0], device=x.device)
    return torch.lerp(x[perm], x, lam.to(x.dtype)), target[perm], lam
