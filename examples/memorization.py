"""The regularization lecture's memorization experiment: BigAnimalNet on 100 Animal Faces images with clean
labels, 15 % label noise and random labels, trained for 200 epochs each without early stopping.

The noise is the lecture's (``label_noise_mode="shuffle"``): the labels of 15 % (or all) of the training images
are permuted among them, so the label counts stay and a shuffled label may still be right by chance. An
over-parameterized net reaches (nearly) 100 % training accuracy in all three settings, even with random labels,
so training accuracy says nothing about generalization; the validation accuracy (at chance, 1/3, for random
labels) does.

Writes into the run folder (``--out``, default ``logs/examples/memorization/run_N``): one TensorBoard run per
setting (with its checkpoints and learning curves), ``memorization.png`` (train and validation accuracy per
epoch, one panel per setting, like the lecture's "Memorization" figure) and ``results.json``; prints a table and
the epoch and wall-clock seconds at which each setting first reached 100 % training accuracy (lecture 002
reports about 74 s on its machine).

    python examples/memorization.py                    # AFHQ in data/ (downloaded if missing), 200 epochs
    python examples/memorization.py --fast             # generated images, a few epochs: a smoke test
    python examples/memorization.py --fast --epochs 200
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from _common import example_parser, exit_with, output_dir, print_table, save_figure
from matplotlib.figure import Figure

from datamodules import AnimalFacesDataModule
from datamodules.fakes import write_afhq
from lit_reg import DenseClassifier, default_callbacks, default_logger
from lit_reg.callbacks import LearningCurves

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "memorization.yaml"
#: (title, run name, label_noise)
SETTINGS = (("clean labels", "clean", 0.0), ("15 % label noise", "noise_15", 0.15),
            ("random labels", "random", 1.0))
#: how the lecture's archives are noisy: a share of the training labels permuted among themselves
LABEL_NOISE_MODE = "shuffle"
FAST_EPOCHS = 5
#: the columns of the printed table
TABLE_COLUMNS = ("setting", "label_noise", "epochs", "train_acc", "val_acc")
#: what lecture 002 reports for the time to 100 % training accuracy on its machine
LECTURE_SECONDS = 74


class TimeToMemorize(pl.Callback):
    """Records the first training epoch whose ``train_acc`` is 100 % and the wall-clock seconds from the start of
    training to its end (validation included, as in the lecture's loop).

    Attributes:
        epoch: that epoch (None until it happens).
        seconds: the seconds to it (None until it happens).

    Example:
        >>> TimeToMemorize().epoch is None
        True
    """

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.seconds: float | None = None
        self._start = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        accuracy = trainer.callback_metrics.get("train_acc")
        if self.epoch is None and accuracy is not None and float(accuracy) >= 1.0:
            self.epoch, self.seconds = trainer.current_epoch, time.monotonic() - self._start


def load_config(path: Path = CONFIG) -> dict[str, Any]:
    """The model's and the datamodule's ``init_args``, the epochs and the seed of ``configs/memorization.yaml``."""
    config = yaml.safe_load(path.read_text())
    return {
        "model": dict(config["model"]["init_args"]),
        "data": dict(config["data"]["init_args"]),
        "epochs": config["trainer"]["max_epochs"],
        "seed": config.get("seed_everything", 2021),
    }


def train_setting(name: str, label_noise: float, config: dict[str, Any], data: dict[str, Any], epochs: int,
                  out: Path) -> tuple[dict[int, dict[str, float]], TimeToMemorize]:
    """Train BigAnimalNet on one label-noise setting; returns the per-epoch metrics and when it reached 100 %."""
    pl.seed_everything(config["seed"], verbose=False)
    datamodule = AnimalFacesDataModule(**{**config["data"], **data, "label_noise": label_noise,
                                          "label_noise_mode": LABEL_NOISE_MODE})
    model = DenseClassifier(input_size=datamodule.input_size, num_classes=datamodule.num_classes, **config["model"])
    memorized = TimeToMemorize()
    callbacks = [*default_callbacks(early_stopping=False), memorized]
    curves = next(c for c in callbacks if isinstance(c, LearningCurves))
    trainer = pl.Trainer(max_epochs=epochs, logger=default_logger(name, save_dir=str(out)), callbacks=callbacks,
                         deterministic=True, log_every_n_steps=1, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(model, datamodule=datamodule)
    return curves.history, memorized


def plot(results: list[dict[str, Any]], data: str = "Animal Faces") -> Figure:
    """Train and validation accuracy per epoch, one panel per setting, chance level dotted."""
    figure = Figure(figsize=(5 * len(results), 4))
    for axes, result in zip(figure.subplots(1, len(results), squeeze=False)[0], results, strict=True):
        history = result["history"]
        for key, label, style in (("train_acc", "train", "-"), ("val_acc", "validation", "--")):
            points = [(epoch, values[key]) for epoch, values in sorted(history.items()) if key in values]
            if points:
                axes.plot(*zip(*points, strict=True), style, label=label)
        axes.axhline(1 / 3, color="grey", linestyle=":", label="chance")
        axes.set_ylim(0, 1.05)
        axes.set_xlabel("epoch")
        axes.set_ylabel("accuracy")
        axes.set_title(f"{result['setting']} (label_noise={result['label_noise']:g}, {LABEL_NOISE_MODE})")
        axes.legend()
    figure.suptitle(f"Memorization: BigAnimalNet on 100 {data} images")
    return figure


def final(history: dict[int, dict[str, float]], key: str) -> float:
    values = [values[key] for _, values in sorted(history.items()) if key in values]
    return values[-1] if values else float("nan")


def memorized_line(result: dict[str, Any]) -> str:
    """``<setting>: epoch E, S s`` (the first epoch at 100 % training accuracy), or ``... not reached``."""
    if result["epoch_100"] is None:
        return f"  {result['setting']}: not reached in {result['epochs']} epochs"
    return f"  {result['setting']}: epoch {result['epoch_100']}, {result['seconds_to_100']:.1f} s"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = example_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding (or receiving) afhq/ (default: the "
                        "config's, data/); with --fast, where the generated images go (default: <out>/data)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs per setting (default: the config's 200; {FAST_EPOCHS} with --fast)")
    parser.add_argument("--no-download", action="store_true", help="use the files in --data-dir only")
    args = parser.parse_args(argv)
    config = load_config()
    out = output_dir(args.out, "memorization")
    epochs = args.epochs or (FAST_EPOCHS if args.fast else config["epochs"])
    data: dict[str, Any] = {"download": not args.no_download}
    if args.fast:
        data.update(data_dir=args.data_dir or str(out / "data"), cache_dir=None, download=False)
        write_afhq(data["data_dir"], per_class=70, val_per_class=10, image_size=config["data"]["image_size"])
    elif args.data_dir:
        data["data_dir"] = args.data_dir
    try:  # download (or find) and check the data once, before the three runs
        datamodule = AnimalFacesDataModule(**{**config["data"], **data})
        datamodule.prepare_data()
        datamodule.setup()
    except (RuntimeError, ValueError) as error:
        exit_with(" ".join(str(error).split()))
    results = []
    for setting, name, label_noise in SETTINGS:
        history, memorized = train_setting(name, label_noise, config, data, epochs, out)
        results.append({"setting": setting, "label_noise": label_noise, "epochs": epochs,
                        "train_acc": final(history, "train_acc"), "val_acc": final(history, "val_acc"),
                        "label_noise_mode": LABEL_NOISE_MODE, "epoch_100": memorized.epoch,
                        "seconds_to_100": memorized.seconds, "history": history})
    data_name = "generated" if args.fast else "Animal Faces"
    print(f"\nMemorization after {epochs} epochs ({data_name} images):")
    print_table([{k: v for k, v in result.items() if k in TABLE_COLUMNS} for result in results])
    print(f"\nTime to 100 % training accuracy (lecture 002: about {LECTURE_SECONDS} s on its machine):")
    for result in results:
        print(memorized_line(result))
    save_figure(plot(results, data_name), out / "memorization.png")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
