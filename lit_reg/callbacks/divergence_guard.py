"""Stop a run whose training loss stops being finite, before anything is saved from it."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from lit_reg.registry import check_positive_int

log = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class DivergenceGuard(Callback):
    """Raise :class:`DivergenceError` as soon as the training loss is NaN or infinite.

    Raising (rather than only asking the trainer to stop) ends the run before the epoch-end
    checkpoint is written, so ``last.ckpt`` and the best checkpoint keep the last finite weights.
    Lightning's ``EarlyStopping(check_finite=True)`` only notices at the next validation.

    Args:
        check_every_n_steps: look at the loss every n training steps (> 0); a check is one
            ``isfinite`` on the loss, which synchronizes with the GPU, so raise n for very fast steps.

    Raises:
        ValueError: if ``check_every_n_steps`` is not a positive integer.

    Example:
        >>> DivergenceGuard(check_every_n_steps=10).check_every_n_steps
        10
    """

    def __init__(self, check_every_n_steps: int = 1) -> None:
        self.check_every_n_steps = check_positive_int(check_every_n_steps, "check_every_n_steps")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.check_every_n_steps > 1 and trainer.global_step % self.check_every_n_steps:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or (math.isfinite(loss.item()) if loss.numel() == 1 else bool(torch.isfinite(loss).all())):
            return
        checkpoint = trainer.checkpoint_callback
        kept = ""
        if checkpoint is not None and getattr(checkpoint, "best_model_path", ""):
            kept = f" The checkpoints written so far are finite and kept (best: {checkpoint.best_model_path})."
        lrs = [group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups]
        message = (
            f"Training diverged: the training loss became {float(loss)} at epoch {trainer.current_epoch}, "
            f"step {trainer.global_step} (learning rate {lrs[0] if lrs else 'unknown'}).{kept} "
            f"Lower the learning rate or add regularization, then start again or resume from a checkpoint."
        )
        log.error(message)
        raise DivergenceError(message)
