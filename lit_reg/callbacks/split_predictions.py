"""Class probabilities of a whole datamodule split, and the helpers the image-figure callbacks share.

:func:`predict_split` runs a classifier over ``datamodule.datasets[split]`` in chunks (eval mode, no gradients,
the module's train/eval flags and the RNG state restored afterwards). :class:`SplitReport` is the base of
:class:`~lit_reg.callbacks.Mistakes` and :class:`~lit_reg.callbacks.ConfusionMatrix`: it runs
:func:`predict_split` when fit, validate or test ends and saves the figure. :func:`split_data`,
:func:`show_image` and :func:`run_title` are shared with :class:`~lit_reg.callbacks.SampleGrid`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from lit_reg.callbacks.figures import save_to_run


class NotApplicableError(ValueError):
    """The model or the datamodule does not give what a callback needs (class labels, images, ...)."""


@dataclass
class SplitPredictions:
    """What a classifier predicts for every sample of one split.

    Attributes:
        split: the datamodule split (``"val"``, ``"test"``, ``"test_rotated"``, ...).
        probs: ``(N, C)`` class probabilities; a one-logit (binary) model gives ``[1 - p, p]``.
        preds: ``(N,)`` predicted class indices (binary: ``p > 0.5``, a tie counts as the negative class, as the
            ``Binary*`` metrics of torchmetrics and :class:`~lit_reg.models.BitmojiClassifier` count it).
        targets: ``(N,)`` true class indices.
        classes: the class names, in index order.
        binary: whether the model has one logit (sigmoid) rather than one per class (softmax).
    """

    split: str
    probs: Tensor
    preds: Tensor
    targets: Tensor
    classes: list[str]
    binary: bool

    @property
    def confidence(self) -> Tensor:
        """``(N,)`` probability of the predicted class."""
        return self.probs.gather(1, self.preds.view(-1, 1)).squeeze(1)

    @property
    def wrong(self) -> Tensor:
        """``(N,)`` bool: the prediction differs from the true class."""
        return self.preds != self.targets


def class_names(datamodule: Any) -> list[str] | None:
    """The datamodule's class names (``classes``, else ``"0"``, ``"1"``, ... for ``num_classes``), None without.

    Example:
        >>> class Data:
        ...     num_classes = 3
        >>> class_names(Data())
        ['0', '1', '2']
    """
    classes = getattr(datamodule, "classes", None)
    if classes:
        return [str(name) for name in classes]
    num_classes = getattr(datamodule, "num_classes", None)
    return [str(i) for i in range(num_classes)] if num_classes else None


def split_data(datamodule: Any, split: str, images: bool = False) -> tuple[Tensor, Tensor]:
    """``(inputs, targets)`` of ``datamodule.datasets[split]`` (set up first if needed).

    Raises:
        NotApplicableError: no datamodule, no such split, inputs that are not images (:func:`is_image_batch`) when
            ``images`` is set, or targets that are not one class index per sample.
    """
    if datamodule is None or not hasattr(datamodule, "datasets"):
        raise NotApplicableError("needs a datamodule with in-memory `datasets` (an InMemoryDataModule), got "
                                 f"{type(datamodule).__name__}")
    if split not in datamodule.datasets and hasattr(datamodule, "setup"):
        datamodule.setup()
    dataset = datamodule.datasets.get(split)
    if dataset is None:
        raise NotApplicableError(f"{type(datamodule).__name__} has no {split!r} split")
    inputs, targets = dataset.inputs, dataset.targets
    if images and not is_image_batch(inputs):
        found = f"{inputs.dtype} {tuple(inputs.shape)}" if isinstance(inputs, Tensor) else type(inputs).__name__
        raise NotApplicableError(f"needs uint8 images (N, [C,] H, W) in the {split!r} split of "
                                 f"{type(datamodule).__name__}, got {found}")
    if not isinstance(targets, Tensor) or targets.dim() != 1 or targets.is_floating_point():
        raise NotApplicableError(f"needs class labels, but the {split!r} targets of {type(datamodule).__name__} "
                                 "are not one integer class index per sample (regression data?)")
    return inputs, targets


def is_image_batch(inputs: Any) -> bool:
    """Whether ``inputs`` is a uint8 batch of images: ``(N, H, W)`` or ``(N, C, H, W)`` with 1 or 3 channels.

    Example:
        >>> is_image_batch(torch.zeros(2, 28, 28, dtype=torch.uint8)), is_image_batch(torch.zeros(2, 1))
        (True, False)
    """
    if not isinstance(inputs, Tensor) or inputs.dtype != torch.uint8:
        return False
    return inputs.dim() == 3 or (inputs.dim() == 4 and inputs.shape[1] in (1, 3))


def show_image(axes: Axes, image: Tensor) -> None:
    """Draw one image (uint8 in 0-255 or float in [0, 1]; ``(H, W)``, ``(1, H, W)`` or ``(3, H, W)``) into
    ``axes`` without ticks, grayscale images with the gray colour map and their full value range."""
    image = image.detach().cpu()
    if image.dim() == 3 and image.shape[0] == 1:
        image = image[0]
    top = 255 if image.dtype == torch.uint8 else 1.0
    if image.dim() == 3:  # RGB: channels last for imshow
        image = image.permute(1, 2, 0)
        axes.imshow(image.numpy() if image.dtype == torch.uint8 else image.clamp(0, 1).numpy())
    else:
        axes.imshow(image.float().numpy(), cmap="gray", vmin=0, vmax=top)
    axes.set_xticks([])
    axes.set_yticks([])


def run_name(trainer: pl.Trainer) -> str:
    """A short name of the run for figure titles: ``<logger name>/version_<v>``, else the run folder's name.

    Reads only local attributes (no broadcast), so it is safe on rank zero alone.
    """
    logger = trainer.logger
    if logger is not None and logger.name:
        version = logger.version
        version = version if isinstance(version, str) else f"version_{version}"
        return f"{logger.name}/{version}"
    return str(trainer.default_root_dir).rstrip("/").rpartition("/")[2] or "run"


@contextlib.contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[None]:
    """Put ``module`` in eval mode, without gradients and with the RNG state saved, for the block; afterwards
    every submodule's own train/eval flag and the CPU (and the module's CUDA device's) RNG state are back."""
    modes = {sub: sub.training for sub in module.modules()}
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        module.eval()
        try:
            yield
        finally:
            for sub, training in modes.items():
                sub.training = training


