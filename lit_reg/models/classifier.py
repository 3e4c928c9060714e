"""Dense multi-class classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from lit_reg.models.base import RegularizedModule
from lit_reg.registry import check_in_range


class DenseClassifier(RegularizedModule):
    """Multi-class dense classifier: cross-entropy on logits, accuracy logged as ``<stage>_acc``.

    All regularization options of :class:`~lit_reg.models.base.RegularizedModule` apply.

    Args:
        input_size: number of input features (784 for 28×28 FashionMNIST).
        num_classes: number of classes, >= 2.
        hidden_sizes, activation, dropout, batchnorm, optimizer, lr, weight_decay, momentum, nesterov,
            l1_penalty, l2_penalty, penalize_all_parameters, lr_scheduler, lr_scheduler_kwargs, init: see
            :class:`~lit_reg.models.base.RegularizedModule`.
        label_smoothing: in [0, 1): cross-entropy against targets mixed with the uniform distribution
            (``F.cross_entropy(..., label_smoothing=...)``); the lecture uses 0.01.

    Example:
        >>> import torch
        >>> model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[8], dropout=0.2)
        >>> model(torch.zeros(5, 4)).shape
        torch.Size([5, 3])
    """

    # pragma: no mutate start (mutmut's trampolines would hide this frame from Lightning's save_hyperparameters)
    def __init__(
        self,
        input_size: int = 784,
        num_classes: int = 10,
        hidden_sizes: Sequence[int] = (512, 512),
        activation: str = "relu",
        dropout: float | Sequence[float] = 0.0,
        batchnorm: bool = False,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        nesterov: bool = False,
        l1_penalty: float = 0.0,
        l2_penalty: float = 0.0,
        penalize_all_parameters: bool = False,
        lr_scheduler: str | None = None,
        lr_scheduler_kwargs: dict[str, Any] | None = None,
        init: str = "default",
        label_smoothing: float = 0.0,
    ) -> None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}")
        check_in_range(label_smoothing, "label_smoothing", 0.0, 1.0)
        super().__init__(**self.base_arguments(locals(), output_size=num_classes))

    # pragma: no mutate end
    def configure_metrics(self) -> MetricCollection:
        # validate_args=False: cross-entropy on the same (outputs, target) already rejects bad shapes and labels
        accuracy = MulticlassAccuracy(num_classes=self.hparams.num_classes, average="micro", validate_args=False)
        return MetricCollection({"acc": accuracy})

    def compute_loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(outputs, target, label_smoothing=self.hparams.label_smoothing)

    def predict_outputs(self, outputs: Tensor) -> dict[str, Tensor]:
        """Class indices (``preds``) and class probabilities (``probs``)."""
        probs = outputs.softmax(dim=-1)
        return {"preds": probs.argmax(dim=-1), "probs": probs}
