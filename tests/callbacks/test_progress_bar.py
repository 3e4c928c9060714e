import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from datamodules import ToyRegressionDataModule
from lit_reg import DenseRegressor, default_callbacks, default_logger
from lit_reg.callbacks import ProgressBarRefreshRate
from lit_reg.cli import build_cli


class BarRedraws(pl.Callback):
    """Counts the redraws of the Trainer's progress bar during the training epochs."""

    def __init__(self) -> None:
        self.refresh_rate = None
        self.redraws = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        bar = trainer.progress_bar_callback  # its train bar exists from on_train_start on
        self.refresh_rate = bar.refresh_rate
        refresh = bar.train_progress_bar.refresh

        def counting_refresh(*args, **kwargs):
            self.redraws += 1
            return refresh(*args, **kwargs)

        bar.train_progress_bar.refresh = counting_refresh


def fit(tmp_path, callbacks, **trainer_kwargs) -> pl.Trainer:
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, default_root_dir=str(tmp_path), enable_model_summary=False,
                         logger=default_logger("DenseRegressor", save_dir=str(tmp_path)), callbacks=callbacks,
                         **trainer_kwargs)
    dm = ToyRegressionDataModule("quadratic", batch_size=1)  # 40 training batches
    trainer.fit(DenseRegressor(input_size=dm.input_size, output_size=dm.output_size, hidden_sizes=[4]), datamodule=dm)
    return trainer


def test_default_callbacks_redraw_the_bar_every_20_batches(tmp_path):
    counter = BarRedraws()
    trainer = fit(tmp_path, [*default_callbacks(), counter])
    assert counter.refresh_rate == 20
    assert trainer.progress_bar_callback.train_progress_bar.n == trainer.num_training_batches  # the last one shown
    assert 0 < counter.redraws < trainer.num_training_batches  # Lightning's default redraws every batch (twice)


def test_default_callbacks_with_the_progress_bar_off(tmp_path):
    trainer = fit(tmp_path, default_callbacks(), enable_progress_bar=False)
    assert trainer.progress_bar_callback is None
    assert trainer.state.finished


def test_a_chosen_refresh_rate_is_kept(tmp_path):
    counter = BarRedraws()
    fit(tmp_path, [*default_callbacks(), TQDMProgressBar(refresh_rate=7), counter])
    assert counter.refresh_rate == 7


def test_none_keeps_lightnings_every_batch(tmp_path):
    counter = BarRedraws()
    fit(tmp_path, [*default_callbacks(progress_bar_refresh_rate=None), counter])
    assert counter.refresh_rate == 1
    assert not any(isinstance(c, ProgressBarRefreshRate) for c in default_callbacks(progress_bar_refresh_rate=None))


@pytest.mark.parametrize("rate", [0, -3, 2.5, True])
def test_refresh_rate_must_be_a_positive_integer(rate):
    with pytest.raises(ValueError, match="refresh_rate"):
        ProgressBarRefreshRate(rate)


TOY = ["--model", "DenseRegressor", "--data", "ToyRegressionDataModule",
       "--model.hidden_sizes", "[4]", "--trainer.max_epochs", "1", "--trainer.enable_model_summary", "false"]


def test_cli_sets_the_refresh_rate_and_accepts_no_progress_bar(in_tmp_dir):
    cli = build_cli(["fit", *TOY])
    assert cli.trainer.progress_bar_callback.refresh_rate == 20
    cli = build_cli(["fit", *TOY, "--progress_bar_refresh.refresh_rate", "3"])
    assert cli.trainer.progress_bar_callback.refresh_rate == 3
    cli = build_cli(["fit", *TOY, "--trainer.enable_progress_bar", "false"])
    assert cli.trainer.progress_bar_callback is None and cli.trainer.state.finished
    assert any(isinstance(c, ProgressBarRefreshRate) for c in cli.trainer.callbacks)


def test_default_refresh_rate_is_20_batches():
    assert ProgressBarRefreshRate().refresh_rate == 20