def class_probabilities(outputs: Tensor, num_classes: int) -> tuple[Tensor, bool]:
    """``((N, C) probabilities, binary)`` from a model's outputs: softmax of ``(N, C)`` logits, or for a
    two-class problem the sigmoid of one logit per sample (``(N,)`` or ``(N, 1)``), stacked as ``[1 - p, p]``.

    Raises:
        NotApplicableError: outputs of another shape (a regressor's, or a class count that differs).

    Example:
        >>> probs, binary = class_probabilities(torch.tensor([0.0, 2.0]), 2)
        >>> [[round(p, 3) for p in row] for row in probs.tolist()], binary
        ([[0.5, 0.5], [0.119, 0.881]], True)
    """
    outputs = outputs.float()
    if num_classes == 2 and (outputs.dim() == 1 or (outputs.dim() == 2 and outputs.shape[1] == 1)):
        positive = outputs.reshape(-1).sigmoid()
        return torch.stack([1 - positive, positive], dim=1), True
    if outputs.dim() == 2 and outputs.shape[1] == num_classes:
        return outputs.softmax(dim=1), False
    raise NotApplicableError(f"needs a classifier's logits, one per class ({num_classes}) or one for two classes; "
                             f"the model gives outputs of shape {tuple(outputs.shape)}")


def predict_split(pl_module: pl.LightningModule, datamodule: Any, split: str, batch_size: int = 1024,
                  trainer: pl.Trainer | None = None) -> SplitPredictions:
    """Run ``pl_module`` over every sample of ``datamodule.datasets[split]`` and return its class probabilities.

    Inputs go through ``datamodule.transform_inputs`` (uint8 → the model's normalized floats, no augmentation),
    ``batch_size`` at a time, on the module's device, in eval mode under ``torch.no_grad()``; under a ``trainer``
    its precision plugin's forward context applies (as in a validation step). The module's train/eval flags and
    the global RNG state are restored afterwards, so calling this during a fit changes nothing in it.

    Raises:
        NotApplicableError: the datamodule has no such split or no class labels, or the model is no classifier.
    """
    inputs, targets = split_data(datamodule, split)
    classes = class_names(datamodule)
    if classes is None or len(classes) < 2:
        raise NotApplicableError(f"needs the class names (`classes` or `num_classes`) of {type(datamodule).__name__}")
    if not hasattr(datamodule, "transform_inputs"):
        raise NotApplicableError(f"needs `transform_inputs` of the datamodule ({type(datamodule).__name__} has none)")
    precision = trainer.precision_plugin if trainer is not None else None
    device = pl_module.device
    chunks: list[Tensor] = []
    binary = False
    with evaluating(pl_module):
        for start in range(0, len(inputs), batch_size):
            x = datamodule.transform_inputs(inputs[start:start + batch_size].to(device))
            if precision is None:
                outputs = pl_module(x)
            else:
                with precision.forward_context():
                    outputs = pl_module(precision.convert_input(x))
            probs, binary = class_probabilities(outputs, len(classes))
            chunks.append(probs.cpu())
    probs = torch.cat(chunks) if chunks else torch.zeros(0, len(classes))
    preds = (probs[:, 1] > 0.5).long() if binary else probs.argmax(dim=1)
    return SplitPredictions(split=split, probs=probs, preds=preds, targets=targets.cpu().long(), classes=classes,
                            binary=binary)


