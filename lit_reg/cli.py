"""The ``lit-reg`` command: LightningCLI with the collection's Trainer defaults and data → model links.

Examples::

    lit-reg fit --model DenseClassifier --data FashionMNISTDataModule --model.dropout 0.3
    lit-reg fit --config configs/toy_regression.yaml --trainer.max_epochs 50
    lit-reg fit --config configs/fashion_mnist.yaml --print_config
"""

from __future__ import annotations

import json
import os
import pydoc
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ModelSummary
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

import datamodules  # noqa: F401  (registers the datamodules for --data ShortName)
from lit_reg.callbacks import PredictionPrinter, WeightAveraging
from lit_reg.defaults import DEFAULT_CALLBACKS, LOG_DIR, LOGGER, MODEL_SUMMARY_DEPTH, SEED
from lit_reg.models import RegularizedModule
from lit_reg.precision import PRECISION_CHOICES, resolve_precision

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
      ``--divergence_guard.*``, ``--progress_bar_refresh.*``, ``--overfitting_layout.*``, ``--sample_grid.*`` and
      ``--confusion_matrix.*`` configure the default callbacks (``--early_stopping null``, ``--sample_grid null``,
      ... turn one off); the progress bar redraws every 20 batches (``--progress_bar_refresh.refresh_rate 1``:
      after every batch, as Lightning's default);
    - ``--weight_averaging EMAWeightAveraging`` (``--weight_averaging.decay 0.99``) or ``--weight_averaging
      SWAWeightAveraging`` (``--weight_averaging.swa_epoch_start 0.5``) averages the weights (off by default);
    - the TensorBoard logger writes ``logs/<model class>/version_N/`` unless
      ``--trainer.logger.init_args.name``/``save_dir`` say otherwise;
    - the datamodule's ``input_size``, ``num_classes`` / ``output_size`` and ``classes`` flow into the model;
    - after ``fit`` it prints the final metrics, the run folder and the best checkpoint;
    - ``predict`` prints one line per sample (:class:`~lit_reg.callbacks.PredictionPrinter`);
    - ``--trainer.precision auto`` (YAML ``trainer: {precision: auto}``) becomes ``bf16-mixed`` where the hardware runs
      bfloat16 natively, else ``32-true`` (:func:`lit_reg.precision.auto_precision`), before the Trainer is built.
    """

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """LightningCLI's, but ``trainer.precision`` also takes ``auto``: the Trainer's own type allows only
        Lightning's values, so the trainer's arguments are added without it and it is added back as a string or
        number, checked (one error naming the accepted values) and resolved in :meth:`before_instantiate_classes`."""
        parser.add_class_arguments(self.trainer_class, "trainer", fail_untyped=False, instantiate=False,
                                   sub_configs=True, skip={"precision"})
        parser.add_argument("--trainer.precision", type=int | str | None, default=None,
                            help=f"Lightning's precision or 'auto' (bf16-mixed where the hardware runs bfloat16 "
                                 f"natively, else 32-true); one of {list(PRECISION_CHOICES)}")
        parser.set_defaults({f"trainer.{k}": v for k, v in self.trainer_defaults.items() if k != "callbacks"})
        parser.add_lightning_class_args(self._model_class, "model", subclass_mode=self.subclass_mode_model)
        parser.add_lightning_class_args(self._datamodule_class, "data", subclass_mode=self.subclass_mode_data,
                                        required=self.datamodule_class is not None)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        defaults: dict[str, Any] = {
            "trainer.logger": {"class_path": TENSORBOARD, "init_args": {"save_dir": LOG_DIR, **LOGGER}},
            "trainer.deterministic": True,
        }
        # first, so its end-of-fit copy of the averaged weights comes before the callbacks that draw the model
        parser.add_lightning_class_args(WeightAveraging, "weight_averaging", subclass_mode=True, required=False)
        defaults["weight_averaging"] = None
        for name, (callback, arguments) in DEFAULT_CALLBACKS.items():
            parser.add_lightning_class_args(callback, name, subclass_mode=True, required=False)
            defaults[name] = {"class_path": _class_path(callback), "init_args": dict(arguments)}
        parser.set_defaults(defaults)
        for size in LINKED_SIZES:
            parser.link_arguments(f"data.{size}", f"model.init_args.{size}", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """As LightningCLI's, but ``predict --ckpt_path CKPT`` without ``--model``/``--data`` takes both classes and
        their arguments from the checkpoint (:func:`classes_from_checkpoint`); the command line still overrides."""
        given = sys.argv[1:] if args is None else args
        if isinstance(given, (list, tuple)):
            completed = classes_from_checkpoint(list(given))
            if completed != list(given):
                self.config = parser.parse_args(completed)
                return
        super().parse_arguments(parser, args)

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
        """Resolve ``trainer.precision: auto`` (:func:`~lit_reg.precision.resolve_precision`; the saved ``config.yaml``
        records the precision used). Refuse a model of the wrong kind for the data (:func:`check_model_fits_data`).
        Name the TensorBoard run folder after the model class unless the user named it; with
        ``fit --ckpt_path last`` and no version given, resume in the newest run folder that has a ``last.ckpt``."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("trainer.precision") is not None:  # "auto" → the precision this hardware runs fastest
            config["trainer.precision"] = resolve_precision(config["trainer.precision"],
                                                            config.get("trainer.accelerator", "auto"))
        check_model_fits_data(getattr(config.get("model"), "class_path", None),
                              getattr(config.get("data"), "class_path", None))
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
        """As LightningCLI's, but a callback group set to ``null`` is left out instead of passed as None,
        ``--trainer.enable_checkpointing false`` leaves out the checkpoint groups too (Lightning refuses both), and
        the model summary goes two levels deep (each ``Linear`` with its parameter count)."""
        extra_callbacks = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        checkpointing = trainer_config.get("enable_checkpointing") is not False
        callbacks = [c for c in extra_callbacks
                     if c is not None and (checkpointing or not isinstance(c, ModelCheckpoint))]
        if self.subcommand == "predict":
            callbacks.append(PredictionPrinter())
        given = [*callbacks, *(trainer_config.get("callbacks") or [])]
        if trainer_config.get("enable_model_summary") is not False and not any(
                isinstance(c, ModelSummary) for c in given):  # each layer of the stack with its parameters
            callbacks.append(ModelSummary(max_depth=MODEL_SUMMARY_DEPTH))
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


def _is_regression(cls: type) -> bool:
    """A regression model takes ``output_size``; a regression datamodule sets it on the class (classification data
    gives ``num_classes`` instead)."""
    if issubclass(cls, RegularizedModule):
        return "output_size" in cls.accepted_arguments()
    return getattr(cls, "output_size", None) is not None


def check_model_fits_data(model_class_path: str | None, data_class_path: str | None) -> None:
    """Raise ``ValueError`` when a classifier meets regression data or a regressor meets class labels, naming the
    models that fit the data, before either is built (else the linked ``num_classes`` arrives as None)."""
    if not model_class_path or not data_class_path:
        return
    model_cls, data_cls = pydoc.locate(model_class_path), pydoc.locate(data_class_path)
    if not (isinstance(model_cls, type) and issubclass(model_cls, RegularizedModule)) or not isinstance(data_cls, type):
        return
    regression = _is_regression(data_cls)
    if _is_regression(model_cls) == regression:
        return
    fitting = sorted((m for m in _model_classes() if _is_regression(m) == regression),
                     key=lambda m: "num_classes" not in m.accepted_arguments())  # the multi-class ones first
    names = [f"--model {m.__name__}" + ("" if regression or "num_classes" in m.accepted_arguments() else
                                        " (two classes)") for m in fitting]
    data_kind = "a regression datamodule (it gives output_size)" if regression else (
        "a classification datamodule (it gives num_classes and classes)")
    model_kind = "a classifier" if regression else "a regressor"
    raise ValueError(f"{data_cls.__name__} is {data_kind} but {model_cls.__name__} is {model_kind}: use "
                     f"{' or '.join(names)}, or data of the model's kind")


def _model_classes() -> list[type[RegularizedModule]]:
    """The collection's models (the concrete classes exported by :mod:`lit_reg.models`)."""
    import lit_reg.models as models

    return [getattr(models, name) for name in models.__all__ if isinstance(getattr(models, name), type)
            and issubclass(getattr(models, name), RegularizedModule) and getattr(models, name) is not RegularizedModule]


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


def _option(args: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args`` (the last one), else None."""
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(f"{name}="):
            value = arg.split("=", 1)[1]
    return value


def classes_from_checkpoint(args: list[str]) -> list[str]:
    """``args`` of ``predict --ckpt_path CKPT`` with the model and datamodule the checkpoint was trained with put in
    front, when the command line names neither (``--model``, ``--data``, ``--config``): the checkpoint holds both
    classes and their arguments (image size, grayscale, class names; the normalization statistics travel in the
    datamodule's state). Other commands, and a checkpoint saved from a script (no class paths), are left as given.

    Example:
        >>> classes_from_checkpoint(["fit", "--model", "DenseClassifier"])
        ['fit', '--model', 'DenseClassifier']
    """
    ckpt_path = _option(args, "--ckpt_path")
    if not args or args[0] != "predict" or ckpt_path is None or ckpt_path in ("best", "last"):
        return args
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"checkpoint {ckpt_path} does not exist; pass the best checkpoint or last.ckpt of a "
                                "run (logs/<model>/version_N/checkpoints/)")
    if any(a == "--config" or a.startswith("--config=") for a in args):
        return args
    checkpoint = check_checkpoint_file(ckpt_path)
    extra: list[str] = []
    for option, key in (("--model", "hyper_parameters"), ("--data", "datamodule_hyper_parameters")):
        hparams = {k: v for k, v in (checkpoint.get(key) or {}).items() if k not in ("_instantiator", "predict_dir")}
        class_path = hparams.pop("_class_path", None)
        named = any(a == option or a.startswith(f"{option}=") for a in args)
        if class_path and not named:
            extra += [option, json.dumps({"class_path": class_path, "init_args": hparams})]
    return [args[0], *extra, *args[1:]]


def predict_from_checkpoint(ckpt_path: str, images: str, **trainer_kwargs: Any) -> list[Any]:
    """Predict ``images`` (one image file or a folder) with a checkpoint alone: the script form of
    ``lit-reg predict --ckpt_path CKPT --data.predict_dir IMAGES``.

    The model and the datamodule are rebuilt from the checkpoint with Lightning's ``load_from_checkpoint``
    (image size, grayscale and class names from its hyperparameters, the normalization statistics from the
    datamodule's state); the training folders are not needed. Returns what ``trainer.predict`` returns: one
    ``predict_step`` output per batch (for ``BitmojiClassifier``: ``probs``, ``preds``, ``labels``, ``confidence``).

    Raises:
        ValueError: the checkpoint cannot be read, or was saved from a script (it names no model or datamodule
            class: use ``Model.load_from_checkpoint`` and ``trainer.predict`` there).
    """
    checkpoint = check_checkpoint_file(ckpt_path)
    data_hparams = checkpoint.get("datamodule_hyper_parameters") or {}
    if "_class_path" not in checkpoint.get("hyper_parameters", {}) or "_class_path" not in data_hparams:
        raise ValueError(f"checkpoint {ckpt_path} names no model or datamodule class (saved from a script?): load it "
                         "with YourModel.load_from_checkpoint(...) and your datamodule, then call trainer.predict")
    model_class = pydoc.locate(checkpoint["hyper_parameters"]["_class_path"])
    data_class = pydoc.locate(data_hparams["_class_path"])
    model = model_class.load_from_checkpoint(ckpt_path, map_location="cpu")
    data = data_class.load_from_checkpoint(ckpt_path, predict_dir=str(images))
    trainer = pl.Trainer(**{"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                            "enable_model_summary": False, **trainer_kwargs})
    return trainer.predict(model, datamodule=data)


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
    given = sys.argv[1:] if args is None else list(args)
    try:
        if given[:1] == ["study"]:  # `lit-reg study STUDY.yaml ...`: many fits through build_cli (lit_reg.study)
            from lit_reg.study.command import study_main

            study_main(given[1:])
        else:
            build_cli(args)
    except USER_ERRORS as error:
        if os.environ.get("LIT_REG_TRACEBACK"):
            raise
        print(f"lit-reg: error: {innermost_message(error)} {TRACEBACK_HINT}", file=sys.stderr)
        raise SystemExit(1) from None
