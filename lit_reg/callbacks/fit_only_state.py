"""A callback mixin whose checkpointed state is restored when a fit resumes, never by evaluation."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class FitOnlyState(Callback):
    """Mixin: :meth:`load_state_dict` restores the callback's state only when fitting (or outside a run).

    Lightning restores every callback's state from the checkpoint of ``trainer.test(ckpt_path=...)``,
    ``validate`` and ``predict`` too. For a per-run history (learning curves, weight norms) that rewinds the
    run that just finished to the checkpoint's epoch: ``test(ckpt_path="best")`` after a fit would cut the
    curves back to the best epoch. With this mixin a checkpoint loaded for evaluation leaves the state as it
    is, while ``fit(ckpt_path="last")`` still resumes it. The stage is known from :meth:`setup`, which
    Lightning calls before it restores a checkpoint.

    Subclasses put their restoring code in :meth:`restore_state` instead of ``load_state_dict``.

    Example:
        >>> class Counter(FitOnlyState):
        ...     count = 0
        ...     def restore_state(self, state_dict):
        ...         self.count = state_dict["count"]
        >>> counter = Counter(); counter.load_state_dict({"count": 3}); counter.count  # outside a run: restored
        3
    """

    _stage: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._stage = stage

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        self._stage = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._stage in (None, "fit"):
            self.restore_state(state_dict)

    def restore_state(self, state_dict: dict[str, Any]) -> None:
        """Restore the state saved by ``state_dict`` (called by :meth:`load_state_dict` when it applies)."""
