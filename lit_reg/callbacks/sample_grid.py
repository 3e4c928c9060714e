"""A grid of training images per class at the start of fit, and of their augmented versions."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from lit_reg.callbacks.figures import save_to_run
from lit_reg.callbacks.split_predictions import (
    NotApplicableError,
    class_names,
    run_title,
    show_image,
    split_data,
)


class SampleGrid(Callback):
    """Draw ``per_class`` training images of every class, one row per class, when a fit starts.

    The lectures' first look at a data set (the Bitmoji grid, labelled FashionMNIST samples): at
    ``on_fit_start`` the images are drawn from ``trainer.datamodule.datasets["train"]`` (uint8 ``(N, H, W)`` or
    ``(N, C, H, W)``, 1 or 3 channels), picked per class with a local ``torch.Generator`` seeded with ``seed`` (the
    same images on every run), the class names (``datamodule.classes``) as row titles. The grid goes to
    ``<trainer.log_dir>/samples.png`` and the TensorBoard image ``samples/train``.

    When the datamodule augments its training batches (``datamodule.augmentation`` is not None), the same images
    are also drawn as the net is fed them, through ``datamodule.augment_batch`` on floats in [0, 1], into
    ``samples_augmented.png`` / ``samples/augmented``. The augmentation draws from torch's global CPU generator:
    it runs inside ``torch.random.fork_rng`` with that generator seeded with ``seed``, so the augmented grid is
    the same on every run and the global RNG state afterwards is exactly what it was before (training is
    unchanged).

    Non-image data (e.g. toy regression) or a datamodule without a training split or class labels: one warning,
    nothing drawn.

    Args:
        per_class: images per class (columns), > 0.
        seed: seed of the choice of images and of the augmentation.
        augmented: also draw the augmented grid when the datamodule augments.
        panel_size: size of one image panel in inches (saved at 100 dpi).
        warn: warn once where it draws nothing (regression data, no images); the defaults (``default_callbacks``,
            the CLI) pass False, so toy regression runs stay quiet.

    Attributes:
        indices: ``{class name: indices into the training split}`` of the images drawn (fewer than
            ``per_class`` for a class that has fewer images).
        panels: number of images in the grid.
        augmented_images: the augmented versions drawn (float, in [0, 1]), row by row; None without augmentation.
        plot_paths: ``{"train": path, "augmented": path}`` of the PNGs saved.
        last_figure: the last figure drawn (the augmented grid when there is one), for notebooks.

    Raises:
        ValueError: naming ``per_class`` or ``panel_size`` when out of range.

    Example:
        >>> grid = SampleGrid(per_class=3)
        >>> grid.per_class, grid.seed
        (3, 0)
    """

    def __init__(self, per_class: int = 5, seed: int = 0, augmented: bool = True,
                 panel_size: tuple[float, float] = (1.0, 1.0), warn: bool = True) -> None:
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class <= 0:
            raise ValueError(f"`per_class` must be a positive integer, got {per_class!r}")
        if len(panel_size) != 2 or min(panel_size) <= 0:
            raise ValueError(f"`panel_size` must be two positive sizes in inches, got {panel_size!r}")
        self.per_class = per_class
        self.seed = seed
        self.augmented = augmented
        self.panel_size = (float(panel_size[0]), float(panel_size[1]))
        self.indices: dict[str, Tensor] = {}
        self.augmented_images: Tensor | None = None
        self.plot_paths: dict[str, Path] = {}
        self.last_figure: Figure | None = None
        self._images: Tensor | None = None
        self._title = ""
        self._augmentation = ""
        self._warned = not warn

    @property
    def panels(self) -> int:
        return sum(len(chosen) for chosen in self.indices.values())

    def choose(self, targets: Tensor, classes: list[str]) -> dict[str, Tensor]:
        """Up to ``per_class`` indices of each class in ``targets``, drawn with a generator seeded with ``seed``.

        Example:
            >>> SampleGrid(per_class=2).choose(torch.tensor([0, 1, 0, 0]), ["a", "b"])["b"].tolist()
            [1]
        """
        generator = torch.Generator().manual_seed(self.seed)
        chosen = {}
        for label, name in enumerate(classes):
            members = torch.nonzero(targets.cpu() == label).flatten()
            chosen[name] = members[torch.randperm(len(members), generator=generator)[: self.per_class]]
        return chosen

    def augment(self, datamodule: pl.LightningDataModule, images: Tensor) -> Tensor:
        """``images`` (uint8) augmented as training batches are, seeded with ``seed``; the global RNG untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(self.seed)  # the CPU generator only (torch.manual_seed seeds CUDA)
            return datamodule.augment_batch(images.cpu().float() / 255.0).clamp(0.0, 1.0)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        try:
            inputs, targets = split_data(datamodule, "train", images=True)
            classes = class_names(datamodule)
            if classes is None:
                raise NotApplicableError(f"needs the class names of {type(datamodule).__name__}")
        except NotApplicableError as err:
            if not self._warned:
                self._warned = True
                rank_zero_warn(f"SampleGrid draws nothing: {err}")
            return
        self.indices = self.choose(targets, classes)
        order = torch.cat(list(self.indices.values())) if self.indices else torch.zeros(0, dtype=torch.long)
        self._images = inputs[order.to(inputs.device)].cpu()
        self._title = run_title(trainer, start=True)
        augmentation = getattr(datamodule, "augmentation", None)
        self.augmented_images = None
        self._augmentation = repr(augmentation)
        path = save_to_run(trainer, lambda: self._keep(self.plot(self._images)), "samples.png", "samples/train")
        if path is not None:
            self.plot_paths["train"] = path
        if self.augmented and augmentation is not None and hasattr(datamodule, "augment_batch"):
            def draw_augmented() -> Figure:  # on rank zero only, as every drawing
                self.augmented_images = self.augment(datamodule, self._images)
                return self._keep(self.plot(self.augmented_images, augmented=True))

            path = save_to_run(trainer, draw_augmented, "samples_augmented.png", "samples/augmented")
            if path is not None:
                self.plot_paths["augmented"] = path

    def _keep(self, figure: Figure) -> Figure:
        self.last_figure = figure
        return figure

    def plot(self, images: Tensor, augmented: bool = False) -> Figure:
        """The grid of ``images`` (those of :attr:`indices`, in their order), one row per class."""
        rows = max(1, len(self.indices))
        columns = max(1, max((len(chosen) for chosen in self.indices.values()), default=1))
        width, height = self.panel_size
        label_width = 0.12 * max((len(name) for name in self.indices), default=4) + 0.3
        figure = Figure(figsize=(max(width * columns + label_width, 4.0), height * rows + 0.8), layout="constrained")
        grid = figure.subplots(rows, columns, squeeze=False)
        position = 0
        for row, (name, chosen) in enumerate(self.indices.items()):
            for column in range(columns):
                axes = grid[row, column]
                if column < len(chosen):
                    show_image(axes, images[position])
                    position += 1
                else:
                    axes.set_xticks([])
                    axes.set_yticks([])
                    axes.set_frame_on(False)
                if column == 0:
                    axes.set_ylabel(name if len(chosen) else f"{name} (none)", rotation=0, ha="right", va="center",
                                    fontsize=9)
        what = (f"Augmented training samples (what the net is fed)\n{self._augmentation}" if augmented
                else f"Training samples, {self.per_class} per class")
        figure.suptitle(f"{what}\n{self._title}", fontsize=10)
        return figure
