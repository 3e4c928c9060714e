"""Confusion matrix and per-class accuracy of a classifier on the validation and test splits."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor
from torchmetrics.classification import BinaryConfusionMatrix, MulticlassConfusionMatrix

from lit_reg.callbacks.split_predictions import SplitPredictions, SplitReport


class ConfusionMatrix(SplitReport):
    """Count true vs predicted classes over a whole split; plot the matrix and report each class's accuracy.

    At the end of training for the validation split (and after ``trainer.validate``), and after ``trainer.test``
    for the datamodule's test split, the model is run over the whole split
    (:func:`~lit_reg.callbacks.split_predictions.predict_split`). torchmetrics' ``MulticlassConfusionMatrix``
    (softmax over one logit per class) or ``BinaryConfusionMatrix`` (one logit, sigmoid, threshold 0.5) counts
    the samples: row = true class, column = predicted class. Then, on rank zero:

    - the matrix is drawn (counts in the cells; with ``normalize`` each row divided by its class's count, so the
      diagonal is the per-class accuracy) into ``<trainer.log_dir>/confusion_matrix_<stage>.png`` and the
      TensorBoard image ``confusion_matrix/<stage>``;
    - the per-class table (class, count, correct, accuracy) is written as
      ``<trainer.log_dir>/per_class_accuracy_<stage>.csv`` and logged as the TensorBoard text
      ``per_class_accuracy/<stage>`` (a markdown table). A class without samples has accuracy ``nan``.

    Classifiers only, on any datamodule with in-memory splits and class names (images or not); for a regressor
    or regression data it warns once and draws nothing. Costs nothing during training.

    .. note::
        The cells are drawn here with ``imshow`` rather than torchmetrics' ``plot()``, whose fixed 15-point cell
        text does not fit ten classes at TensorBoard's figure size.

    Args:
        normalize: draw each row as shares of its true class instead of counts (:attr:`matrix` stays counts).
        stages: which of ``"val"`` and ``"test"`` to report.
        batch_size: samples per forward pass over the split.
        warn: warn once where it draws nothing (regression data, no images); the defaults (``default_callbacks``,
            the CLI) pass False, so toy regression runs stay quiet.
        figsize: size of the figure in inches (saved at 100 dpi); None grows it with the number of classes from
            6.4×4.8 (640×480 pixels).

    Attributes:
        matrix: ``{stage: (C, C) tensor of counts}``, rows true classes, columns predicted ones.
        per_class: ``{stage: [{"class", "count", "correct", "accuracy"}, ...]}``, one dict per class.
        accuracy: ``{stage: overall accuracy}``.
        plot_paths: ``{stage: path of the PNG}``; ``csv_paths``: ``{stage: path of the CSV}``.
        last_figure: the last figure drawn (a matplotlib ``Figure``, for notebooks).

    Raises:
        ValueError: naming ``stages``, ``batch_size`` or ``figsize`` when out of range.

    Example:
        >>> ConfusionMatrix(normalize=True).normalize
        True
    """

    name = "confusion_matrix"

    def __init__(self, normalize: bool = False, stages: Sequence[str] = SplitReport.STAGES, batch_size: int = 1024,
                 figsize: tuple[float, float] | None = None, warn: bool = True) -> None:
        if figsize is not None and (len(figsize) != 2 or min(figsize) <= 0):
            raise ValueError(f"`figsize` must be None or two positive sizes in inches, got {figsize!r}")
        super().__init__(stages=stages, batch_size=batch_size, warn=warn)
        self.normalize = normalize
        self.figsize = None if figsize is None else (float(figsize[0]), float(figsize[1]))
        self.matrix: dict[str, Tensor] = {}
        self.per_class: dict[str, list[dict[str, Any]]] = {}
        self.accuracy: dict[str, float] = {}
        self.csv_paths: dict[str, Path] = {}
        self._classes: dict[str, list[str]] = {}
        self._splits: dict[str, str] = {}

    @staticmethod
    def count(predictions: SplitPredictions) -> Tensor:
        """The ``(C, C)`` confusion matrix of ``predictions`` (rows true, columns predicted), with torchmetrics.

        Example:
            >>> import torch
            >>> predictions = SplitPredictions("val", torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]),
            ...                                torch.tensor([0, 1, 1]), torch.tensor([1, 0, 1]), ["a", "b"], False)
            >>> ConfusionMatrix.count(predictions).tolist()
            [[0, 1], [1, 1]]
        """
        if predictions.binary:
            metric = BinaryConfusionMatrix(threshold=0.5)
            return metric(predictions.probs[:, 1], predictions.targets).long()
        metric = MulticlassConfusionMatrix(num_classes=len(predictions.classes))
        return metric(predictions.preds, predictions.targets).long()

    @staticmethod
    def per_class_rows(matrix: Tensor, classes: Sequence[str]) -> list[dict[str, Any]]:
        """One ``{"class", "count", "correct", "accuracy"}`` per class from a confusion ``matrix``.

        Example:
            >>> import torch
            >>> ConfusionMatrix.per_class_rows(torch.tensor([[3, 1], [0, 0]]), ["a", "b"])[0]
            {'class': 'a', 'count': 4, 'correct': 3, 'accuracy': 0.75}
        """
        counts, correct = matrix.sum(dim=1), matrix.diagonal()
        return [{"class": name, "count": int(n), "correct": int(c), "accuracy": int(c) / int(n) if n else float("nan")}
                for name, n, c in zip(classes, counts.tolist(), correct.tolist(), strict=True)]

    def collect(self, stage: str, predictions: SplitPredictions, datamodule: Any) -> None:
        matrix = self.count(predictions)
        self.matrix[stage] = matrix
        self.per_class[stage] = self.per_class_rows(matrix, predictions.classes)
        total = int(matrix.sum())
        self.accuracy[stage] = int(matrix.diagonal().sum()) / total if total else float("nan")
        self._classes[stage] = predictions.classes
        self._splits[stage] = predictions.split

    def table(self, stage: str) -> str:
        """``stage``'s per-class accuracy as a markdown table (what TensorBoard's TEXT tab shows)."""
        lines = ["| class | count | correct | accuracy |", "|---|---:|---:|---:|"]
        lines += [f"| {row['class']} | {row['count']} | {row['correct']} | {row['accuracy']:.4f} |"
                  for row in self.per_class[stage]]
        lines.append(f"| **all** | {int(self.matrix[stage].sum())} | {int(self.matrix[stage].diagonal().sum())} | "
                     f"{self.accuracy[stage]:.4f} |")
        return "\n".join(lines)

    def saved(self, trainer: pl.Trainer, stage: str, path: Path) -> None:
        csv_path = path.parent / f"per_class_accuracy_{stage}.csv"
        with open(csv_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["class", "count", "correct", "accuracy"])
            writer.writeheader()
            writer.writerows(self.per_class[stage])
        self.csv_paths[stage] = csv_path
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(f"per_class_accuracy/{stage}", self.table(stage),
                                           global_step=trainer.global_step)

    def plot(self, stage: str) -> Figure:
        """``stage``'s matrix as a heat map with the value in every cell and the class names on both axes."""
        counts, classes = self.matrix[stage], self._classes[stage]
        size = len(classes)
        values = counts.double()
        if self.normalize:
            values = values / counts.sum(dim=1, keepdim=True).clamp(min=1)
        figsize = self.figsize or (max(6.4, 0.55 * size + 2.6), max(4.8, 0.5 * size + 2.2))
        figure = Figure(figsize=figsize, layout="constrained")
        axes = figure.subplots()
        image = axes.imshow(values.numpy(), cmap="Blues", vmin=0, vmax=1 if self.normalize else None)
        colorbar = figure.colorbar(image, ax=axes)
        colorbar.set_label("share of the true class" if self.normalize else "samples")
        if not self.normalize:
            colorbar.locator = MaxNLocator(integer=True)
            colorbar.update_ticks()
        top = float(values.max()) if values.numel() else 0.0
        fontsize = 9 if size <= 6 else 7
        for row in range(size):
            for column in range(size):
                value = float(values[row, column])
                text = f"{value:.2f}" if self.normalize else str(int(counts[row, column]))
                axes.text(column, row, text, ha="center", va="center", fontsize=fontsize,
                          color="white" if top and value > 0.6 * top else "black")
        axes.set_xticks(range(size), classes, rotation=45 if size > 2 else 0, ha="right" if size > 2 else "center",
                        fontsize=8)
        axes.set_yticks(range(size), classes, fontsize=8)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        shown = "shares of each true class" if self.normalize else "counts"
        axes.set_title(f"Confusion matrix ({shown}), {self._splits[stage]} split: accuracy "
                       f"{self.accuracy[stage]:.3f} of {int(counts.sum())}\n{self._titles.get(stage, '')}",
                       fontsize=9)
        return figure
