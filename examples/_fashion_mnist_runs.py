"""What the FashionMNIST examples share: the data (real, or generated with ``--fast``), configs read from
``configs/``, and one fit followed by the test of its best checkpoint on each test split."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from _common import exit_with

from datamodules import FashionMNISTDataModule
from datamodules.fakes import write_fashion_mnist
from lit_reg import DenseClassifier, default_callbacks, default_logger
from lit_reg.callbacks import LearningCurves

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DATA_DIR = os.environ.get("LIT_REG_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=DATA_DIR,
                        help="the four FashionMNIST files (default: Debian's path or $LIT_REG_FASHION_MNIST)")
    parser.add_argument("--seed", type=int, default=0)


def config(name: str) -> tuple[dict[str, Any], dict[str, Any], int]:
    """``(model init_args, data init_args, max_epochs)`` of ``configs/<name>.yaml``."""
    with open(CONFIGS / f"{name}.yaml") as f:
        loaded = yaml.safe_load(f)
    data = {k: v for k, v in loaded["data"]["init_args"].items() if k != "data_dir"}
    return dict(loaded["model"]["init_args"]), data, loaded["trainer"]["max_epochs"]


def datamodule(args: argparse.Namespace, out: Path, **kwargs: Any) -> FashionMNISTDataModule:
    """The real set from ``--data-dir`` (no download), or with ``--fast`` small generated files; set up."""
    data_dir = args.data_dir
    if args.fast:
        data_dir = str(out / "fake_fashion_mnist")
        write_fashion_mnist(data_dir, num_train=300, num_test=100)
    data = FashionMNISTDataModule(data_dir, download=False, **kwargs)
    try:
        data.setup()
    except (RuntimeError, ValueError) as error:
        exit_with(str(error))
    return data


def fit_and_test(name: str, model_kwargs: dict[str, Any], data: FashionMNISTDataModule, out: Path, max_epochs: int,
                 seed: int, test_splits: tuple[str, ...] = ("test",), monitor: str = "val_loss") -> dict[str, Any]:
    """Fit a ``DenseClassifier`` (early stopping on ``val_loss`` unless ``monitor`` is ``val_acc``), then test its
    best checkpoint on every split of ``test_splits``: ``{"net", "epochs", "best epoch", "<split> acc"...}``."""
    pl.seed_everything(seed, verbose=False)
    model = DenseClassifier(input_size=data.input_size, num_classes=data.num_classes, **model_kwargs)
    callbacks = default_callbacks(early_stopping=monitor == "val_loss", weight_norm=False, monitor=monitor,
                                  mode="max" if monitor == "val_acc" else "min")
    trainer = pl.Trainer(max_epochs=max_epochs, logger=default_logger(name, save_dir=str(out)), callbacks=callbacks,
                         enable_model_summary=False, enable_progress_bar=False)
    trainer.fit(model, datamodule=data)
    curves = next(c for c in callbacks if isinstance(c, LearningCurves))  # its monitor and mode are the checkpoint's
    result: dict[str, Any] = {"net": name, "epochs": trainer.current_epoch, "best epoch": curves.best_epoch}
    previous = data.test_split
    for split in test_splits:
        data.test_split = split
        (metrics,) = trainer.test(model, datamodule=data, ckpt_path="best", verbose=False)
        result[f"{split} acc"] = metrics["test_acc"]
    data.test_split = previous
    return result
