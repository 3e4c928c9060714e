"""Frobenius norm of the weights, logged while training and plotted before vs after."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from lit_reg.callbacks.figures import save_to_run
from lit_reg.callbacks.fit_only_state import FitOnlyState
from lit_reg.callbacks.split_predictions import run_title
from lit_reg.callbacks.weight_histograms import linear_layer_names


def frobenius_norm(tensors_or_module: nn.Module | Tensor | Iterable[Tensor]) -> float:
    """√ of the sum of squares over all entries of the given tensors (all parameters of a module).

    Example:
        >>> round(frobenius_norm([torch.tensor([3.0]), torch.tensor([[4.0]])]), 4)
        5.0
    """
    if isinstance(tensors_or_module, nn.Module):
        tensors = list(tensors_or_module.parameters())
    elif isinstance(tensors_or_module, Tensor):
        tensors = [tensors_or_module]
    else:
        tensors = list(tensors_or_module)
    if not tensors:
        return 0.0
    with torch.no_grad():
        return float(torch.nn.utils.get_total_norm([t.detach() for t in tensors], norm_type=2.0))


def layer_norms(module: nn.Module) -> dict[str, float]:
    """The Frobenius norm of each submodule's own parameters (weight and bias together), keyed by module name."""
    groups: dict[str, list[Tensor]] = {}
    for name, param in module.named_parameters():
        groups.setdefault(name.rpartition(".")[0] or name, []).append(param)
    return {name: frobenius_norm(params) for name, params in groups.items()}


def module_labels(model: nn.Module) -> dict[str, str]:
    """``{module name: human name}`` of every submodule with parameters of its own, for chart labels.

    ``nn.Linear`` layers are ``Linear k (in→out)`` (:func:`~lit_reg.callbacks.weight_histograms.linear_layer_names`,
    as in the weight histograms), batch-norm layers ``BatchNorm k (features)``, any other ``<Class> k``; each kind
    numbered from 1 in the order of ``named_modules``.

    Example:
        >>> module_labels(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)))
        {'0': 'Linear 1 (4→8)', '1': 'BatchNorm 1 (8)', '3': 'Linear 2 (8→2)'}
    """
    linears = linear_layer_names(model)
    labels: dict[str, str] = {}
    counts: dict[str, int] = {}
    for name, module in model.named_modules():
        if name in linears:
            labels[name] = linears[name]
            continue
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            kind, detail = "BatchNorm", f" ({module.num_features})"
        else:
            kind, detail = type(module).__name__, ""
        counts[kind] = counts.get(kind, 0) + 1
        labels[name] = f"{kind} {counts[kind]}{detail}"
    return labels


class WeightNormMonitor(FitOnlyState):
    """Log the Frobenius norm of every parameter and of the whole model; plot per-layer norms before vs after.

    At the start of training and after every training epoch it logs ``weight_norm/total`` (√ of the sum of
    squares over all parameters) and ``weight_norm/<param name>`` to every logger, at the current global
    step. At the end of training it saves a bar chart of each layer's norm (its weight and bias together)
    before and after training as ``<trainer.log_dir>/<filename>`` and adds it to TensorBoard as the image
    ``weight_norm/layers``. The chart names each layer for what it is (``Linear 1 (784→512)``, ``BatchNorm 1 (512)``,
    :func:`module_labels`) and its title gives the run and the number of epochs trained; the logged scalars keep
    the parameters' own names (``weight_norm/net.0.weight``).

    .. note::
        The norm of an over-fitting net grows with the epochs; weight decay or an L2 penalty keeps it small.

    Args:
        per_parameter: also log each parameter tensor's norm, not only the total.
        filename: name of the PNG in the run folder.
        figsize: size of the figure in inches (saved at 100 dpi, so ``(6.4, 4.8)`` is 640×480 pixels).

    Attributes:
        initial_norms: per-layer norms at the start of training.
        final_norms: per-layer norms at the end of training.
        history: ``(epoch, total norm)`` pairs: epoch -1 for the start of training, then one per epoch.
        layer_labels: ``{module name: chart label}`` of the layers, set at the end of training.
        title: the chart's title, set at the end of training.
        plot_path: where the chart was saved, once it was.

    Raises:
        ValueError: if ``filename`` does not end in ``.png``.

    Example:
        >>> monitor = WeightNormMonitor()
        >>> monitor.filename
        'weight_norms.png'
    """

    def __init__(self, per_parameter: bool = True, filename: str = "weight_norms.png",
                 figsize: tuple[float, float] = (6.4, 4.8)) -> None:
        if not filename.endswith(".png"):
            raise ValueError(f"`filename` must end in '.png', got {filename!r}")
        self.per_parameter = per_parameter
        self.filename = filename
        self.figsize = tuple(figsize)
        self.initial_norms: dict[str, float] = {}
        self.final_norms: dict[str, float] = {}
        self.history: list[tuple[int, float]] = []
        self.layer_labels: dict[str, str] = {}
        self.title = "Weight norm per layer"
        self.after_label = "after training"
        self.plot_path: Path | None = None

    def norms(self, module: nn.Module) -> dict[str, float]:
        """``weight_norm/total`` and, with ``per_parameter``, ``weight_norm/<name>`` for every parameter."""
        values = {"weight_norm/total": frobenius_norm(module)}
        if self.per_parameter:
            values.update({f"weight_norm/{name}": frobenius_norm(p) for name, p in module.named_parameters()})
        return values

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        values = self.norms(pl_module)
        epoch = trainer.current_epoch if trainer.global_step else -1
        self.history.append((epoch, values["weight_norm/total"]))
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.initial_norms:  # keep the first run's values when resuming
            self.initial_norms = layer_norms(pl_module)
        self._log(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.final_norms = layer_norms(pl_module)
        self.layer_labels = module_labels(pl_module)
        epochs = trainer.current_epoch  # the epochs completed
        self.after_label = f"after {epochs} epoch{'s' * (epochs != 1)}"
        self.title = f"Weight norm per layer, before and after training\n{run_title(trainer)}"
        self.plot_path = save_to_run(trainer, self.plot, self.filename, "weight_norm/layers")

    def plot(self) -> Figure:
        """The bar chart of :attr:`initial_norms` next to :attr:`final_norms`, one pair of bars per layer, labelled
        with :attr:`layer_labels` (a layer without one by its module name)."""
        names = list(self.final_norms or self.initial_norms)
        positions = range(len(names))
        width = 0.4
        figure = Figure(figsize=self.figsize)  # no pyplot: headless, and the user's backend is left alone
        axes = figure.subplots()
        axes.bar([i - width / 2 for i in positions], [self.initial_norms.get(n, 0.0) for n in names], width,
                 label="before training")
        axes.bar([i + width / 2 for i in positions], [self.final_norms.get(n, 0.0) for n in names], width,
                 label=self.after_label)
        axes.set_xticks(list(positions), [self.layer_labels.get(n, n) for n in names], rotation=20, ha="right")
        axes.set_xlabel("layer (its weight and bias together)")
        axes.set_ylabel("Frobenius norm √(Σ w²) (no unit)")
        axes.set_title(self.title)
        axes.legend()
        figure.tight_layout()
        return figure

    def state_dict(self) -> dict[str, Any]:
        return {"initial_norms": dict(self.initial_norms)}

    def restore_state(self, state_dict: dict[str, Any]) -> None:
        self.initial_norms = dict(state_dict.get("initial_norms", {}))
