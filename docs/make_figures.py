"""Make the pictures of docs/figures.md: small seeded runs with every figure callback, PNGs copied to docs/images/.

    python docs/make_figures.py                  # real FashionMNIST when installed, into docs/images/
    python docs/make_figures.py --fast --out DIR # fake FashionMNIST, 2 epochs: what the test runs

Four ``pl.Trainer.fit`` runs on the CPU, each seeded (``pl.seed_everything``, ``deterministic=True``), so a rerun
draws the same pictures:

- FashionMNIST (``/usr/share/datasets/fashion-mnist``, Debian's ``dataset-fashion-mnist``, subsampled with
  ``train_size``; without it, or with ``--fast``, the tiny fake files of
  :func:`datamodules.fakes.write_fashion_mnist`), a small ``DenseClassifier`` with ``Mistakes``,
  ``ConfusionMatrix``, ``StepCurves(live_plot=True)``, ``LearningCurves``, ``WeightNormMonitor``,
  ``WeightHistograms`` and ``OverfittingLayout``; and one batch of it augmented (``augment=True``) with
  ``SampleGrid``;
- the two moons (:class:`~datamodules.ToyClassificationDataModule`) with ``DecisionBoundary``;
- the noisy parabola (:class:`~datamodules.ToyRegressionDataModule` ``"quadratic"``) with
  ``RegressionFit(every_n_epochs=...)``.

The runs log to a temporary folder (``--log-dir`` keeps them, e.g. to look at them in TensorBoard); each PNG a
callback writes in its run folder is copied into ``--out`` under the name in :data:`FIGURES`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from datamodules import FashionMNISTDataModule, ToyClassificationDataModule, ToyRegressionDataModule
from datamodules.fakes import write_fashion_mnist
from lit_reg import DenseClassifier, DenseRegressor, default_logger
from lit_reg.callbacks import (
    ConfusionMatrix,
    DecisionBoundary,
    LearningCurves,
    Mistakes,
    OverfittingLayout,
    RegressionFit,
    SampleGrid,
    StepCurves,
    WeightHistograms,
    WeightNormMonitor,
)

#: where Debian's package ``dataset-fashion-mnist`` puts the four IDX files
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: the default output folder: ``docs/images/`` next to this script
DEFAULT_OUT = Path(__file__).resolve().parent / "images"
SEED = 42
#: Lightning's loggers, set to WARNING while the script runs
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric")

#: name in the output folder → (run, name of the PNG the callback writes in that run's folder)
FIGURES: dict[str, tuple[str, str]] = {
    "samples.png": ("fashion_mnist_augmented", "samples.png"),
    "samples_augmented.png": ("fashion_mnist_augmented", "samples_augmented.png"),
    "mistakes_val.png": ("fashion_mnist", "mistakes_val.png"),
    "confusion_matrix_val.png": ("fashion_mnist", "confusion_matrix_val.png"),
    "live_training.png": ("fashion_mnist", "live_training.png"),
    "learning_curves.png": ("fashion_mnist", "learning_curves.png"),
    "weight_norms.png": ("fashion_mnist", "weight_norms.png"),
    "decision_boundary.png": ("moons", "decision_boundary.png"),
    "regression_fit.png": ("quadratic", "regression_fit.png"),
    "regression_fit_snapshots.png": ("quadratic", "regression_fit_snapshots.png"),
}

#: the settings of each run: full, and ``--fast`` (a test's few seconds)
SETTINGS = {
    False: {"fashion_epochs": 15, "train_size": 6000, "fashion_batch": 128, "every_n_steps": 50,
            "moons_epochs": 300, "resolution": 200, "regression_epochs": 160, "snapshot_every": 40},
    True: {"fashion_epochs": 2, "train_size": None, "fashion_batch": 32, "every_n_steps": 2,
           "moons_epochs": 20, "resolution": 50, "regression_epochs": 6, "snapshot_every": 2},
}


def fit(name: str, log_dir: Path, model: pl.LightningModule, data: pl.LightningDataModule, callbacks: list[Callback],
        epochs: int, seed: int, **trainer_kwargs) -> Path:
    """``trainer.fit`` one seeded CPU run logging to ``<log_dir>/<name>/version_0``; returns the run folder."""
    trainer = pl.Trainer(max_epochs=epochs, logger=default_logger(name, save_dir=str(log_dir)), callbacks=callbacks,
                         accelerator="cpu", devices=1, deterministic=True, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         **trainer_kwargs)
    started = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - started
    print(f"{name}: {epochs} epoch{'s' * (epochs != 1)} in {seconds:.1f} s")
    return Path(trainer.log_dir)


def fashion_mnist_data(data_dir: Path | None, fast: bool, scratch: Path) -> tuple[str, bool]:
    """``(data_dir, real)``: the real FashionMNIST files if found (and not ``fast``), else fake ones written to
    ``scratch``."""
    folder = data_dir or FASHION_MNIST_DIR
    if not fast and folder.is_dir() and any(folder.iterdir()):
        print(f"FashionMNIST: the real images in {folder}")
        return str(folder), True
    reason = "--fast" if fast else f"{folder} not found"
    write_fashion_mnist(str(scratch / "fashion-mnist"), num_train=200, num_test=50, seed=SEED)
    print(f"FashionMNIST: {reason}: tiny fake images (datamodules.fakes.write_fashion_mnist), not the real data set")
    return str(scratch / "fashion-mnist"), False


def run_fashion_mnist(log_dir: Path, settings: dict, data_dir: str, real: bool, seed: int) -> Path:
    """Mistakes, ConfusionMatrix, StepCurves, LearningCurves, WeightNormMonitor (and the TensorBoard-only
    WeightHistograms and OverfittingLayout) on FashionMNIST, not augmented: the learning curves show the gap."""
    pl.seed_everything(seed, verbose=False)
    data = FashionMNISTDataModule(data_dir=data_dir, download=False, batch_size=settings["fashion_batch"],
                                  train_size=settings["train_size"] if real else None, seed=seed)
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[128, 64], lr=1e-3)
    callbacks = [Mistakes(count=16, stages=["val"]), ConfusionMatrix(stages=["val"]),
                 StepCurves(every_n_steps=settings["every_n_steps"], window=20, live_plot=True), LearningCurves(),
                 WeightNormMonitor(), WeightHistograms(), OverfittingLayout()]
    return fit("FashionMNIST", log_dir, model, data, callbacks, settings["fashion_epochs"], seed,
               log_every_n_steps=settings["every_n_steps"])


def run_fashion_mnist_augmented(log_dir: Path, settings: dict, data_dir: str, real: bool, seed: int) -> Path:
    """SampleGrid on augmented FashionMNIST: the same images as they are stored and as the net is fed them (it
    draws when the fit starts: one training batch is enough)."""
    pl.seed_everything(seed, verbose=False)
    data = FashionMNISTDataModule(data_dir=data_dir, download=False, batch_size=settings["fashion_batch"],
                                  train_size=settings["train_size"] if real else None, augment=True, seed=seed)
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[128, 64], lr=1e-3)
    return fit("FashionMNIST_augmented", log_dir, model, data, [SampleGrid(per_class=6)], 1, seed,
               limit_train_batches=1, limit_val_batches=0, log_every_n_steps=1)


def run_moons(log_dir: Path, settings: dict, seed: int) -> Path:
    """DecisionBoundary of a small ReLU net on the two moons (full batch)."""
    pl.seed_everything(seed, verbose=False)
    data = ToyClassificationDataModule("moons", num_samples=100, batch_size=100, seed=3)
    model = DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[32, 32], lr=0.01, l2_penalty=1e-3)
    epochs = settings["moons_epochs"]
    boundary = DecisionBoundary(resolution=settings["resolution"], splits=("train", "val"))
    return fit("moons", log_dir, model, data, [boundary], epochs, seed,
               check_val_every_n_epoch=max(epochs // 10, 1), log_every_n_steps=1)


def run_quadratic(log_dir: Path, settings: dict, seed: int) -> Path:
    """RegressionFit with snapshots of a small regressor on the noisy parabola."""
    pl.seed_everything(seed, verbose=False)
    data = ToyRegressionDataModule("quadratic", batch_size=8, seed=seed)
    model = DenseRegressor(input_size=1, output_size=1, hidden_sizes=[64, 64], lr=0.01)
    epochs = settings["regression_epochs"]
    callbacks = [RegressionFit(every_n_epochs=settings["snapshot_every"], max_panels=4)]
    return fit("quadratic", log_dir, model, data, callbacks, epochs, seed,
               check_val_every_n_epoch=max(epochs // 10, 1), log_every_n_steps=5)


def copy_figures(runs: dict[str, Path], out: Path) -> list[Path]:
    """Copy each PNG of :data:`FIGURES` from its run folder into ``out``; a missing one is an error."""
    out.mkdir(parents=True, exist_ok=True)
    missing = [f"{runs[run] / filename}" for run, filename in FIGURES.values() if not (runs[run] / filename).is_file()]
    if missing:
        raise RuntimeError(f"the callbacks did not write {', '.join(missing)}")
    copied = []
    for name, (run, filename) in FIGURES.items():
        copied.append(Path(shutil.copyfile(runs[run] / filename, out / name)))
        print(f"  {out / name}")
    return copied


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fake FashionMNIST and 1-2 epochs (what the test runs)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder of the PNGs (default {DEFAULT_OUT})")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"folder of the FashionMNIST IDX files (default {FASHION_MNIST_DIR})")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="keep the runs' logs (TensorBoard, PNGs) here instead of a temporary folder")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: these nets are small)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Path]:
    """Make the figures; returns the paths of the PNGs in the output folder."""
    args = parse_args(argv)
    settings = SETTINGS[args.fast]
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    quiet = {name: logging.getLogger(name) for name in LIGHTNING_LOGGERS}
    levels = {name: logger.level for name, logger in quiet.items()}
    for logger in quiet.values():  # no "GPU available", tips and summaries: this script prints its own lines
        logger.setLevel(logging.WARNING)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="lit_reg_figures_") as scratch, warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*is smaller than the logging interval.*")
            warnings.filterwarnings("ignore", ".*LeafSpec.*")  # Lightning's own use of a deprecated torch API
            log_dir = args.log_dir or Path(scratch) / "logs"
            data_dir, real = fashion_mnist_data(args.data_dir, args.fast, Path(scratch))
            runs: dict[str, Path] = {
                "fashion_mnist": run_fashion_mnist(log_dir, settings, data_dir, real, args.seed),
                "fashion_mnist_augmented": run_fashion_mnist_augmented(log_dir, settings, data_dir, real, args.seed)}
            runners: dict[str, Callable[[Path, dict, int], Path]] = {"moons": run_moons, "quadratic": run_quadratic}
            for run, runner in runners.items():
                runs[run] = runner(log_dir, settings, args.seed)
            if args.log_dir is not None:
                print(f"the runs' logs: {args.log_dir} (tensorboard --logdir {args.log_dir})")
            print(f"figures in {args.out}:")
            copied = copy_figures(runs, args.out)
    finally:
        torch.set_num_threads(threads)  # a caller (the test) gets its threads and log levels back
        for name, logger in quiet.items():
            logger.setLevel(levels[name])
    print(f"{len(copied)} figures in {time.perf_counter() - started:.0f} s")
    return copied


if __name__ == "__main__":
    main()