def run_title(trainer: pl.Trainer, start: bool = False) -> str:
    """``<run name>, after <n> epochs`` for figure titles (the epoch count left out when no epoch ran), or with
    ``start`` ``<run name>, start of epoch <n>``."""
    epochs = trainer.current_epoch
    if start:
        return f"{run_name(trainer)}, start of epoch {epochs}"
    return f"{run_name(trainer)}, after {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else run_name(trainer)


class SplitReport(Callback):
    """Base of the callbacks that evaluate a classifier on a whole split when a stage ends and draw the result.

    ``"val"``: the validation split, at the end of training (``on_train_end``, while the loggers are still open)
    and after ``trainer.validate``; ``"test"``: the datamodule's ``test_split`` (``"test"``, or ``"test_rotated"``
    with ``test_rotation``) after ``trainer.test``. Rank zero computes :func:`predict_split`, hands it to
    :meth:`collect`, then draws :meth:`plot` into ``<log_dir>/<name>_<stage>.png`` and the TensorBoard image
    ``<name>/<stage>``; other ranks only take part in the broadcasts. Where the model or the data do not fit
    (a regressor, no datamodule, no images when :attr:`needs_images`) it warns once and draws nothing.

    Subclasses set :attr:`name` and implement :meth:`collect` and :meth:`plot`; :meth:`saved` runs after the
    figure is saved, on rank zero.

    Args:
        stages: which of ``"val"`` and ``"test"`` to report.
        batch_size: samples per forward pass over the split.
        warn: warn once where it draws nothing (regression data, no images); the defaults (``default_callbacks``,
            the CLI) pass False, so toy regression runs stay quiet.

    Raises:
        ValueError: naming ``stages`` or ``batch_size`` when out of range.
    """

    STAGES = ("val", "test")
    #: file and tag prefix: ``<name>_<stage>.png``, ``<name>/<stage>``
    name = "report"
    #: whether the split's inputs must be uint8 images
    needs_images = False

    def __init__(self, stages: Sequence[str] = STAGES, batch_size: int = 1024, warn: bool = True) -> None:
        if isinstance(stages, str) or not stages or not set(stages) <= set(self.STAGES):
            raise ValueError(f"`stages` must be a non-empty subset of {list(self.STAGES)}, got {stages!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}")
        self.stages = tuple(stages)
        self.batch_size = batch_size
        self.plot_paths: dict[str, Path] = {}
        self.last_figure: Figure | None = None
        self._titles: dict[str, str] = {}
        self._warned = not warn

    def split_of(self, trainer: pl.Trainer, stage: str) -> str:
        """The datamodule split evaluated for ``stage``."""
        if stage == "val":
            return "val"
        return getattr(getattr(trainer, "datamodule", None), "test_split", "test")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.report(trainer, pl_module, "val")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self.report(trainer, pl_module, "val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.report(trainer, pl_module, "test")

    def warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            rank_zero_warn(f"{type(self).__name__} draws nothing: {message}")

    def report(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> Path | None:
        """Evaluate ``stage``'s split, collect the result and save the figure; the PNG's path on rank zero."""
        if stage not in self.stages:
            return None
        ok = False
        if trainer.is_global_zero:
            split = self.split_of(trainer, stage)
            datamodule = getattr(trainer, "datamodule", None)
            try:
                split_data(datamodule, split, images=self.needs_images)
                predictions = predict_split(pl_module, datamodule, split, self.batch_size, trainer)
                self._titles[stage] = run_title(trainer)
                self.collect(stage, predictions, datamodule)
                ok = True
            except NotApplicableError as err:
                self.warn_once(str(err))
        if not trainer.strategy.broadcast(ok):
            return None
        path = save_to_run(trainer, lambda: self._keep(self.plot(stage)), f"{self.name}_{stage}.png",
                           f"{self.name}/{stage}")
        if path is not None:
            self.plot_paths[stage] = path
            self.saved(trainer, stage, path)
        return path

    def _keep(self, figure: Figure) -> Figure:
        self.last_figure = figure
        return figure

    def collect(self, stage: str, predictions: SplitPredictions, datamodule: Any) -> None:
        """Keep what :meth:`plot` draws for ``stage``; raise :class:`NotApplicableError` to skip it."""
        raise NotImplementedError

    def plot(self, stage: str) -> Figure:
        """The figure of ``stage``'s last report."""
        raise NotImplementedError

    def saved(self, trainer: pl.Trainer, stage: str, path: Path) -> None:
        """Called on rank zero after the figure was saved as ``path``."""
