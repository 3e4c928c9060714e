"""The one set of Trainer defaults, used by the ``lit-reg`` CLI and offered to scripts.

A script that wants the CLI's behaviour writes::

    trainer = pl.Trainer(logger=default_logger("DenseClassifier"), callbacks=default_callbacks())
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from lit_reg.callbacks import DivergenceGuard, LearningCurves, WeightNormMonitor

LOG_DIR = "logs"
SEED = 42
EARLY_STOPPING: dict[str, Any] = {"monitor": "val_loss", "mode": "min", "patience": 5}
CHECKPOINT: dict[str, Any] = {"monitor": "val_loss", "mode": "min", "save_last": True}
LOGGER: dict[str, Any] = {"default_hp_metric": False}


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
                      **early_stopping_kwargs: Any) -> list[Callback]:
    """``EarlyStopping`` on ``val_loss`` (patience 5), ``ModelCheckpoint`` keeping the best and last,
    ``DivergenceGuard`` (stops a run whose loss becomes NaN/inf before it overwrites a checkpoint),
    ``WeightNormMonitor`` and ``LearningCurves``.

    Args:
        early_stopping: include ``EarlyStopping``; False for runs that must last ``max_epochs``.
        weight_norm: include :class:`~lit_reg.callbacks.WeightNormMonitor`.
        learning_curves: include :class:`~lit_reg.callbacks.LearningCurves`.
        early_stopping_kwargs: overrides of the ``EarlyStopping`` defaults, e.g. ``patience=3``.

    Example:
        >>> [type(c).__name__ for c in default_callbacks(patience=3)]
        ['EarlyStopping', 'ModelCheckpoint', 'DivergenceGuard', 'WeightNormMonitor', 'LearningCurves']
    """
    callbacks: list[Callback] = []
    if early_stopping:
        callbacks.append(EarlyStopping(**{**EARLY_STOPPING, **early_stopping_kwargs}))
    callbacks.append(ModelCheckpoint(**CHECKPOINT))
    callbacks.append(DivergenceGuard())
    if weight_norm:
        callbacks.append(WeightNormMonitor())
    if learning_curves:
        callbacks.append(LearningCurves())
    return callbacks
