import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from datamodules import FashionMNISTDataModule, ToyRegressionDataModule
from lit_reg import DenseClassifier, DenseRegressor, default_logger
from lit_reg.callbacks import LearningCurves
from tests.conftest import EpochMetrics


def events(trainer) -> EventAccumulator:
    accumulator = EventAccumulator(trainer.log_dir, size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture
def classifier_run(tmp_path, fashion_root, make_trainer):
    torch.manual_seed(0)
    recorder, curves = EpochMetrics(), LearningCurves()
    trainer = make_trainer(max_epochs=3, logger=default_logger("clf", save_dir=str(tmp_path / "logs")),
                           callbacks=[recorder, curves])
    trainer.fit(DenseClassifier(hidden_sizes=[16], lr=0.05),
                datamodule=FashionMNISTDataModule(str(fashion_root), batch_size=64, download=False))
    return trainer, curves, recorder


def test_png_has_a_loss_and_an_accuracy_panel(classifier_run, tmp_path):
    trainer, curves, _ = classifier_run
    assert curves.plot_path == tmp_path / "logs" / "clf" / "version_0" / "learning_curves.png"
    with Image.open(curves.plot_path) as image:
        assert image.format == "PNG" and image.size == (1000, 400)  # two 5×4 in panels at 100 dpi


def test_history_and_best_epoch_match_the_logged_values(classifier_run):
    _, curves, recorder = classifier_run
    val_losses = [h["val_loss"] for h in recorder.history]
    assert [curves.history[e]["val_loss"] for e in range(3)] == pytest.approx(val_losses)
    train_acc = [h["train_acc"] for h in recorder.history]
    assert [curves.history[e]["train_acc"] for e in range(3)] == pytest.approx(train_acc)
    assert curves.best_epoch == val_losses.index(min(val_losses))
    assert curves.best_score == pytest.approx(min(val_losses))


def test_tensorboard_gets_the_image_and_hparams_with_the_best_val_loss(classifier_run):
    trainer, curves, recorder = classifier_run
    run = events(trainer)
    assert "learning_curves" in run.Tags()["images"]
    hp_metric = run.Scalars("hp_metric")
    assert [s.value for s in hp_metric] == pytest.approx([min(h["val_loss"] for h in recorder.history)])  # no -1
    assert "_hparams_/experiment" in run.PluginTagToContent("hparams")
    assert b"hidden_sizes" in run.PluginTagToContent("hparams")["_hparams_/session_start_info"]


def test_regressor_gets_one_loss_panel_and_custom_size(tmp_path, make_trainer):
    curves = LearningCurves(panel_size=(3, 2), log_hp_metric=False)
    trainer = make_trainer(max_epochs=2, logger=default_logger("reg", save_dir=str(tmp_path)), callbacks=[curves])
    trainer.fit(DenseRegressor(hidden_sizes=[4]), datamodule=ToyRegressionDataModule("linear", batch_size=5))
    with Image.open(curves.plot_path) as image:
        assert image.size == (300, 200)
    assert "hp_metric" not in events(trainer).Tags()["scalars"]


def test_state_dict_round_trip():
    curves = LearningCurves()
    curves.history = {0: {"val_loss": 2.0}, 1: {"val_loss": 1.0}}
    restored = LearningCurves()
    restored.load_state_dict(curves.state_dict())
    assert restored.history == curves.history and restored.best_epoch == 1
    assert LearningCurves(monitor="val_acc", mode="max").state_key != curves.state_key
    restored.load_state_dict({})  # a checkpoint saved before the callback was added: no history
    assert restored.history == {}


def test_state_key_is_lightnings_format_and_follows_monitor_and_mode():
    curves = LearningCurves()
    assert curves.state_key == "LearningCurves{'monitor': 'val_loss', 'mode': 'min'}"
    curves.monitor, curves.mode = "val_acc", "max"
    assert curves.state_key == "LearningCurves{'monitor': 'val_acc', 'mode': 'max'}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "lowest"}, r"`mode` must be one of \['min', 'max'\], got 'lowest'"),
        ({"metrics": []}, r"`metrics` must name at least one metric"),
        ({"filename": "curves.svg"}, r"`filename` must end in '.png', got 'curves.svg'"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LearningCurves(**kwargs)
