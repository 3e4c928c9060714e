"""The one set of Trainer defaults, used by the ``lit-reg`` CLI and offered to scripts.

A script that wants the CLI's behaviour writes::

    trainer = pl.Trainer(logger=default_logger("DenseClassifier"), callbacks=default_callbacks())
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from lit_reg.callbacks import DivergenceGuard

LOG_DIR = "logs"
SEED = 42
EARLY_STOPPING: dict[str, Any] = {"monitor": "val_loss", "mode": "min", "patience": 5}
CHECKPOINT: dict[str, Any] = {"monitor": "val_loss", "mode": "min", "save_last": True}


def default_logger(name: str, save_dir: str = LOG_DIR, **kwargs: Any) -> TensorBoardLogger:
    """A ``TensorBoardLogger`` writing to ``<save_dir>/<name>/version_N/`` (a new N for every run).

    Example:
        >>> default_logger("DenseClassifier").root_dir
        'logs/DenseClassifier'
    """
    return TensorBoardLogger(save_dir=save_dir, name=name, **kwargs)


def default_callbacks(early_stopping: bool = True, **early_stopping_kwargs: Any) -> list[Callback]:
    """``EarlyStopping`` on ``val_loss`` (patience 5), ``ModelCheckpoint`` keeping the best and last, and
    ``DivergenceGuard`` stopping a run whose loss becomes NaN/inf before it overwrites a checkpoint.

    Args:
        early_stopping: include ``EarlyStopping``; False for runs that must last ``max_epochs``.
        early_stopping_kwargs: overrides of the ``EarlyStopping`` defaults, e.g. ``patience=3``.

    Example:
        >>> [type(c).__name__ for c in default_callbacks(patience=3)]
        ['EarlyStopping', 'ModelCheckpoint', 'DivergenceGuard']
    """
    callbacks: list[Callback] = []
    if early_stopping:
        callbacks.append(EarlyStopping(**{**EARLY_STOPPING, **early_stopping_kwargs}))
    callbacks.append(ModelCheckpoint(**CHECKPOINT))
    callbacks.append(DivergenceGuard())
    return callbacks
