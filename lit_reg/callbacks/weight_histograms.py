"""Histograms of each Linear layer's weights in TensorBoard, and the share of weights near zero (L1's sparsity)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn


def layer_label(module: nn.Linear, index: int) -> str:
    """The human name of the ``index``-th (from 1) Linear layer of a model: ``Linear k (in→out)``.

    Example:
        >>> layer_label(nn.Linear(784, 512), 1)
        'Linear 1 (784→512)'
    """
    return f"Linear {index} ({module.in_features}→{module.out_features})"


def linear_layer_names(model: nn.Module) -> dict[str, str]:
    """``{module name: human name}`` of every ``nn.Linear`` in ``model``, input to output, numbered from 1.

    Example:
        >>> linear_layer_names(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        {'0': 'Linear 1 (4→8)', '2': 'Linear 2 (8→2)'}
    """
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return {name: layer_label(m, i) for i, (name, m) in enumerate(linears, start=1)}


def sparsity(weights: torch.Tensor, threshold: float) -> float:
    """The share of entries with ``|w| < threshold``.

    Example:
        >>> sparsity(torch.tensor([0.0, 1e-4, -0.5, 2.0]), 1e-3)
        0.5
    """
    with torch.no_grad():
        return float((weights.detach().abs() < threshold).float().mean())


class WeightHistograms(Callback):
    """Histogram of every ``nn.Linear`` weight matrix and the share of near-zero weights, per layer, per epoch.

    At the start of training and after every ``every_n_epochs``-th training epoch it adds, at the current
    global step, each Linear layer's weights to TensorBoard's Histograms tab as ``weights/Linear k (in→out)``
    (every ``TensorBoardLogger``), and logs to every logger the share of weights with ``|w| < threshold`` as
    ``weight_sparsity/Linear k (in→out)`` per layer and ``weight_sparsity/total`` over all Linear weights
    together (biases are left out). An ``l1_penalty`` drives many weights to zero: the share rises with
    the epochs, while L2 (or ``weight_decay``) shrinks weights without zeroing them.

    Layers are numbered from 1 in the order of ``named_modules`` (:func:`linear_layer_names`); a model without
    ``nn.Linear`` layers gets one warning and nothing is logged.

    Args:
        every_n_epochs: epochs between two records (1: after every epoch).
        threshold: a weight with ``|w|`` below it counts as zero, > 0.

    Attributes:
        history: one entry per record: ``{"epoch": e, "step": s, "weight_sparsity/...": share, ...}``; epoch -1
            for the start of training.

    Raises:
        ValueError: if ``every_n_epochs`` is not a positive integer or ``threshold`` is not > 0.

    Example:
        >>> histograms = WeightHistograms(every_n_epochs=2, threshold=1e-4)
        >>> histograms.every_n_epochs, histograms.threshold
        (2, 0.0001)
    """

    def __init__(self, every_n_epochs: int = 1, threshold: float = 1e-3) -> None:
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"`every_n_epochs` must be a positive integer, got {every_n_epochs!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0:
            raise ValueError(f"`threshold` must be a number > 0, got {threshold!r}")
        self.every_n_epochs = every_n_epochs
        self.threshold = float(threshold)
        self.history: list[dict[str, Any]] = []
        self._warned = False

    def _layers(self, pl_module: pl.LightningModule) -> dict[str, nn.Linear]:
        """``{human name: layer}`` of the module's Linear layers."""
        modules = dict(pl_module.named_modules())
        return {label: modules[name] for name, label in linear_layer_names(pl_module).items()}

    def values(self, pl_module: pl.LightningModule) -> dict[str, float]:
        """``weight_sparsity/<layer>`` for each Linear layer and ``weight_sparsity/total`` (empty without any)."""
        layers = self._layers(pl_module)
        if not layers:
            return {}
        with torch.no_grad():
            small = {label: int((m.weight.detach().abs() < self.threshold).sum()) for label, m in layers.items()}
        values = {f"weight_sparsity/{label}": small[label] / layer.weight.numel() for label, layer in layers.items()}
        values["weight_sparsity/total"] = sum(small.values()) / sum(layer.weight.numel() for layer in layers.values())
        return values

    def _record(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        if not trainer.is_global_zero:
            return
        layers = self._layers(pl_module)
        if not layers:
            if not self._warned:
                rank_zero_warn(f"WeightHistograms: {type(pl_module).__name__} has no nn.Linear layer; "
                               "no weight histograms or sparsity are logged")
                self._warned = True
            return
        step = trainer.global_step
        values = self.values(pl_module)
        self.history.append({"epoch": epoch, "step": step, **values})
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
            if isinstance(logger, TensorBoardLogger):
                for label, layer in layers.items():
                    logger.experiment.add_histogram(f"weights/{label}", layer.weight.detach().cpu(),
                                                    global_step=step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, pl_module, -1 if trainer.global_step == 0 else trainer.current_epoch)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._record(trainer, pl_module, trainer.current_epoch)
