"""``OptunaPruning``: report the study's metric to an Optuna trial after each validation and stop a hopeless fit.

Written for ``pytorch_lightning``: optuna-integration's ``PyTorchLightningPruningCallback`` imports
``lightning.pytorch``, and a callback of one namespace cannot join a trainer of the other.

The callback does not raise ``optuna.TrialPruned`` inside Lightning's hooks (an exception there ends ``fit`` half
way, without the end-of-fit hooks that write the learning curves and close the logger). When the pruner says so it
sets ``trainer.should_stop`` (the fit ends after this epoch, like early stopping) and records ``pruned_epoch``;
whoever asked the trial then tells the study ``TrialState.PRUNED`` (see :mod:`lit_reg.study.engine`).

A trial given as ``trial`` is used as it is (scripts, tests). From the command line (``--trainer.callbacks+=
lit_reg.study.pruning.OptunaPruning``) there is no trial object to give: the callback takes the one the study
engine set with :func:`active_trial`, and without one it does nothing (a study trial's saved ``config.yaml``
refits the trial without pruning).

Example:
    >>> class Trial:  # anything with report() and should_prune(), as optuna.Trial
    ...     def report(self, value, step): pass
    ...     def should_prune(self): return True
    >>> callback = OptunaPruning("val_loss", trial=Trial())
    >>> callback.monitor, callback.pruned
    ('val_loss', False)
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl

log = logging.getLogger(__name__)

_ACTIVE: list[Any] = []  # the trial the study engine is running in this process (a stack of at most one)


@contextlib.contextmanager
def active_trial(trial: Any) -> Iterator[None]:
    """Make ``trial`` the one :class:`OptunaPruning` callbacks built without a trial report to."""
    _ACTIVE.append(trial)
    try:
        yield
    finally:
        _ACTIVE.pop()


class OptunaPruning(pl.Callback):
    """Report ``monitor`` to an Optuna trial after each validation epoch; stop the fit when the trial should be pruned.

    Args:
        monitor: the logged validation metric to report (``val_loss``, ``val_acc``, ...).
        trial: an ``optuna.Trial`` (or anything with ``report(value, step)`` and ``should_prune()``); default: the
            trial of :func:`active_trial` when the trainer starts, or none (the callback then does nothing).

    Attributes:
        pruned_epoch: the (0-based) epoch after which the pruner stopped the fit; None while not pruned.

    Raises:
        ValueError: ``monitor`` is empty, or ``trial`` lacks ``report``/``should_prune``.
    """

    def __init__(self, monitor: str = "val_loss", trial: Any = None) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"`monitor` must be a logged metric's name such as val_loss, got {monitor!r}")
        if trial is not None and not (callable(getattr(trial, "report", None))
                                      and callable(getattr(trial, "should_prune", None))):
            raise ValueError(f"`trial` must be an optuna.Trial (with report() and should_prune()), got {trial!r}")
        self.monitor = monitor
        self.trial = trial
        self.pruned_epoch: int | None = None

    @property
    def pruned(self) -> bool:
        """Whether the pruner stopped the fit."""
        return self.pruned_epoch is not None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.trial is None and _ACTIVE:
            self.trial = _ACTIVE[-1]

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.trial is None or trainer.sanity_checking or self.pruned:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return  # not logged this time (e.g. a validation that logs nothing); LearningCurves names what is missing
        value = float(value)
        if not math.isfinite(value):
            return  # Optuna refuses NaN/inf intermediate values
        epoch = trainer.current_epoch
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.pruned_epoch = epoch
            trainer.should_stop = True
            log.info("Optuna pruned the trial after epoch %d (%s=%.4g)", epoch + 1, self.monitor, value)
