"""The ``lit-reg`` command: LightningCLI with the collection's Trainer defaults and data → model links.

Examples::

    lit-reg fit --model DenseClassifier --data FashionMNISTDataModule --model.dropout 0.3
    lit-reg fit --config configs/toy_regression.yaml --trainer.max_epochs 50
    lit-reg fit --config configs/fashion_mnist.yaml --print_config
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

import datamodules  # noqa: F401  (registers the datamodules for --data ShortName)
from lit_reg.callbacks import PredictionPrinter
from lit_reg.defaults import DEFAULT_CALLBACKS, LOG_DIR, LOGGER, SEED
from lit_reg.models import RegularizedModule

#: sizes (and class names) every datamodule exposes after ``__init__``, linked into the model's arguments of
#: the same name (a model that does not take one of them ignores it)
LINKED_SIZES = ("input_size", "num_classes", "output_size", "classes")
TENSORBOARD = "pytorch_lightning.loggers.TensorBoardLogger"
DEFAULT_LOGGER_NAME = "lightning_logs"


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class LitRegCLI(LightningCLI):
    """LightningCLI with TensorBoard and the default callbacks (:data:`lit_reg.defaults.DEFAULT_CALLBACKS`) on.

    - ``--early_stopping.*``, ``--checkpoint.*``, ``--weight_norm.*``, ``--learning_curves.*``,
      ``--divergence_guard.*`` and ``--progress_bar_refresh.*`` configure the callbacks (``--early_stopping
      null``, ``--weight_norm null``, ... turn one off); the progress bar redraws every 20 batches
      (``--progress_bar_refresh.refresh_rate 1``: after every batch, as Lightning's default);
    - the TensorBoard logger writes ``logs/<model class>/version_N/`` unless
      ``--trainer.logger.init_args.name``/``save_dir`` say otherwise;
    - the datamodule's ``input_size``, ``num_classes`` / ``output_size`` and ``classes`` flow into the model;
    - after ``fit`` it prints the final metrics, the run folder and the best checkpoint;
    - ``predict`` prints one line per sample (:class:`~lit_reg.callbacks.PredictionPrinter`).
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        defaults: dict[str, Any] = {
            "trainer.logger": {"class_path": TENSORBOARD, "init_args": {"save_dir": LOG_DIR, **LOGGER}},
            "trainer.deterministic": True,
        }
        for name, (callback, arguments) in DEFAULT_CALLBACKS.items():
            parser.add_lightning_class_args(callback, name, subclass_mode=True, required=False)
            defaults[name] = {"class_path": _class_path(callback), "init_args": dict(arguments)}
        parser.set_defaults(defaults)
        for size in LINKED_SIZES:
            parser.link_arguments(f"data.{size}", f"model.init_args.{size}", apply_on="instantiate")

    def _parse_ckpt_path(self) -> None:
        """Take the model's hyperparameters from ``--ckpt_path``, as LightningCLI does, after checking the file
        (a truncated checkpoint or one of another model class is one clear error). A checkpoint saved from a
        script has no ``_class_path``: the model class given on the command line or in the config is used."""
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        ckpt_path = config.get("ckpt_path") if config else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        model_class_path = getattr(config.get("model"), "class_path", None)
        hparams = dict(check_checkpoint_file(ckpt_path, model_class_path).get("hyper_parameters", {}))
        hparams.pop("_instantiator", None)
        class_path = hparams.pop("_class_path", None) or model_class_path
        if not hparams or class_path is None:
            return
        model = {"class_path": class_path, "init_args": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)

    def before_instantiate_classes(self) -> None:
        """Name the TensorBoard run folder after the model class unless the user named it; with
        ``fit --ckpt_path last`` and no version given, resume in the newest run folder that has a ``last.ckpt``."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        logger = config.get("trainer.logger")
        model = config.get("model")
        if getattr(logger, "class_path", None) != TENSORBOARD or model is None:
            return
        if logger.init_args.get("name", DEFAULT_LOGGER_NAME) == DEFAULT_LOGGER_NAME:
            logger.init_args["name"] = model.class_path.rsplit(".", 1)[-1]
        if self.subcommand == "fit" and config.get("ckpt_path") == "last" and logger.init_args.get("version") is None:
            root = Path(logger.init_args.get("save_dir") or LOG_DIR) / logger.init_args["name"]
            resumable = [p.parent.parent for p in root.glob("version_*/checkpoints/last.ckpt")]
            if resumable:
                newest = max(resumable, key=lambda p: int(p.name.split("_")[-1]))
                logger.init_args["version"] = int(newest.name.split("_")[-1])

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """As LightningCLI's, but a callback group set to ``null`` is left out instead of passed as None, and
        ``--trainer.enable_checkpointing false`` leaves out the checkpoint groups too (Lightning refuses both)."""
        extra_callbacks = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        checkpointing = trainer_config.get("enable_checkpointing") is not False
        callbacks = [c for c in extra_callbacks
                     if c is not None and (checkpointing or not isinstance(c, ModelCheckpoint))]
        if self.subcommand == "predict":
            callbacks.append(PredictionPrinter())
        return self._instantiate_trainer(trainer_config, callbacks)

    def after_fit(self) -> None:
        """Print where the run went and how it ended.

        Under a multiprocessing strategy (``ddp_spawn``, ``ddp_fork``) the main process gets back the metrics and the
        best checkpoint but not the loop's progress or the logger's version, so the run folder is read off the
        checkpoint path.
        """
        trainer = self.trainer
        if not trainer.is_global_zero:
            return
        metrics = ", ".join(f"{k}={float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items()))
        epochs = f"Stopped after {trainer.current_epoch} epochs. " if trainer.global_step else ""
        print(f"\n{epochs}Final metrics: {metrics}")
        checkpoint = trainer.checkpoint_callback
        best_path = getattr(checkpoint, "best_model_path", "") if checkpoint is not None else ""
        run_dir = str(Path(best_path).parent.parent) if best_path else (trainer.log_dir if trainer.logger else None)
        if run_dir:
            print(f"TensorBoard logs:  {run_dir}")
        if best_path:
            score = checkpoint.best_model_score
            best = f" ({checkpoint.monitor}={float(score):.4f})" if score is not None else ""
            print(f"Best checkpoint:   {best_path}{best}")
        if trainer.logger is not None and trainer.logger.save_dir:
            print(f"Open TensorBoard:  tensorboard --logdir {trainer.logger.save_dir}")


def check_checkpoint_file(path: str, model_class_path: str | None = None) -> dict[str, Any]:
    """Load the checkpoint at ``path`` on the CPU, or raise ``ValueError`` saying what is wrong with it.

    Raises:
        ValueError: if the file cannot be read (truncated, not a checkpoint), or if it was saved by another
            model class than ``model_class_path``.
    """
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises many types for a damaged file
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(err).__name__}: {' '.join(str(err).split())[:200]}): it is "
            f"truncated or not a Lightning checkpoint. Pass another one, e.g. the best or last.ckpt of the run."
        ) from err
    saved = checkpoint.get("hyper_parameters", {}).get("_class_path")
    if model_class_path and saved and saved.rsplit(".", 1)[-1] != model_class_path.rsplit(".", 1)[-1]:
        raise ValueError(
            f"checkpoint {path} was saved by {saved}, but the model is {model_class_path}: pass "
            f"--model {saved.rsplit('.', 1)[-1]} or a checkpoint of {model_class_path.rsplit('.', 1)[-1]}."
        )
    return checkpoint


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
        save_config_kwargs={"overwrite": True},  # only a resumed run writes into an existing folder
    )


#: exceptions shown as one line on the command line (set LIT_REG_TRACEBACK=1 for the traceback)
USER_ERRORS = (ValueError, FileNotFoundError, RuntimeError)
#: the end of that line
TRACEBACK_HINT = "(set LIT_REG_TRACEBACK=1 to see the full traceback)"


def _raised_in(error: BaseException, package: str) -> bool:
    """Whether ``error`` was raised by code of ``package`` (judged from its traceback's last frame)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}{package}{os.sep}" in tb.tb_frame.f_code.co_filename


def innermost_message(error: BaseException) -> str:
    """The message that names the culprit: jsonargparse wraps a model's or datamodule's own error in a longer
    one while instantiating, so look through the errors jsonargparse raised to the one it wrapped."""
    while _raised_in(error, "jsonargparse") and (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    return " ".join(str(error).split())


def cli_main(args: list[str] | None = None) -> None:
    """Entry point of ``lit-reg`` and ``python -m lit_reg``; ``args`` replaces ``sys.argv[1:]``.

    A bad value, a missing file or a diverging run ends with one line on stderr naming the culprit
    (exit status 1) instead of a traceback from deep inside a library.
    """
    try:
        build_cli(args)
    except USER_ERRORS as error:
        if os.environ.get("LIT_REG_TRACEBACK"):
            raise
        print(f"lit-reg: error: {innermost_message(error)} {TRACEBACK_HINT}", file=sys.stderr)
        raise SystemExit(1) from None
