"""What the tests of the figure callbacks share: tiny data, a fit with a TensorBoard logger, a model's outputs
computed without the callbacks' code, the check of a saved PNG, and the comparison of a training with and without
a callback."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from PIL import Image
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor

from datamodules import FashionMNISTDataModule, ImageFolderDataModule, ToyRegressionDataModule
from lit_reg.models import DenseClassifier, DenseRegressor
from tests.datamodules.image_trees import write_tree

#: hooks Lightning calls at every training step: a figure callback leaves them alone
PER_STEP_HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward")


def fashion(fashion_root: Path, batch_size: int = 32, **kwargs) -> FashionMNISTDataModule:
    """The tiny FashionMNIST of the ``fashion_root`` fixture, never downloaded."""
    return FashionMNISTDataModule(data_dir=str(fashion_root), batch_size=batch_size, download=False, **kwargs)


def bitmoji(tmp_path: Path, counts: dict[str, int], **kwargs) -> ImageFolderDataModule:
    """A tiny two-class image folder (12×12 gray) under ``tmp_path/bitmoji``, also its test split; a quarter of
    the training images validate."""
    root = write_tree(tmp_path / "bitmoji", counts)
    return ImageFolderDataModule(str(root), test_dir=str(root), image_size=12, cache_dir=None, val_fraction=0.25,
                                 batch_size=16, **kwargs)


def fit_logged(tmp_path: Path, make_trainer: Callable[..., pl.Trainer], model: pl.LightningModule,
               datamodule: pl.LightningDataModule, callbacks: list[Callback], epochs: int = 1, test: bool = True,
               **trainer_kwargs) -> pl.Trainer:
    """Fit ``model`` for ``epochs`` epochs with ``callbacks`` and a TensorBoard logger writing to
    ``tmp_path/run/version_0``, then test it unless ``test`` is False."""
    logger = TensorBoardLogger(str(tmp_path), name="run", default_hp_metric=False)
    trainer = make_trainer(max_epochs=epochs, logger=logger, callbacks=callbacks, **trainer_kwargs)
    trainer.fit(model, datamodule=datamodule)
    if test:
        trainer.test(model, datamodule=datamodule, verbose=False)
    return trainer


def outputs_of(model: torch.nn.Module, datamodule, split: str) -> tuple[Tensor, Tensor]:
    """``(outputs, targets)``: the model's outputs on every sample of ``split`` in eval mode (left on) without
    gradients, and the split's targets: computed without the callbacks' code."""
    model.eval()
    with torch.no_grad():
        outputs = model(datamodule.transform_inputs(datamodule.datasets[split].inputs))
    return outputs, datamodule.datasets[split].targets


def assert_png(path: Path, figure: Figure) -> None:
    """``path`` is a PNG of ``figure``'s size at 100 dpi, and not blank (more than one colour)."""
    width, height = figure.get_size_inches() * 100
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (round(width), round(height))
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 0 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1


def warnings_naming(name: str, run: Callable[[], object]) -> list[str]:
    """The messages of the warnings raised by ``run()`` that contain ``name`` (every warning is recorded)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [str(w.message) for w in caught if name in str(w.message)]


def regression_warnings(tmp_path: Path, make_trainer: Callable[..., pl.Trainer], callback: Callback) -> list[str]:
    """Fit and test a small ``DenseRegressor`` on the linear toy regression set with ``callback``
    (:func:`fit_logged`); the messages of the warnings that name the callback's class."""
    return warnings_naming(type(callback).__name__, lambda: fit_logged(
        tmp_path, make_trainer, DenseRegressor(hidden_sizes=[4]), ToyRegressionDataModule("linear", batch_size=5),
        [callback]))


def train_classifier(make_trainer: Callable[..., pl.Trainer], make_datamodule: Callable[[], pl.LightningDataModule],
                     callbacks: list[Callback], **trainer_kwargs) -> tuple[DenseClassifier, Tensor]:
    """Seeded two-epoch fit of a FashionMNIST ``DenseClassifier`` with dropout; the model and the global RNG
    state after it."""
    pl.seed_everything(0, verbose=False)
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[16], dropout=0.3)
    make_trainer(max_epochs=2, callbacks=callbacks, **trainer_kwargs).fit(model, datamodule=make_datamodule())
    return model, torch.get_rng_state()


def assert_training_unchanged(make_trainer: Callable[..., pl.Trainer],
                              make_datamodule: Callable[[], pl.LightningDataModule], callback: Callback,
                              **trainer_kwargs) -> None:
    """:func:`train_classifier` gives the same weights and leaves the same RNG state with ``callback`` as
    without it (what comes after the fit draws the same numbers too)."""
    plain, plain_rng = train_classifier(make_trainer, make_datamodule, [], **trainer_kwargs)
    watched, watched_rng = train_classifier(make_trainer, make_datamodule, [callback], **trainer_kwargs)
    for a, b in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(plain_rng, watched_rng)


def assert_no_hooks(callback_class: type[Callback], extra: Sequence[str] = ()) -> None:
    """``callback_class`` overrides none of :data:`PER_STEP_HOOKS` nor the ``extra`` hooks."""
    for hook in (*PER_STEP_HOOKS, *extra):
        assert getattr(callback_class, hook) is getattr(Callback, hook), hook
