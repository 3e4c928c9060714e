"""The ``lit-reg`` command: LightningCLI with the collection's Trainer defaults and data → model links.

Examples::

    lit-reg fit --model DenseClassifier --data FashionMNISTDataModule --model.dropout 0.3
    lit-reg fit --config configs/toy_regression.yaml --trainer.max_epochs 50
    lit-reg fit --config configs/fashion_mnist.yaml --print_config
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

import datamodules  # noqa: F401  (registers the datamodules for --data ShortName)
from lit_reg.callbacks import PredictionPrinter
from lit_reg.defaults import CHECKPOINT, EARLY_STOPPING, LOG_DIR, SEED
from lit_reg.models import RegularizedModule

#: sizes (and class names) every datamodule exposes after ``__init__``, linked into the model's arguments of
#: the same name (a model that does not take one of them ignores it)
LINKED_SIZES = ("input_size", "num_classes", "output_size", "classes")
TENSORBOARD = "pytorch_lightning.loggers.TensorBoardLogger"
DEFAULT_LOGGER_NAME = "lightning_logs"


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class LitRegCLI(LightningCLI):
    """LightningCLI with EarlyStopping, ModelCheckpoint and TensorBoard on by default.

    - ``--early_stopping.*`` and ``--checkpoint.*`` configure the two callbacks (``--early_stopping null``
      turns early stopping off);
    - the TensorBoard logger writes ``logs/<model class>/version_N/`` unless
      ``--trainer.logger.init_args.name``/``save_dir`` say otherwise;
    - the datamodule's ``input_size``, ``num_classes`` / ``output_size`` and ``classes`` flow into the model;
    - after ``fit`` it prints the final metrics, the run folder and the best checkpoint;
    - ``predict`` prints one line per sample (:class:`~lit_reg.callbacks.PredictionPrinter`).
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(EarlyStopping, "early_stopping", subclass_mode=True, required=False)
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint", subclass_mode=True, required=False)
        parser.set_defaults(
            {
                "early_stopping": {"class_path": _class_path(EarlyStopping), "init_args": dict(EARLY_STOPPING)},
                "checkpoint": {"class_path": _class_path(ModelCheckpoint), "init_args": dict(CHECKPOINT)},
                "trainer.logger": {"class_path": TENSORBOARD, "init_args": {"save_dir": LOG_DIR}},
            }
        )
        for size in LINKED_SIZES:
            parser.link_arguments(f"data.{size}", f"model.init_args.{size}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Name the TensorBoard run folder after the model class unless the user named it."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        logger = config.get("trainer.logger")
        model = config.get("model")
        if getattr(logger, "class_path", None) == TENSORBOARD and model is not None:
            if logger.init_args.get("name", DEFAULT_LOGGER_NAME) == DEFAULT_LOGGER_NAME:
                logger.init_args["name"] = model.class_path.rsplit(".", 1)[-1]

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """As LightningCLI's, but a callback group set to ``null`` is left out instead of passed as None."""
        extra_callbacks = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        callbacks = [c for c in extra_callbacks if c is not None]
        if self.subcommand == "predict":
            callbacks.append(PredictionPrinter())
        return self._instantiate_trainer(trainer_config, callbacks)

    def after_fit(self) -> None:
        """Print where the run went and how it ended."""
        trainer = self.trainer
        if not trainer.is_global_zero:
            return
        metrics = ", ".join(f"{k}={float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items()))
        print(f"\nStopped after {trainer.current_epoch} epochs. Final metrics: {metrics}")
        if trainer.logger is not None and trainer.log_dir:
            print(f"TensorBoard logs:  {trainer.log_dir}")
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and getattr(checkpoint, "best_model_path", ""):
            score = checkpoint.best_model_score
            best = f" ({checkpoint.monitor}={float(score):.4f})" if score is not None else ""
            print(f"Best checkpoint:   {checkpoint.best_model_path}{best}")
        if trainer.logger is not None and trainer.logger.save_dir:
            print(f"Open TensorBoard:  tensorboard --logdir {trainer.logger.save_dir}")


def build_cli(args: list[str] | None = None, run: bool = True) -> LitRegCLI:
    """Parse ``args`` (default ``sys.argv[1:]``), instantiate, and run the subcommand unless ``run`` is False."""
    return LitRegCLI(
        RegularizedModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=SEED,
        auto_configure_optimizers=False,
        args=args,
        run=run,
    )


def cli_main(args: list[str] | None = None) -> None:
    """Entry point of ``lit-reg`` and ``python -m lit_reg``; ``args`` replaces ``sys.argv[1:]``."""
    build_cli(args)
