"""``ModelCheckpoint(restore_best_weights=True)``: the best epoch's weights in memory after fit, resuming still from
the last epoch."""

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from datamodules import ToyRegressionDataModule
from lit_reg.callbacks import ModelCheckpoint
from lit_reg.cli import build_cli
from lit_reg.defaults import default_callbacks
from lit_reg.models import DenseRegressor


class WeightsAtStart(pl.Callback):
    """The model's weights when training starts (after a checkpoint has been restored)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.state = {k: v.clone() for k, v in pl_module.state_dict().items()}


def fit(root: Path, epochs: int, restore: bool = True, ckpt_path: str | None = None, extra: tuple = ()):
    """Fit the toy regressor; ``mode="max"`` on ``val_loss`` makes the best epoch an early one, not the last."""
    pl.seed_everything(0, verbose=False)
    model = DenseRegressor(hidden_sizes=[8], lr=0.05)
    callbacks = default_callbacks(early_stopping=False, weight_norm=False, learning_curves=False,
                                  progress_bar_refresh_rate=None, monitor="val_loss", mode="max",
                                  restore_best_weights=restore)
    trainer = pl.Trainer(default_root_dir=root, max_epochs=epochs, callbacks=[*callbacks, *extra], logger=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=ToyRegressionDataModule("linear", batch_size=8), ckpt_path=ckpt_path)
    return model, trainer


def weights(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_after_fit_the_model_holds_the_best_weights_and_last_ckpt_the_last(tmp_path):
    model, trainer = fit(tmp_path, epochs=4)
    best, last = trainer.checkpoint_callback.best_model_path, str(tmp_path / "checkpoints" / "last.ckpt")
    assert torch.load(best, weights_only=False)["epoch"] < 3 == torch.load(last, weights_only=False)["epoch"]
    assert same(model.state_dict(), weights(best))
    assert not same(model.state_dict(), weights(last))


def test_without_it_the_model_keeps_the_last_weights(tmp_path):
    model, trainer = fit(tmp_path, epochs=4, restore=False)
    assert same(model.state_dict(), weights(str(tmp_path / "checkpoints" / "last.ckpt")))
    assert not same(model.state_dict(), weights(trainer.checkpoint_callback.best_model_path))


def test_resuming_from_last_ckpt_starts_from_the_last_epoch_not_the_best(tmp_path):
    fit(tmp_path, epochs=3)
    last = str(tmp_path / "checkpoints" / "last.ckpt")
    saved = weights(last)
    start = WeightsAtStart()
    _, trainer = fit(tmp_path, epochs=5, ckpt_path=last, extra=(start,))
    assert same(start.state, saved)
    assert trainer.current_epoch == 5 and torch.load(last, weights_only=False)["epoch"] == 4


def test_a_fit_without_validation_keeps_its_weights(tmp_path):
    pl.seed_everything(0, verbose=False)
    model = DenseRegressor(hidden_sizes=[4])
    trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=2, limit_val_batches=0, logger=False,
                         callbacks=[ModelCheckpoint(monitor="val_loss", restore_best_weights=True)],
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=ToyRegressionDataModule("linear", batch_size=8))
    assert trainer.checkpoint_callback.best_model_path == "" and model.net[0].weight.isfinite().all()


def test_the_cli_restores_the_best_weights_by_default(tmp_path):
    args = ["fit", "--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--data.dataset", "linear",
            "--data.batch_size", "8", "--model.hidden_sizes", "[8]", "--model.lr", "0.05", "--trainer.max_epochs", "4",
            "--checkpoint.mode", "max", "--early_stopping", "null", "--trainer.enable_progress_bar", "false",
            "--trainer.logger.init_args.save_dir", str(tmp_path)]
    cli = build_cli(args)
    best = cli.trainer.checkpoint_callback.best_model_path
    assert cli.trainer.checkpoint_callback.restore_best_weights is True
    assert torch.load(best, weights_only=False)["epoch"] < 3
    assert same(cli.model.state_dict(), weights(best))


def test_restore_best_weights_must_be_a_bool():
    with pytest.raises(ValueError, match="`restore_best_weights` must be true or false, got 'yes'"):
        ModelCheckpoint(restore_best_weights="yes")
