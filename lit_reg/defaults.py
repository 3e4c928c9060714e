"""The one set of Trainer defaults, used by the ``lit-reg`` CLI and offered to scripts.

A script that wants the CLI's behaviour writes::

    trainer = pl.Trainer(logger=default_logger("DenseClassifier"), callbacks=default_callbacks())
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger

from lit_reg.callbacks import (
    ConfusionMatrix,
    DivergenceGuard,
    EarlyStopping,
    LearningCurves,
    ModelCheckpoint,
    OverfittingLayout,
    ProgressBarRefreshRate,
    SampleGrid,
    WeightNormMonitor,
)
from lit_reg.callbacks import (
    weight_averaging as make_weight_averaging,
)

LOG_DIR = "logs"
SEED = 42
EARLY_STOPPING: dict[str, Any] = {"monitor": "val_loss", "mode": "min", "patience": 5}
CHECKPOINT: dict[str, Any] = {"monitor": "val_loss", "mode": "min", "restore_best_weights": True}
#: ``last.ckpt`` written at the end of every epoch, for resuming killed runs. Not ``save_last=True`` on
#: ``CHECKPOINT``: since Lightning 2.6 that writes ``last.ckpt`` only in epochs whose ``val_loss`` is a new best.
LAST_CHECKPOINT: dict[str, Any] = {"monitor": None, "filename": "last", "save_top_k": 1,
                                   "enable_version_counter": False}
LOGGER: dict[str, Any] = {"default_hp_metric": False}
#: depth of the model summary printed when a fit starts: 2 lists each layer of the dense stack with its parameters
MODEL_SUMMARY_DEPTH = 2
#: batches between two redraws of the progress bar (Lightning redraws after every batch)
PROGRESS_BAR_REFRESH_RATE = 20

#: the default callbacks, in order: the CLI's callback group name → (class, init arguments);
#: :func:`default_callbacks` builds the same list for scripts
DEFAULT_CALLBACKS: dict[str, tuple[type[Callback], dict[str, Any]]] = {
    "early_stopping": (EarlyStopping, EARLY_STOPPING),
    "checkpoint": (ModelCheckpoint, CHECKPOINT),
    "last_checkpoint": (ModelCheckpoint, LAST_CHECKPOINT),
    "divergence_guard": (DivergenceGuard, {}),
    "weight_norm": (WeightNormMonitor, {}),
    "learning_curves": (LearningCurves, {}),
    "progress_bar_refresh": (ProgressBarRefreshRate, {"refresh_rate": PROGRESS_BAR_REFRESH_RATE}),
    # the cheap figures: nothing per step; quiet where they do not apply (no images, no classes)
    "overfitting_layout": (OverfittingLayout, {}),
    "sample_grid": (SampleGrid, {"warn": False}),
    "confusion_matrix": (ConfusionMatrix, {"warn": False}),
}


def default_logger(name: str, save_dir: str = LOG_DIR, **kwargs: Any) -> TensorBoardLogger:
    """A ``TensorBoardLogger`` writing to ``<save_dir>/<name>/version_N/`` (a new N for every run).

    ``default_hp_metric`` is False unless given: :class:`~lit_reg.callbacks.LearningCurves` logs the
    hyperparameters with the best ``val_loss`` as ``hp_metric`` at the end of fit, instead of Lightning's -1.

    Example:
        >>> default_logger("DenseClassifier").root_dir
        'logs/DenseClassifier'
    """
    return TensorBoardLogger(save_dir=save_dir, name=name, **{**LOGGER, **kwargs})


def default_callbacks(early_stopping: bool = True, weight_norm: bool = True, learning_curves: bool = True,
                      progress_bar_refresh_rate: int | None = PROGRESS_BAR_REFRESH_RATE, monitor: str = "val_loss",
                      mode: str = "min", restore_best_weights: bool = True, figures: bool = True,
                      weight_averaging: str | None = None, weight_averaging_kwargs: dict[str, Any] | None = None,
                      **early_stopping_kwargs: Any) -> list[Callback]:
    """``EarlyStopping`` on ``val_loss`` (patience 5), a ``ModelCheckpoint`` keeping the best (whose weights the
    model holds when ``fit`` returns) and one writing ``last.ckpt`` every epoch, ``DivergenceGuard`` (stops a run
    whose loss becomes NaN/inf before it overwrites a checkpoint), ``WeightNormMonitor``, ``LearningCurves`` and
    ``ProgressBarRefreshRate`` (the progress bar redraws every 20 batches; a no-op with
    ``enable_progress_bar=False``), and the cheap figures: ``OverfittingLayout`` (train vs validation overlaid in
    TensorBoard's custom scalars), ``SampleGrid`` (training images per class, at the start) and
    ``ConfusionMatrix`` (validation at the end of fit, and ``test``), which cost nothing per step and stay quiet
    where they do not apply (regression data).

    Args:
        early_stopping: include ``EarlyStopping``; False for runs that must last ``max_epochs``.
        weight_norm: include :class:`~lit_reg.callbacks.WeightNormMonitor`.
        learning_curves: include :class:`~lit_reg.callbacks.LearningCurves`.
        progress_bar_refresh_rate: batches between two redraws of Lightning's progress bar
            (:class:`~lit_reg.callbacks.ProgressBarRefreshRate`); None keeps Lightning's default (every batch).
        monitor, mode: the validation metric that decides the early stop, the best checkpoint and the best epoch
            of the learning curves, and whether lower (``min``) or higher (``max``) is better; e.g.
            ``monitor="val_acc", mode="max"``.
        restore_best_weights: after ``trainer.fit`` the model holds the best checkpoint's weights, not the last
            epoch's (``last.ckpt`` still holds the last epoch, for resuming).
        figures: include ``OverfittingLayout``, ``SampleGrid`` and ``ConfusionMatrix``.
        weight_averaging: ``"ema"`` or ``"swa"`` puts :func:`~lit_reg.callbacks.weight_averaging`'s callback first
            in the list (the averaged weights are validated, checkpointed and kept); None: no averaging.
        weight_averaging_kwargs: its arguments, e.g. ``{"decay": 0.99}`` (EMA) or ``{"swa_epoch_start": 0.5}``.
        early_stopping_kwargs: overrides of the ``EarlyStopping`` defaults, e.g. ``patience=3``.

    Example:
        >>> [type(c).__name__ for c in default_callbacks(patience=3)]  # doctest: +NORMALIZE_WHITESPACE
        ['EarlyStopping', 'ModelCheckpoint', 'ModelCheckpoint', 'DivergenceGuard', 'WeightNormMonitor',
         'LearningCurves', 'ProgressBarRefreshRate', 'OverfittingLayout', 'SampleGrid', 'ConfusionMatrix']
        >>> type(default_callbacks(weight_averaging="ema", weight_averaging_kwargs={"decay": 0.99})[0]).__name__
        'EMAWeightAveraging'
    """
    included = {"early_stopping": early_stopping, "weight_norm": weight_norm, "learning_curves": learning_curves,
                "progress_bar_refresh": progress_bar_refresh_rate is not None, "overfitting_layout": figures,
                "sample_grid": figures, "confusion_matrix": figures}
    monitored = {"monitor": monitor, "mode": mode}
    overrides = {"early_stopping": {**monitored, **early_stopping_kwargs},
                 "checkpoint": {**monitored, "restore_best_weights": restore_best_weights},
                 "learning_curves": monitored, "progress_bar_refresh": {"refresh_rate": progress_bar_refresh_rate}}
    averaging = [] if weight_averaging is None else [
        make_weight_averaging(weight_averaging, **(weight_averaging_kwargs or {}))]
    return averaging + [cls(**{**arguments, **overrides.get(name, {})})
                        for name, (cls, arguments) in DEFAULT_CALLBACKS.items() if included.get(name, True)]
