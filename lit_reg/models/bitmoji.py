"""Binary dense classifier with class names: the lecture's "tom" / "not tom" Bitmoji exercise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from lit_reg.models.base import RegularizedModule


class BitmojiClassifier(RegularizedModule):
    """Binary dense classifier: one output logit, ``BCEWithLogitsLoss``, class names for prediction.

    The defaults are the lecture's Bitmoji net: 50×50 grayscale input (2500), hidden
    (256, 128, 64, 16), LeakyReLU, dropout 0.1, Adam. All regularization options of
    :class:`~lit_reg.models.base.RegularizedModule` apply. Logs ``*_loss`` and ``*_acc`` on every
    stage, and ``val_/test_f1`` and ``val_/test_auroc`` on validation and test.

    The logit scores ``classes[1]`` (the positive class, target 1): with an ImageFolder tree the sorted
    folder names, e.g. ``["not_tom", "tom"]``. The ``lit-reg`` CLI links ``classes`` from the data.

    Args:
        input_size: number of input features (channels × height × width).
        hidden_sizes: width of each hidden layer; ``[]`` is logistic regression (one ``Linear``).
        activation: activation name (see :data:`lit_reg.registry.ACTIVATIONS`).
        dropout: one rate in [0, 1) for all hidden layers, or one rate per hidden layer.
        classes: the two class names, negative first.
        **kwargs: every other option of :class:`~lit_reg.models.base.RegularizedModule` (batchnorm, optimizer,
            lr, weight_decay, penalties, lr_scheduler, init, ...).

    Raises:
        ValueError: ``classes`` does not hold two distinct names, or any base argument is out of range.

    Example:
        >>> import torch
        >>> model = BitmojiClassifier(input_size=4, hidden_sizes=[8])
        >>> out = model.predict_step(torch.zeros(3, 4), 0)
        >>> out["probs"].shape, len(out["labels"]), out["labels"][0] in ("not_tom", "tom")
        (torch.Size([3]), 3, True)
    """

    # pragma: no mutate start (mutmut's trampolines would hide this frame from Lightning's save_hyperparameters)
    def __init__(
        self,
        input_size: int = 2500,
        hidden_sizes: Sequence[int] = (256, 128, 64, 16),
        activation: str = "leaky_relu",
        dropout: float | Sequence[float] = 0.1,
        classes: Sequence[str] = ("not_tom", "tom"),
        **kwargs: Any,
    ) -> None:
        if isinstance(classes, str) or len(classes) != 2 or len(set(classes)) != 2:
            raise ValueError(f"`classes` must be two distinct class names (negative first), got {classes!r}")
        super().__init__(input_size=input_size, output_size=1, hidden_sizes=hidden_sizes, activation=activation,
                         dropout=dropout, **kwargs)

    # pragma: no mutate end
    def configure_metrics(self) -> MetricCollection:
        return MetricCollection({"acc": BinaryAccuracy()})

    def configure_eval_metrics(self) -> dict[str, Metric]:
        return {"f1": BinaryF1Score(), "auroc": BinaryAUROC()}

    def forward(self, x: Tensor) -> Tensor:
        """One logit per sample, shape ``(batch,)``."""
        return super().forward(x).squeeze(-1)

    def compute_loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(outputs, target.float())

    def metric_inputs(self, outputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return outputs.sigmoid(), target.long()

    def predict_outputs(self, outputs: Tensor) -> dict[str, Any]:
        """``probs``: probability of ``classes[1]``; ``preds``: 0/1; ``labels``: the predicted class names;
        ``confidence``: the probability of the predicted class."""
        probs = outputs.sigmoid()
        preds = (probs > 0.5).long()  # the threshold rule of the Binary* metrics (a tie counts as the negative)
        classes = list(self.hparams.classes)
        return {
            "probs": probs,
            "preds": preds,
            "labels": [classes[i] for i in preds.tolist()],
            "confidence": probs.where(preds.bool(), 1 - probs),
        }
