"""The most confidently wrong images of the validation and test splits, with true and predicted labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor

from lit_reg.callbacks.split_predictions import SplitPredictions, SplitReport, show_image

#: how the titles name the usual splits (others: ``The <split> split``)
SPLIT_TITLES = {"train": "Training split", "val": "Validation split", "test": "Test split"}


class Mistakes(SplitReport):
    """Show the ``count`` images a classifier gets wrong with the highest probability for its wrong class.

    The lecture's "failure cases of an MLP": at the end of training for the validation split (and after
    ``trainer.validate``), and after ``trainer.test`` for the datamodule's test split, the model is run over the
    whole split (:func:`~lit_reg.callbacks.split_predictions.predict_split`: eval mode, no gradients, the
    module's mode restored). Among the misclassified images the ``count`` with the highest predicted probability
    are drawn, most confident first, each titled ``true: <class> / pred: <class> (<probability>)``, into
    ``<trainer.log_dir>/mistakes_<stage>.png`` and the TensorBoard image ``mistakes/<stage>``.

    Works for a multi-class model (one logit per class, softmax: :class:`~lit_reg.models.DenseClassifier`) and a
    one-logit binary model (sigmoid, the logit scoring ``classes[1]``: :class:`~lit_reg.models.BitmojiClassifier`),
    on any datamodule whose splits hold uint8 images (FashionMNIST, any ImageFolder tree). Other data (e.g. toy
    regression) or a regressor: one warning, nothing drawn. Costs nothing during training.

    Args:
        count: how many wrong images to show, > 0.
        stages: which of ``"val"`` and ``"test"`` to report.
        batch_size: samples per forward pass over the split.
        panel_size: size of one image panel with its title, in inches (saved at 100 dpi).
        warn: warn once where it draws nothing (regression data, no images); the defaults (``default_callbacks``,
            the CLI) pass False, so toy regression runs stay quiet.

    Attributes:
        indices: ``{stage: (k,) indices into the split}`` of the images shown, most confident first
            (``k = min(count, number wrong)``).
        probabilities: ``{stage: (k,)}`` the predicted probability of each shown image's (wrong) class.
        predicted: ``{stage: (k,)}`` predicted class indices; ``targets``: the true ones.
        num_wrong: ``{stage: number of misclassified images}``; ``num_samples``: the split's size.
        plot_paths: ``{stage: path of the PNG}``.
        last_figure: the last figure drawn (a matplotlib ``Figure``, for notebooks).

    Raises:
        ValueError: naming ``count``, ``stages``, ``batch_size`` or ``panel_size`` when out of range.

    Example:
        >>> mistakes = Mistakes(count=9, stages=["test"])
        >>> mistakes.count, mistakes.stages
        (9, ('test',))
    """

    name = "mistakes"
    needs_images = True

    def __init__(self, count: int = 16, stages: Sequence[str] = SplitReport.STAGES, batch_size: int = 1024,
                 panel_size: tuple[float, float] = (1.8, 2.0), warn: bool = True) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise ValueError(f"`count` must be a positive integer, got {count!r}")
        if len(panel_size) != 2 or min(panel_size) <= 0:
            raise ValueError(f"`panel_size` must be two positive sizes in inches, got {panel_size!r}")
        super().__init__(stages=stages, batch_size=batch_size, warn=warn)
        self.count = count
        self.panel_size = (float(panel_size[0]), float(panel_size[1]))
        self.indices: dict[str, Tensor] = {}
        self.probabilities: dict[str, Tensor] = {}
        self.predicted: dict[str, Tensor] = {}
        self.targets: dict[str, Tensor] = {}
        self.num_wrong: dict[str, int] = {}
        self.num_samples: dict[str, int] = {}
        self._images: dict[str, Tensor] = {}
        self._classes: dict[str, list[str]] = {}
        self._splits: dict[str, str] = {}

    @staticmethod
    def most_confident_wrong(predictions: SplitPredictions, count: int) -> tuple[Tensor, Tensor]:
        """``(indices, probabilities)`` of the ``count`` wrong predictions with the highest probability of the
        predicted class, highest first (ties in index order).

        Example:
            >>> predictions = SplitPredictions("val", torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]),
            ...                                torch.tensor([0, 1, 1]), torch.tensor([1, 0, 1]), ["a", "b"], False)
            >>> Mistakes.most_confident_wrong(predictions, 5)
            (tensor([0, 1]), tensor([0.9000, 0.8000]))
        """
        wrong = torch.nonzero(predictions.wrong).flatten()
        confidence = predictions.confidence[wrong]
        order = torch.sort(confidence, descending=True, stable=True).indices[:count]
        return wrong[order], confidence[order]

    def collect(self, stage: str, predictions: SplitPredictions, datamodule: Any) -> None:
        indices, probabilities = self.most_confident_wrong(predictions, self.count)
        self.indices[stage] = indices
        self.probabilities[stage] = probabilities
        self.predicted[stage] = predictions.preds[indices]
        self.targets[stage] = predictions.targets[indices]
        self.num_wrong[stage] = int(predictions.wrong.sum())
        self.num_samples[stage] = len(predictions.targets)
        inputs = datamodule.datasets[predictions.split].inputs
        self._images[stage] = inputs[indices.to(inputs.device)].cpu()
        self._classes[stage] = predictions.classes
        self._splits[stage] = predictions.split

    @staticmethod
    def split_title(split: str) -> str:
        """How a figure's title names ``split``, capitalized.

        Example:
            >>> Mistakes.split_title("val"), Mistakes.split_title("test_rotated")
            ('Validation split', 'The test_rotated split')
        """
        return SPLIT_TITLES.get(split, f"The {split} split")

    def plot(self, stage: str) -> Figure:
        """The grid of ``stage``'s most confidently wrong images (a note instead when there is none)."""
        images, classes = self._images[stage], self._classes[stage]
        shown = len(images)
        columns = max(1, math.ceil(math.sqrt(shown)))
        rows = max(1, math.ceil(shown / columns))
        width, height = self.panel_size
        size = (max(width * columns, 6.4), max(height * rows + 0.6, 4.8 if not shown else 0.0))
        figure = Figure(figsize=size, layout="constrained")
        wrong = self.num_wrong[stage]
        what = (f"the {shown} most confidently wrong" if shown < wrong else f"all {wrong} wrong") if wrong else "none"
        figure.suptitle(f"{self.split_title(self._splits[stage])}: {what} of {self.num_samples[stage]} images\n"
                        f"{self._titles.get(stage, '')}", fontsize=10)
        if not shown:
            axes = figure.subplots()
            axes.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=12)
            axes.set_axis_off()
            return figure
        grid = figure.subplots(rows, columns, squeeze=False)
        for position, axes in enumerate(grid.flat):
            if position >= shown:
                axes.set_axis_off()
                continue
            show_image(axes, images[position])
            true = classes[int(self.targets[stage][position])]
            pred = classes[int(self.predicted[stage][position])]
            axes.set_title(f"true: {true}\npred: {pred} ({float(self.probabilities[stage][position]):.2f})",
                           fontsize=8)
        return figure
