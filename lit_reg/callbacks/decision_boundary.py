"""A classifier's decision boundary over 2-D inputs, drawn with the training points at the end of fit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import contourpy
import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from pytorch_lightning.callbacks import Callback
from torch import Tensor

from lit_reg.callbacks.figures import (
    SPLIT_LABELS,
    evaluate_on,
    find_split_points,
    png_filename,
    save_to_run,
    title_width,
    wrap_title,
)
from lit_reg.callbacks.split_predictions import run_name

#: markers of the points of each split
SPLIT_MARKERS = {"train": "o", "val": "^", "test": "s"}
#: colour of each class (matplotlib's "tab10"); with two classes the ends of the probability map's "RdBu_r"
CLASS_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
                "tab:gray", "tab:olive", "tab:cyan")


def to_probabilities(outputs: Tensor) -> Tensor:
    """Class probabilities ``(n, C)`` from logits: the softmax of ``(n, C)`` outputs (C >= 2), or
    ``[1 - σ(z), σ(z)]`` for one logit ``z`` per sample (shape ``(n,)`` or ``(n, 1)``).

    Example:
        >>> to_probabilities(torch.tensor([0.0, 100.0])).tolist()
        [[0.5, 0.5], [0.0, 1.0]]
    """
    if outputs.dim() == 1 or (outputs.dim() == 2 and outputs.shape[1] == 1):
        positive = outputs.reshape(-1).sigmoid()
        return torch.stack([1 - positive, positive], dim=1)
    return outputs.reshape(len(outputs), -1).softmax(dim=1)


def contour_length(xx: np.ndarray, yy: np.ndarray, values: np.ndarray, level: float = 0.5) -> float:
    """Total length of the ``level`` contour of ``values`` on the grid ``(xx, yy)`` (in input units).

    A straight boundary across the unit square has length 1; a wiggly one is longer.

    Example:
        >>> xx, yy = np.meshgrid(np.linspace(0, 1, 11), np.linspace(0, 1, 11))
        >>> round(contour_length(xx, yy, xx), 6)  # the vertical line x = 0.5
        1.0
    """
    lines = contourpy.contour_generator(xx, yy, values).lines(level)
    return float(sum(np.linalg.norm(np.diff(line, axis=0), axis=1).sum() for line in lines))


def mean_gradient_norm(xx: np.ndarray, yy: np.ndarray, values: np.ndarray) -> float:
    """Mean over the grid of ``‖∇values‖`` (central differences, per input unit): how fast the map changes.

    Example:
        >>> xx, yy = np.meshgrid(np.linspace(0, 1, 11), np.linspace(0, 2, 21))
        >>> round(mean_gradient_norm(xx, yy, 3 * xx + 4 * yy), 6)
        5.0
    """
    d_dy, d_dx = np.gradient(values, yy[:, 0], xx[0, :])
    return float(np.hypot(d_dx, d_dy).mean())


@dataclass
class BoundaryMap:
    """What a decision-boundary figure shows: the class probabilities on a grid and the data points.

    Attributes:
        xx: x₁ of the grid points, ``(resolution, resolution)`` (rows go along x₂), in input units.
        yy: x₂ of the grid points.
        probs: class probabilities on the grid, ``(resolution, resolution, C)``; C = 2 for a one-logit model.
        epochs: epochs trained when the map was made.
        title: the figure's title.
        points: ``{split: (inputs (n, 2), targets (n,))}`` as the data holds them.
        class_names: one name per class.
    """

    xx: np.ndarray
    yy: np.ndarray
    probs: np.ndarray
    epochs: int
    title: str
    points: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return self.probs.shape[-1]

    @property
    def predicted(self) -> np.ndarray:
        """The predicted class (argmax) at each grid point, ``(resolution, resolution)``."""
        return self.probs.argmax(axis=-1)

    def _positive(self) -> np.ndarray:
        if self.num_classes != 2:
            raise ValueError(f"a smoothness measure needs two classes (the probability of class 1), got "
                             f"{self.num_classes}")
        return self.probs[..., 1]

    def contour_length(self) -> float:
        """Length of the boundary ``P(class 1) = 0.5`` in input units (two classes only): lower is smoother."""
        return contour_length(self.xx, self.yy, self._positive())

    def mean_gradient_norm(self) -> float:
        """Mean ``‖∇P(class 1)‖`` over the grid (two classes only): lower is a smoother, less abrupt map."""
        return mean_gradient_norm(self.xx, self.yy, self._positive())


class DecisionBoundary(Callback):
    """Draw a classifier's decision boundary over its 2-D inputs, with the data points coloured by class.

    At the end of training (and after every ``every_n_epochs`` training epochs, if given) the module is evaluated on
    a ``resolution`` × ``resolution`` grid covering the training points and those of ``splits`` with ``padding``
    around them (every point drawn lies on the map), in eval mode under ``no_grad`` (its train/eval mode restored
    afterwards). Grid points go through the datamodule's ``transform_inputs`` (its normalization) like the batches
    do, and the module's outputs are taken as logits: the softmax over C >= 2 outputs, or the sigmoid of one logit
    (a binary model such as :class:`~lit_reg.models.BitmojiClassifier`). With two classes and ``probability`` the
    figure shows the probability of class 1 with its 0.5 contour (the boundary); otherwise the predicted class
    (argmax) of every grid point. It is saved as ``<trainer.log_dir>/<filename>`` (overwritten by each later
    drawing) and added to TensorBoard as the image ``tag`` at the current global step; its title (the run and the
    epochs trained) is wrapped to the width of the map. Everything happens on rank zero; nothing is computed during
    the training steps.

    The points come from the datamodule's ``datasets[split]`` (``inputs``/``targets``), or from the trainer's
    dataloader when its dataset is a ``TensorDataset``. Where the inputs do not have exactly two features, the
    targets are not class labels or no points are found, one warning is emitted and nothing is drawn.

    Args:
        every_n_epochs: also draw after every n-th training epoch; None draws only at the end of fit.
        resolution: grid points along each axis, >= 2.
        padding: margin around the points on each side, as a fraction of their range (>= 0).
        probability: for two classes, show the probability of class 1 (and the 0.5 contour) rather than
            the predicted class.
        splits: the splits whose points are drawn (``"train"``, ``"val"``, ``"test"``), each with its marker.
        axis_labels: labels of the two input axes.
        filename: name of the PNG in the run folder.
        tag: TensorBoard image tag.
        figsize: size of the figure in inches (saved at 100 dpi, so ``(6.4, 4.8)`` is 640×480 pixels).

    Attributes:
        boundary: the last :class:`BoundaryMap` drawn (grid, probabilities, points), None before.
        last_figure: the last figure drawn.
        plot_path: where it was saved (None before, and on other ranks).
        drawn_epochs: the epochs trained at each drawing.

    Raises:
        ValueError: naming the argument, for a value out of range.

    Example:
        >>> boundary = DecisionBoundary(every_n_epochs=10)
        >>> boundary.filename, boundary.tag, boundary.resolution
        ('decision_boundary.png', 'decision_boundary', 200)
    """

    def __init__(self, every_n_epochs: int | None = None, resolution: int = 200, padding: float = 0.1,
                 probability: bool = True, splits: Sequence[str] = ("train",),
                 axis_labels: tuple[str, str] = ("input feature x₁", "input feature x₂"),
                 filename: str = "decision_boundary.png", tag: str = "decision_boundary",
                 figsize: tuple[float, float] = (6.4, 4.8)) -> None:
        if every_n_epochs is not None and (isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int)
                                           or every_n_epochs < 1):
            raise ValueError(f"`every_n_epochs` must be None or an integer >= 1, got {every_n_epochs!r}")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
            raise ValueError(f"`resolution` must be an integer >= 2, got {resolution!r}")
        if isinstance(padding, bool) or not isinstance(padding, (int, float)) or not padding >= 0:
            raise ValueError(f"`padding` must be a number >= 0 (a fraction of the points' range), got {padding!r}")
        unknown = [s for s in splits if s not in SPLIT_MARKERS]
        if isinstance(splits, str) or not splits or unknown:
            raise ValueError(f"`splits` must be a non-empty list of {list(SPLIT_MARKERS)}, got {splits!r}")
        if len(axis_labels) != 2:
            raise ValueError(f"`axis_labels` must be two labels, got {axis_labels!r}")
        self.every_n_epochs = every_n_epochs
        self.resolution = resolution
        self.padding = float(padding)
        self.probability = probability
        self.splits = list(splits)
        self.axis_labels = tuple(axis_labels)
        self.filename = png_filename(filename)
        self.tag = tag
        self.figsize = tuple(figsize)
        self.boundary: BoundaryMap | None = None
        self.last_figure: Figure | None = None
        self.plot_path: Path | None = None
        self.drawn_epochs: list[int] = []
        self._points: dict[str, tuple[Tensor, Tensor]] | None = None

    # -- data -------------------------------------------------------------------------------------
    def find_points(self, trainer: pl.Trainer) -> dict[str, tuple[Tensor, Tensor]] | None:
        """``{split: (inputs (n, 2), targets (n,))}`` on the CPU, or None (after one warning) when the data is
        not a 2-D classification set."""
        found = find_split_points(
            trainer, self.splits, type(self).__name__, features=2, drawn="2-D inputs",
            targets_fit=lambda t: not (t.is_floating_point() or t.is_complex() or t.dim() != 1),
            targets_wanted="needs class labels (integer targets, one per sample)")
        if found is None:
            return None
        return {split: (inputs.reshape(len(inputs), 2), targets) for split, (inputs, targets) in found.items()}

    def grid(self, inputs: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``(xx, yy)``: the ``resolution`` × ``resolution`` grid over ``inputs`` ``(n, 2)`` with the padding.

        Example:
            >>> xx, yy = DecisionBoundary(resolution=3, padding=0.5).grid(torch.tensor([[0.0, 0.0], [2.0, 4.0]]))
            >>> xx[0].tolist(), yy[:, 0].tolist()
            ([-1.0, 1.0, 3.0], [-2.0, 2.0, 6.0])
        """
        values = inputs.double()
        low, high = values.min(dim=0).values, values.max(dim=0).values
        span = torch.where(high > low, high - low, torch.ones_like(high))
        low, high = low - self.padding * span, high + self.padding * span
        axes = [np.linspace(float(low[i]), float(high[i]), self.resolution) for i in range(2)]
        return np.meshgrid(axes[0], axes[1], indexing="xy")

    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epochs: int) -> BoundaryMap | None:
        """Evaluate the module on the grid: the :class:`BoundaryMap` for the current weights (None when the
        data is not a 2-D classification set)."""
        if self._points is None:
            self._points = self.find_points(trainer) or {}
        if not self._points:
            return None
        xx, yy = self.grid(torch.cat([inputs for inputs, _ in self._points.values()]))
        inputs = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], axis=1)).float()
        probs = to_probabilities(evaluate_on(trainer, pl_module, inputs))
        datamodule = getattr(trainer, "datamodule", None)
        names = list(getattr(datamodule, "classes", None) or getattr(pl_module.hparams, "classes", None) or [])
        if len(names) != probs.shape[1]:
            names = [str(c) for c in range(probs.shape[1])]
        shown = {split: self._points[split] for split in self.splits if split in self._points}
        title = f"{run_name(trainer)}: decision boundary after {epochs} epoch{'s' * (epochs != 1)}"
        return BoundaryMap(xx, yy, probs.numpy().reshape(*xx.shape, -1), epochs, title, shown, names)

    # -- hooks ------------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._points = self.find_points(trainer) or {}
        self.drawn_epochs = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epochs = trainer.current_epoch + 1
        if self.every_n_epochs and epochs % self.every_n_epochs == 0:
            self._draw(trainer, pl_module, epochs)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epochs = trainer.current_epoch  # the epochs completed
        if not self.drawn_epochs or self.drawn_epochs[-1] != epochs:
            self._draw(trainer, pl_module, epochs)

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epochs: int) -> None:
        if not self._points:
            return

        def make_figure() -> Figure:
            self.boundary = self.compute(trainer, pl_module, epochs)
            self.last_figure = self.plot()
            return self.last_figure

        path = save_to_run(trainer, make_figure, self.filename, self.tag)
        self.plot_path = path or self.plot_path
        self.drawn_epochs.append(epochs)

    # -- drawing ----------------------------------------------------------------------------------
    def draw(self, axes: Axes, boundary: BoundaryMap | None = None, title: str | None = None,
             colorbar: bool = True, legend: bool = True) -> None:
        """Draw ``boundary`` (default: :attr:`boundary`) on ``axes``: the map, the boundary, the points."""
        boundary = boundary or self.boundary
        if boundary is None:
            raise ValueError("nothing to draw yet: the boundary is computed at the end of fit")
        xx, yy = boundary.xx, boundary.yy
        num_classes = boundary.num_classes
        colors = [CLASS_COLORS[c % len(CLASS_COLORS)] for c in range(num_classes)]
        if num_classes == 2 and self.probability:
            filled = axes.contourf(xx, yy, boundary.probs[..., 1], levels=np.linspace(0, 1, 11), cmap="RdBu_r",
                                   alpha=0.75)
            axes.contour(xx, yy, boundary.probs[..., 1], levels=[0.5], colors="black", linewidths=1.5)
            if colorbar:
                bar = axes.figure.colorbar(filled, ax=axes)
                bar.set_label(f"P(class {boundary.class_names[1]!r})")
        else:
            predicted = boundary.predicted
            axes.contourf(xx, yy, predicted, levels=np.arange(num_classes + 1) - 0.5, cmap=ListedColormap(colors),
                          alpha=0.35)
            axes.contour(xx, yy, predicted, levels=np.arange(num_classes - 1) + 0.5, colors="black", linewidths=1)
        for split, (inputs, targets) in boundary.points.items():
            for c in range(num_classes):
                chosen = targets == c
                if bool(chosen.any()):
                    axes.scatter(inputs[chosen, 0].numpy(), inputs[chosen, 1].numpy(), s=22, color=colors[c],
                                 marker=SPLIT_MARKERS[split], edgecolors="black", linewidths=0.6,
                                 label=f"{SPLIT_LABELS[split]}: class {boundary.class_names[c]}")
        axes.set_xlim(float(xx.min()), float(xx.max()))
        axes.set_ylim(float(yy.min()), float(yy.max()))
        axes.set_xlabel(self.axis_labels[0])
        axes.set_ylabel(self.axis_labels[1])
        axes.set_title(wrap_title(boundary.title if title is None else title, title_width(axes)))
        if legend:
            axes.legend(loc="best", fontsize="small", framealpha=0.8)

    def plot(self) -> Figure:
        """The figure of :attr:`boundary`."""
        figure = Figure(figsize=self.figsize)  # no pyplot: headless, and the user's backend is left alone
        self.draw(figure.subplots())
        figure.tight_layout()
        return figure
