"""Dense regressor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MetricCollection, R2Score

from lit_reg.models.base import RegularizedModule


class DenseRegressor(RegularizedModule):
    """Dense regressor: mean squared error as ``<stage>_loss``, plus ``<stage>_mae`` and ``<stage>_r2``.

    The defaults are the lectures' over-parameterized 1 → 300 → 500 → 1 LeakyReLU net.
    Targets have shape ``(batch, output_size)``.

    Args:
        input_size: number of input features.
        output_size: number of regression targets.
        hidden_sizes: width of each hidden layer; ``[]`` is linear regression (one ``Linear``).
        activation: activation name (see :data:`lit_reg.registry.ACTIVATIONS`).
        **kwargs: every other option of :class:`~lit_reg.models.base.RegularizedModule` (dropout, batchnorm,
            optimizer, lr, weight_decay, penalties, lr_scheduler, init, ...).

    Example:
        >>> import torch
        >>> model = DenseRegressor(hidden_sizes=[6], activation="sigmoid")
        >>> model(torch.zeros(5, 1)).shape
        torch.Size([5, 1])
    """

    # pragma: no mutate start (mutmut's trampolines would hide this frame from Lightning's save_hyperparameters)
    def __init__(
        self,
        input_size: int = 1,
        output_size: int = 1,
        hidden_sizes: Sequence[int] = (300, 500),
        activation: str = "leaky_relu",
        **kwargs: Any,
    ) -> None:
        super().__init__(input_size=input_size, output_size=output_size, hidden_sizes=hidden_sizes,
                         activation=activation, **kwargs)

    # pragma: no mutate end
    #: mixup's mixed loss is not the loss of mixed targets for the squared error
    supports_mixup = False

    def configure_metrics(self) -> MetricCollection:
        return MetricCollection({"mae": MeanAbsoluteError(), "r2": R2Score()})

    def compute_loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(outputs, target)

    def metric_inputs(self, outputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        if self.hparams.output_size == 1:
            return outputs.reshape(-1), target.reshape(-1)
        return outputs, target
