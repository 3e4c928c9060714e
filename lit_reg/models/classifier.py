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
        hidden_sizes: width of each hidden layer; ``[]`` is softmax regression (one ``Linear``).
        label_smoothing: in [0, 1): cross-entropy against targets mixed with the uniform distribution
            (``F.cross_entropy(..., label_smoothing=...)``); the lecture uses 0.01.
        **kwargs: every other option of :class:`~lit_reg.models.base.RegularizedModule` (activation, dropout,
            batchnorm, optimizer, lr, weight_decay, penalties, lr_scheduler, init, ...).

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
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}")
        check_in_range(label_smoothing, "label_smoothing", 0.0, 1.0)
        super().__init__(input_size=input_size, output_size=num_classes, hidden_sizes=hidden_sizes, **kwargs)

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
