"""Train vs validation curves as one PNG per run, and the run's arguments and best scores in TensorBoard's HPARAMS."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from pytorch_lightning.loggers import TensorBoardLogger

from lit_reg.callbacks.figures import save_to_run
from lit_reg.callbacks.fit_only_state import FitOnlyState
from lit_reg.callbacks.fit_state_key import FitStateKey
from lit_reg.callbacks.split_predictions import run_title


class LearningCurves(FitOnlyState, FitStateKey):
    """Plot train vs validation metrics per epoch at the end of fit, the best epoch marked.

    Records ``train_<name>`` after every training epoch and ``val_<name>`` after every validation run, for
    each ``name`` in ``metrics`` that the model logs (``loss`` and ``acc`` for the classifier; ``loss`` for
    the regressor). At the end of training it draws one panel per metric into
    ``<trainer.log_dir>/<filename>`` (titled with the run and the epochs trained, epochs counted from 1 on the x
    axis: the point at epoch 3 is the model after its 3rd epoch), marks the epoch with the best ``monitor`` value,
    adds the figure to
    TensorBoard as the image ``learning_curves`` and, with ``log_hp_metric``, logs the run's
    hyperparameters with its best scores (TensorBoard's HPARAMS tab, :meth:`hparams_summary`): the model's
    arguments, the datamodule's prefixed ``data/`` (``data/batch_size``), ``extra_hparams``, and the metrics
    ``hp_metric`` = the best ``monitor`` value and ``best_<metric>`` for each validation metric recorded
    (``best_val_loss``, ``best_val_acc``, ...).

    .. note::
        The best value of a validation metric is its lowest when the metric is ``monitor`` with ``mode="min"``, or
        its name ends in one of :attr:`LOWER_IS_BETTER` (``val_loss``, ``val_mae``, ``val_mse``, ...), and its
        highest otherwise (``val_acc``, ``val_r2``, ``val_f1``, ``val_auroc``).

    Values TensorBoard cannot show are converted by Lightning's ``TensorBoardLogger``: a dict is flattened to
    ``key/subkey`` entries, other values that are not a bool, int, float or str become their ``str`` (a list
    ``[16, 8]`` shows as ``'[16, 8]'``, None as ``'None'``); TensorBoard shows a bool as 1 or 0. The run's
    ``hparams.yaml`` holds what Lightning writes at the start of fit: the model's and the datamodule's
    arguments, unprefixed.

    .. note::
        Lightning's ``TensorBoardLogger`` logs ``hp_metric = -1`` at the start unless it is created with
        ``default_hp_metric=False``, as :func:`lit_reg.default_logger` and the ``lit-reg`` CLI do; the value
        logged here then is the only one.

    Args:
        monitor: validation metric whose best epoch is marked and reported as ``hp_metric``.
        mode: ``min`` or ``max``: whether the best ``monitor`` value is the lowest or the highest.
        metrics: metric names to plot, each as ``train_<name>`` and ``val_<name>`` (one panel per name).
        filename: name of the PNG in the run folder.
        panel_size: size of one panel in inches; the figure is ``len(panels)`` panels wide, saved at 100 dpi.
        log_hp_metric: log the hyperparameters with ``hp_metric`` and the ``best_<metric>`` values to every
            ``TensorBoardLogger``.
        extra_hparams: more entries for HPARAMS, e.g. ``{"variant": "dropout_0.3", "seed": 1}`` (a study's trial);
            string keys, values a str, int, float or bool. They take precedence over the model's arguments of the
            same name.

    The history is part of the checkpoint: ``fit(ckpt_path="last")`` resumes it, while evaluating a checkpoint
    afterwards (``test``/``validate`` with ``ckpt_path``) neither rewinds nor extends it (:class:`FitOnlyState`).

    Attributes:
        history: ``{epoch: {metric: value}}`` as recorded during fits.
        best_epoch: the epoch with the best ``monitor`` value, counted from 0 as :attr:`history` (None before any
            validation); the figure shows it counted from 1 (``after <best_epoch + 1> epochs``).
        best_score: that value.
        title: the figure's title (the run and its epochs), set at the end of fit.
        plot_path: where the chart was saved, once it was.

    Raises:
        ValueError: for an unknown ``mode``, no ``metrics``, a ``filename`` not ending in ``.png`` or
            ``extra_hparams`` that are not a dict of string keys and scalar values.

    Example:
        >>> curves = LearningCurves(metrics=["loss", "mae"])
        >>> curves.monitor, curves.mode
        ('val_loss', 'min')
    """

    MODES = {"min": min, "max": max}
    #: endings of metric names whose best value is the lowest (every other metric: the highest)
    LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "error")
    #: types ``extra_hparams`` values may have
    SCALARS = (str, int, float, bool)
    #: y-axis label of each metric name (others: the name itself)
    METRIC_LABELS = {"acc": "accuracy (fraction correct)", "mae": "mean absolute error (target units)",
                     "mse": "mean squared error (target units²)", "rmse": "root mean squared error (target units)",
                     "r2": "R² (fraction of variance explained)", "f1": "F1 score (0 to 1)",
                     "auroc": "area under the ROC curve (0 to 1)", "loss": "loss"}
    #: panel title of each metric name (others: the name itself)
    METRIC_TITLES = {"acc": "Accuracy", "loss": "Loss", "mae": "Mean absolute error", "mse": "Mean squared error",
                     "rmse": "Root mean squared error", "r2": "R²", "f1": "F1 score", "auroc": "AUROC"}
    #: the loss's y-axis label for the models of lit_reg, by class name (subclasses too)
    LOSS_LABELS = {"DenseClassifier": "cross-entropy loss (nats per sample)",
                   "BitmojiClassifier": "binary cross-entropy loss (nats per sample)",
                   "DenseRegressor": "mean squared error loss (target units²)"}

    def __init__(self, monitor: str = "val_loss", mode: str = "min", metrics: Sequence[str] = ("loss", "acc"),
                 filename: str = "learning_curves.png", panel_size: tuple[float, float] = (5.0, 4.0),
                 log_hp_metric: bool = True, extra_hparams: dict[str, Any] | None = None) -> None:
        if mode not in self.MODES:
            raise ValueError(f"`mode` must be one of {list(self.MODES)}, got {mode!r}")
        if not metrics:
            raise ValueError("`metrics` must name at least one metric, got none")
        if not filename.endswith(".png"):
            raise ValueError(f"`filename` must end in '.png', got {filename!r}")
        extra_hparams = {} if extra_hparams is None else extra_hparams
        if not isinstance(extra_hparams, dict) or not all(
                isinstance(k, str) and isinstance(v, self.SCALARS) for k, v in extra_hparams.items()):
            raise ValueError("`extra_hparams` must be a dict of string keys and str, int, float or bool values, e.g. "
                             f"{{'variant': 'dropout_0.3', 'seed': 1}}, got {extra_hparams!r}")
        self.monitor = monitor
        self.mode = mode
        self.metrics = list(metrics)
        self.filename = filename
        self.panel_size = tuple(panel_size)
        self.log_hp_metric = log_hp_metric
        self.extra_hparams = dict(extra_hparams)
        self.history: dict[int, dict[str, float]] = {}
        self.title = "Learning curves"
        self.loss_label = self.METRIC_LABELS["loss"]
        self.plot_path: Path | None = None

    def current_state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    def _record(self, trainer: pl.Trainer, prefix: str) -> None:
        keys = [f"{prefix}_{name}" for name in self.metrics]
        if prefix == "val":
            keys.append(self.monitor)
        values = {k: float(trainer.callback_metrics[k]) for k in keys if k in trainer.callback_metrics}
        self.history.setdefault(trainer.current_epoch, {}).update(values)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, "train")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:  # not `trainer.validate(...)` after the fit
            self._record(trainer, "val")

    def _best(self) -> tuple[int | None, float | None]:
        scored = {epoch: values[self.monitor] for epoch, values in self.history.items() if self.monitor in values}
        if not scored:
            return None, None
        epoch = self.MODES[self.mode](scored, key=scored.__getitem__)
        return epoch, scored[epoch]

    def best_values(self) -> dict[str, float]:
        """``{"best_<metric>": value}``: the best value of every validation metric in :attr:`history`.

        Example:
            >>> curves = LearningCurves()
            >>> curves.history = {0: {"val_loss": 0.5, "val_acc": 0.8}, 1: {"val_loss": 0.6, "val_acc": 0.9}}
            >>> curves.best_values()
            {'best_val_acc': 0.9, 'best_val_loss': 0.5}
        """
        recorded = sorted({key for values in self.history.values() for key in values if key.startswith("val_")})
        best = {}
        for key in recorded:
            lower = self.mode == "min" if key == self.monitor else key.endswith(self.LOWER_IS_BETTER)
            best[f"best_{key}"] = (min if lower else max)(v[key] for v in self.history.values() if key in v)
        return best

    def hparams_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """What HPARAMS lists for the run: the model's arguments, the datamodule's prefixed ``data/`` and
        ``extra_hparams``; entries starting with ``_`` (LightningCLI's ``_class_path``, ...) are left out."""
        datamodule = getattr(trainer, "datamodule", None)
        data = dict(datamodule.hparams) if datamodule is not None else {}
        return {**{k: v for k, v in pl_module.hparams.items() if not k.startswith("_")},
                **{f"data/{k}": v for k, v in data.items() if not k.startswith("_")}, **self.extra_hparams}

    @property
    def best_epoch(self) -> int | None:
        return self._best()[0]

    @property
    def best_score(self) -> float | None:
        return self._best()[1]

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.history:
            return
        self.title = f"Learning curves: {run_title(trainer)}"
        names = [cls.__name__ for cls in type(pl_module).__mro__]
        self.loss_label = next((self.LOSS_LABELS[n] for n in names if n in self.LOSS_LABELS),
                               self.METRIC_LABELS["loss"])
        self.plot_path = save_to_run(trainer, self.plot, self.filename, "learning_curves")
        if self.log_hp_metric and self.best_score is not None:
            params = self.hparams_summary(trainer, pl_module)
            metrics = {"hp_metric": self.best_score, **self.best_values()}
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.log_hyperparams(params, metrics, step=trainer.global_step)

    def plot(self) -> Figure:
        """One panel per metric that was recorded: train and validation against the epochs trained (from 1), the
        best epoch marked, under :attr:`title`."""
        epochs = sorted(self.history)
        recorded = set().union(*self.history.values())
        names = [n for n in self.metrics if {f"train_{n}", f"val_{n}"} & recorded] or self.metrics[:1]
        width, height = self.panel_size
        figure = Figure(figsize=(width * len(names), height))  # no pyplot: headless, the user's backend untouched
        best_epoch, best_score = self._best()
        for axes, name in zip(figure.subplots(1, len(names), squeeze=False)[0], names, strict=True):
            for prefix, label in (("train", "train"), ("val", "validation")):
                key = f"{prefix}_{name}"
                points = [(e + 1, self.history[e][key]) for e in epochs if key in self.history[e]]
                if points:
                    axes.plot(*zip(*points, strict=True), marker=".", label=label)
            if best_epoch is not None:
                done = best_epoch + 1
                axes.axvline(done, color="grey", linestyle="--",
                             label=f"best {self.monitor} = {best_score:.4g}\nafter {done} epoch{'s' * (done != 1)}")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_xlabel("epoch (1-based: 1 = after the first epoch)")
            axes.set_ylabel(self.loss_label if name == "loss" else self.METRIC_LABELS.get(name, name))
            axes.set_title(self.METRIC_TITLES.get(name, name))
            axes.grid(alpha=0.3)
            axes.legend(fontsize="small")
        figure.suptitle(self.title)
        figure.tight_layout()
        return figure

    def state_dict(self) -> dict[str, Any]:
        return {"history": {epoch: dict(values) for epoch, values in self.history.items()}}

    def restore_state(self, state_dict: dict[str, Any]) -> None:
        self.history = {int(epoch): dict(values) for epoch, values in state_dict.get("history", {}).items()}
