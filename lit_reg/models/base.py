"""The base LightningModule every model of the collection shares."""

from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection

from lit_reg.models.dense import build_dense_stack
from lit_reg.registry import MOMENTUM_OPTIMIZERS, OPTIMIZERS, check_in_range, lookup

STAGES = ("train", "val", "test")


class RegularizedModule(pl.LightningModule):
    """Dense network with a named optimizer, shared train/val/test/predict steps and metric logging.

    Subclasses choose the loss (:meth:`compute_loss`), the torchmetrics they log
    (:meth:`configure_metrics`) and what prediction returns (:meth:`predict_outputs`); everything else
    lives here, so every model gets every regularization option.

    Each stage logs ``<stage>_loss`` and ``<stage>_<metric>`` once per epoch, from one metric
    collection per stage (``train_metrics``, ``val_metrics``, ``test_metrics``):
    :meth:`configure_metrics` for every stage, plus :meth:`configure_eval_metrics` for validation and test.

    Before any stage runs, :meth:`setup` checks the model's ``input_size`` against the datamodule's
    (when it has one) and raises a ``ValueError`` giving both numbers.

    .. note::
        ``weight_decay`` is the optimizer's own decay: it applies to every parameter (biases and
        batch-norm parameters too). With Adam it is an L2 term added to the gradient; with AdamW it is
        decoupled weight decay.

    Args:
        input_size: number of input features; inputs are flattened from dimension 1 on.
        output_size: number of outputs of the last layer.
        hidden_sizes: width of each hidden layer.
        activation: activation name (see :data:`lit_reg.registry.ACTIVATIONS`).
        dropout: one rate in [0, 1) for all hidden layers, or one rate per hidden layer.
        batchnorm: ``BatchNorm1d`` between each hidden ``Linear`` and its activation.
        optimizer: one of ``sgd``, ``adam``, ``adamw``, ``rmsprop``, ``adagrad``.
        lr: learning rate, > 0.
        weight_decay: the optimizer's weight decay, >= 0.
        momentum: momentum for ``sgd`` and ``rmsprop``, >= 0; must stay 0 for the others.

    Raises:
        ValueError: naming the argument, for any value outside its allowed range or set of names.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_sizes: Sequence[int],
        activation: str = "relu",
        dropout: float | Sequence[float] = 0.0,
        batchnorm: bool = False,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
    ) -> None:
        super().__init__()
        self._save_own_hyperparameters()
        check_in_range(lr, "lr", 0.0, include_low=False)
        check_in_range(weight_decay, "weight_decay", 0.0)
        check_in_range(momentum, "momentum", 0.0)
        self.optimizer_cls = lookup(OPTIMIZERS, optimizer, "optimizer")
        if momentum and optimizer.lower() not in MOMENTUM_OPTIMIZERS:
            raise ValueError(
                f"`momentum` applies only to optimizer {list(MOMENTUM_OPTIMIZERS)}, got momentum={momentum} "
                f"with optimizer={optimizer!r}; set momentum=0 or pick one of those optimizers"
            )
        self.net = build_dense_stack(input_size, hidden_sizes, output_size, activation, dropout, batchnorm)
        self.train_metrics = self.configure_metrics().clone(prefix="train_")
        self.val_metrics = self._eval_metrics().clone(prefix="val_")
        self.test_metrics = self._eval_metrics().clone(prefix="test_")

    def _eval_metrics(self) -> MetricCollection:
        metrics = self.configure_metrics()
        extra = self.configure_eval_metrics()
        if extra:
            metrics.add_metrics(extra)
        return metrics

    def _save_own_hyperparameters(self) -> None:
        """``save_hyperparameters()`` for the concrete class: keep only the arguments its ``__init__`` takes.

        Lightning collects the arguments of every ``__init__`` in the chain (and the CLI may pass linked
        values a class does not take); ``hparams.yaml`` and checkpoints should hold exactly what
        ``type(self)(**hparams)`` accepts.
        """
        frame = inspect.currentframe().f_back.f_back  # the concrete class's __init__
        self.save_hyperparameters(frame=frame)
        accepted = inspect.signature(type(self).__init__).parameters
        extra = [key for key in self.hparams if key not in accepted and not key.startswith("_")]
        if extra:
            self.save_hyperparameters(ignore=extra, frame=frame)

    # -- what subclasses define -------------------------------------------------------------------
    @abstractmethod
    def configure_metrics(self) -> MetricCollection:
        """The metrics logged for every stage; keys become ``<stage>_<key>``."""

    def configure_eval_metrics(self) -> dict[str, Metric]:
        """Metrics logged on validation and test only, on top of :meth:`configure_metrics` (none here)."""
        return {}

    @abstractmethod
    def compute_loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        """The training objective for a batch."""

    def metric_inputs(self, outputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(preds, target)`` as the metrics expect them."""
        return outputs, target

    def predict_outputs(self, outputs: Tensor) -> Any:
        """What :meth:`predict_step` returns for a batch of network outputs."""
        return outputs

    # -- shared steps -----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Fail before any step when the datamodule's ``input_size`` differs from the model's."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_size = getattr(datamodule, "input_size", None)
        if data_size is not None and data_size != self.hparams.input_size:
            raise ValueError(
                f"{type(datamodule).__name__} gives {data_size} input features per sample but "
                f"{type(self).__name__} has input_size={self.hparams.input_size}; set the model's input_size to "
                f"{data_size} (the lit-reg CLI links it from the data) or change the data (e.g. image_size)."
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, target = batch
        outputs = self(x)
        loss = self.compute_loss(outputs, target)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        metrics.update(*self.metric_inputs(outputs.detach(), target))
        sync = stage != "train"
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0],
                 sync_dist=sync)
        self.log_dict(metrics, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_outputs(self(x))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        kwargs: dict[str, Any] = {"lr": self.hparams.lr, "weight_decay": self.hparams.weight_decay}
        if self.hparams.optimizer.lower() in MOMENTUM_OPTIMIZERS:
            kwargs["momentum"] = self.hparams.momentum
        return self.optimizer_cls(self.parameters(), **kwargs)

    @property
    def linear_layers(self) -> list[nn.Linear]:
        """The ``nn.Linear`` layers of the dense stack, input to output."""
        return [m for m in self.net if isinstance(m, nn.Linear)]
