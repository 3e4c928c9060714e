"""Callbacks for the resume tests, importable by dotted path so the ``lit-reg`` CLI can take them:
``--trainer.callbacks+=tests.helpers.resume.TrainingProgress`` (a subprocess needs the repository on PYTHONPATH)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class TrainingProgress(Callback):
    """Records where this process's fit started and how much it trained.

    ``start_epoch``/``start_step``: ``trainer.current_epoch`` and ``global_step`` at the first training epoch this
    process runs (after any checkpoint was restored); ``epochs``: the epochs it trained; ``batches``: the training
    batches it ran; ``end_step``: ``global_step`` when fit ended.
    """

    def __init__(self) -> None:
        self.start_epoch: int | None = None
        self.start_step: int | None = None
        self.epochs: list[int] = []
        self.batches = 0
        self.end_step: int | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.start_epoch is None:
            self.start_epoch, self.start_step = trainer.current_epoch, trainer.global_step
        self.epochs.append(trainer.current_epoch)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.batches += 1

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.end_step = trainer.global_step


def progress_of(trainer: pl.Trainer) -> TrainingProgress:
    """The :class:`TrainingProgress` among the trainer's callbacks."""
    (progress,) = [c for c in trainer.callbacks if isinstance(c, TrainingProgress)]
    return progress


class BlockMidEpoch(Callback):
    """In training epoch ``epoch``, after ``batches`` batches, writes ``marker`` and blocks until killed.

    The marker (JSON, written atomically) holds ``epoch``, ``batches`` (batches done in that epoch),
    ``batches_per_epoch`` and ``global_step``, so the test knows exactly where the process was when it killed it.
    Raises ``RuntimeError`` if nobody kills the process within ``timeout`` seconds.
    """

    def __init__(self, marker: str, epoch: int = 1, batches: int = 5, timeout: float = 300.0) -> None:
        self.marker = marker
        self.epoch = epoch
        self.batches = batches
        self.timeout = timeout

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.current_epoch != self.epoch or batch_idx + 1 != self.batches:
            return
        state = {"epoch": trainer.current_epoch, "batches": batch_idx + 1,
                 "batches_per_epoch": trainer.num_training_batches, "global_step": trainer.global_step}
        partial = Path(f"{self.marker}.partial")
        partial.write_text(json.dumps(state))
        partial.replace(self.marker)
        time.sleep(self.timeout)
        raise RuntimeError(f"BlockMidEpoch: not killed within {self.timeout} s")
