"""``EarlyStopping``: Lightning's patience rule by default, lecture 000's consecutive-increase rule on request."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping as LightningEarlyStopping
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason
from torch.utils.data import DataLoader, TensorDataset

from datamodules.fakes import write_afhq
from lit_reg.callbacks import EarlyStopping, LearningCurves
from lit_reg.cli import build_cli, cli_main

CONSECUTIVE = "consecutive_increase"
TOY = ["--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--model.hidden_sizes", "[4]",
       "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]


class Scripted(pl.LightningModule):
    """Logs ``values[epoch]`` as ``metric`` at every validation; trains one parameter that nothing reads."""

    def __init__(self, values: list[float], metric: str = "val_loss") -> None:
        super().__init__()
        self.values, self.metric = values, metric
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.weight * batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        self.log(self.metric, float(self.values[self.current_epoch]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(1, 1)), batch_size=1)

    def val_dataloader(self):
        return self.train_dataloader()


def stop_epoch(make_trainer, values, callback, ckpt_path=None, max_epochs=None):
    """The epoch the fit on ``values`` ended in (``current_epoch - 1``), and the trainer."""
    trainer = make_trainer(max_epochs=max_epochs or len(values), callbacks=[callback])
    trainer.fit(Scripted(values, callback.monitor), ckpt_path=ckpt_path)
    return trainer.current_epoch - 1, trainer


RISES_AFTER_A_DIP = [5, 4, 5, 4.5, 6, 7, 8, 9, 10, 11]  # rises at 2, 4, 5, 6: the 3rd in a row at epoch 6
ALTERNATING = [5, 6] * 5  # never two rises in a row, never a new best after epoch 0


@pytest.mark.parametrize(("values", "patience_stop", "consecutive_stop"), [
    ([5, 4, 5, 6, 7, 8, 9, 10], 4, 4),  # the 3rd rise in a row at epoch 4 is also the 3rd check without a best
    (RISES_AFTER_A_DIP, 4, 6),
    (ALTERNATING, 3, None),
    ([5, 5, 5, 5, 5, 5, 5], 3, None),  # an equal value is no rise
], ids=["three rises", "rises after a dip", "alternating", "flat"])
def test_each_rule_stops_at_its_epoch(make_trainer, values, patience_stop, consecutive_stop):
    for rule, expected in (("patience", patience_stop), (CONSECUTIVE, consecutive_stop)):
        callback = EarlyStopping("val_loss", patience=3, rule=rule)
        epoch, trainer = stop_epoch(make_trainer, values, callback)
        if expected is None:
            assert (epoch, callback.stopped_epoch, trainer.should_stop) == (len(values) - 1, 0, False), rule
            assert callback.stopping_reason is EarlyStoppingReason.NOT_STOPPED
        else:
            assert (epoch, callback.stopped_epoch) == (expected, expected), rule
            assert callback.stopping_reason is EarlyStoppingReason.PATIENCE_EXHAUSTED


def test_the_default_rule_is_lightnings(make_trainer):
    for values in (RISES_AFTER_A_DIP, ALTERNATING):
        ours, theirs = EarlyStopping("val_loss", patience=3), LightningEarlyStopping("val_loss", patience=3)
        assert stop_epoch(make_trainer, values, ours)[0] == stop_epoch(make_trainer, values, theirs)[0]
        assert ours.stopping_reason_message == theirs.stopping_reason_message
        assert ours.state_key == theirs.state_key == "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"
        assert ours.increase_count == 0 and ours.previous_score is None


def test_the_reason_says_how_often_the_metric_rose(make_trainer):
    callback = EarlyStopping("val_loss", patience=3, rule=CONSECUTIVE)
    stop_epoch(make_trainer, RISES_AFTER_A_DIP, callback)
    assert callback.stopping_reason_message == (
        "Monitored metric val_loss rose 3 epochs in a row (last 7.000 -> 8.000). Best score: 4.000."
        " Signaling Trainer to stop.")
    assert (callback.increase_count, float(callback.previous_score), callback.wait_count) == (3, 8.0, 5)


def test_mode_max_stops_after_three_falls(make_trainer):
    values = [0.5, 0.7, 0.6, 0.65, 0.6, 0.5, 0.4, 0.3]  # falls at 2, 4, 5, 6
    callback = EarlyStopping("val_acc", mode="max", patience=3, rule=CONSECUTIVE)
    assert stop_epoch(make_trainer, values, callback)[0] == 6
    assert callback.stopping_reason_message.startswith("Monitored metric val_acc fell 3 epochs in a row")
    assert stop_epoch(make_trainer, values, EarlyStopping("val_acc", mode="max", patience=3))[0] == 4


def test_a_rise_of_at_most_min_delta_is_no_rise(make_trainer):
    values = [5, 4, 4.05, 4.1, 4.15, 4.2, 4.5, 5, 6, 7]  # rises of 0.05, then of 0.3, 0.5, 1, 1
    callback = EarlyStopping("val_loss", patience=3, min_delta=0.1, rule=CONSECUTIVE)
    assert stop_epoch(make_trainer, values, callback)[0] == 8
    assert stop_epoch(make_trainer, values, EarlyStopping("val_loss", patience=3, rule=CONSECUTIVE))[0] == 4


def test_thresholds_still_stop_under_the_consecutive_rule(make_trainer):
    callback = EarlyStopping("val_loss", patience=3, rule=CONSECUTIVE, stopping_threshold=3.5)
    assert stop_epoch(make_trainer, [5, 4, 3, 2, 1], callback)[0] == 2
    assert callback.stopping_reason is EarlyStoppingReason.STOPPING_THRESHOLD


def test_the_count_is_checkpoint_state_and_a_resumed_fit_continues_it(make_trainer, tmp_path):
    first = EarlyStopping("val_loss", patience=3, rule=CONSECUTIVE)
    _, trainer = stop_epoch(make_trainer, RISES_AFTER_A_DIP, first, max_epochs=6)  # epochs 0-5: two rises so far
    assert first.increase_count == 2
    path = str(tmp_path / "epoch5.ckpt")
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=True)["callbacks"][first.state_key]
    assert (state["increase_count"], float(state["previous_score"])) == (2, 7.0)

    resumed = EarlyStopping("val_loss", patience=3, rule=CONSECUTIVE)
    assert stop_epoch(make_trainer, RISES_AFTER_A_DIP, resumed, ckpt_path=path)[0] == 6  # not 9, as from scratch


def test_state_dict_round_trip_and_lightnings_checkpoints_load():
    callback = EarlyStopping("val_loss", patience=3, rule=CONSECUTIVE)
    for value in (5.0, 4.0, 5.0, 6.0):
        callback._evaluate_stopping_criteria(torch.tensor(value))
    fresh = EarlyStopping("val_loss", patience=3, rule=CONSECUTIVE)
    fresh.load_state_dict(callback.state_dict())
    assert (fresh.increase_count, float(fresh.previous_score), float(fresh.best_score)) == (2, 6.0, 4.0)
    assert fresh._evaluate_stopping_criteria(torch.tensor(7.0))[0] is True

    old = EarlyStopping("val_loss", patience=3, rule=CONSECUTIVE)
    old.load_state_dict(LightningEarlyStopping("val_loss").state_dict())  # without the new keys
    assert (old.increase_count, old.previous_score) == (0, None)


def test_both_rules_can_watch_one_metric_in_one_trainer(make_trainer):
    patience, consecutive = (EarlyStopping("val_loss", patience=3, rule=r) for r in ("patience", CONSECUTIVE))
    assert consecutive.state_key == ("EarlyStopping{'monitor': 'val_loss', 'mode': 'min',"
                                     " 'rule': 'consecutive_increase'}")
    trainer = make_trainer(max_epochs=10, callbacks=[consecutive, patience])
    trainer.fit(Scripted(RISES_AFTER_A_DIP))
    assert (patience.stopped_epoch, consecutive.stopped_epoch) == (4, 0)


def test_unknown_rule():
    with pytest.raises(ValueError, match=r"`rule` must be one of \['patience', 'consecutive_increase'\], got 'nope'"):
        EarlyStopping("val_loss", rule="nope")


def test_the_rule_is_a_cli_option(in_tmp_dir):
    cli = build_cli([*TOY, "--early_stopping.rule", CONSECUTIVE, "--early_stopping.patience", "2"], run=False)
    callback = cli.trainer.early_stopping_callback
    assert (type(callback), callback.rule, callback.patience, callback.monitor) == (EarlyStopping, CONSECUTIVE, 2,
                                                                                      "val_loss")
    assert build_cli(TOY, run=False).trainer.early_stopping_callback.rule == "patience"


def test_an_unknown_rule_on_the_command_line_is_one_clear_error(in_tmp_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *TOY, "--early_stopping.rule", "nope"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in err
    assert "lit-reg: error: `rule` must be one of ['patience', 'consecutive_increase'], got 'nope'" in err


def test_lecture_002_config_stops_on_and_keeps_the_best_validation_accuracy(in_tmp_dir, repo_root):
    write_afhq("data", per_class=8, val_per_class=2, signal=0.3)
    cli = build_cli(["fit", "--config", str(repo_root / "configs" / "lecture_002_early_stopping.yaml"),
                     "--data.train_size", "12", "--data.val_size", "12", "--data.download", "false",
                     "--data.cache_dir", "null", "--data.batch_size", "4", "--model.lr", "0.3",
                     "--trainer.max_epochs", "4", "--trainer.enable_progress_bar", "false"])
    trainer = cli.trainer
    stopping, checkpoint = trainer.early_stopping_callback, trainer.checkpoint_callback
    assert (type(stopping), stopping.monitor, stopping.mode, stopping.patience, stopping.rule) == (
        EarlyStopping, "val_acc", "max", 20, "patience")
    assert (checkpoint.monitor, checkpoint.mode, checkpoint.restore_best_weights) == ("val_acc", "max", True)
    assert (cli.model.hparams.hidden_sizes, cli.model.hparams.optimizer, cli.datamodule.image_size) == ([124, 64],
                                                                                                         "sgd", 32)
    curves = next(c for c in trainer.callbacks if isinstance(c, LearningCurves))
    accuracies = [curves.history[epoch]["val_acc"] for epoch in range(4)]
    best_epoch = accuracies.index(max(accuracies))
    assert best_epoch < 3  # here the best accuracy comes before the last epoch, so keeping it matters
    assert float(checkpoint.best_model_score) == float(stopping.best_score) == pytest.approx(max(accuracies))
    assert curves.best_epoch == best_epoch and f"epoch={best_epoch}-" in checkpoint.best_model_path

    def weights(path):
        return torch.load(path, weights_only=True)["state_dict"]

    model = cli.model.state_dict()
    last = str(Path(checkpoint.best_model_path).parent / "last.ckpt")
    assert all(torch.equal(weights(checkpoint.best_model_path)[k], v) for k, v in model.items())
    assert not all(torch.equal(weights(last)[k], v) for k, v in model.items())


@pytest.mark.parametrize("rule", ["patience", "consecutive_increase"])
def test_a_non_finite_metric_stops_either_rule_at_once(make_trainer, rule):
    epoch, _ = stop_epoch(make_trainer, [5, 4, float("nan"), 3, 2, 1], EarlyStopping("val_loss", rule=rule))
    assert epoch == 2
