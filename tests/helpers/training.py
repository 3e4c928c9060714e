"""Training helpers the model tests share."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch

from tests.conftest import EpochMetrics


def overfit_losses(model: pl.LightningModule, datamodule: pl.LightningDataModule,
                   make_trainer: Callable[..., pl.Trainer], epochs: int = 40) -> list[float]:
    """Train on one batch for ``epochs`` epochs; return the logged ``train_loss`` of every epoch."""
    recorder = EpochMetrics()
    trainer = make_trainer(overfit_batches=1, max_epochs=epochs, callbacks=[recorder], limit_val_batches=0)
    trainer.fit(model, datamodule=datamodule)
    return [h["train_loss"] for h in recorder.history]


def assert_checkpoint_round_trip(model: pl.LightningModule, make_trainer: Callable[..., pl.Trainer],
                                 path: str, inputs: torch.Tensor) -> pl.LightningModule:
    """Save ``model`` through a Trainer, load it with ``load_from_checkpoint`` and compare outputs."""
    trainer = make_trainer(max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    loaded = type(model).load_from_checkpoint(path)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(inputs), loaded(inputs))
    assert dict(loaded.hparams) == dict(model.hparams)
    return loaded
