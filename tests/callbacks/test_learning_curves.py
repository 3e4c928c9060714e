import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from torch import nn

from datamodules import FashionMNISTDataModule, ToyRegressionDataModule
from datamodules.fakes import write_afhq, write_fashion_mnist, write_image_folder
from lit_reg import DenseClassifier, DenseRegressor, default_logger
from lit_reg.callbacks import LearningCurves
from lit_reg.cli import build_cli
from tests.conftest import EpochMetrics

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def events(trainer) -> EventAccumulator:
    accumulator = EventAccumulator(trainer.log_dir, size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def hparams_plugin(run: EventAccumulator) -> tuple[dict[str, object], list[str]]:
    """The HPARAMS entries of a run as Python values, and the names of the metrics HPARAMS shows."""
    content = run.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    values = {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}
    return values, [info.name.tag for info in experiment.metric_infos]


@pytest.fixture
def classifier_run(tmp_path, fashion_root, make_trainer):
    torch.manual_seed(0)
    recorder, curves = EpochMetrics(), LearningCurves(extra_hparams={"variant": "dropout_0.3", "seed": 1})
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


def test_figure_says_run_and_epochs_counts_epochs_from_one_and_labels_the_axes_with_units(classifier_run):
    _, curves, recorder = classifier_run
    figure = curves.plot()
    assert figure.get_suptitle() == "Learning curves: clf/version_0, after 3 epochs"
    loss, acc = figure.axes
    assert (loss.get_title(), acc.get_title()) == ("Loss", "Accuracy")
    assert (loss.get_ylabel(), acc.get_ylabel()) == ("cross-entropy loss (nats per sample)",
                                                     "accuracy (fraction correct)")
    assert loss.get_xlabel().startswith("epoch (1-based")
    train, val, best = loss.lines
    assert list(train.get_xdata()) == list(val.get_xdata()) == [1, 2, 3]  # after the 1st, 2nd, 3rd epoch
    assert list(val.get_ydata()) == pytest.approx([h["val_loss"] for h in recorder.history])
    done = curves.best_epoch + 1  # best_epoch itself stays 0-based
    assert list(best.get_xdata()) == [done, done]
    legend = [t.get_text() for t in loss.get_legend().get_texts()]
    assert legend[:2] == ["train", "validation"]
    assert legend[2] == f"best val_loss = {curves.best_score:.4g}\nafter {done} epoch{'s' * (done != 1)}"


def test_tensorboard_gets_the_image_and_hparams_with_the_best_val_loss(classifier_run):
    trainer, curves, recorder = classifier_run
    run = events(trainer)
    assert "learning_curves" in run.Tags()["images"]
    hp_metric = run.Scalars("hp_metric")
    assert [s.value for s in hp_metric] == pytest.approx([min(h["val_loss"] for h in recorder.history)])  # no -1
    assert "_hparams_/experiment" in run.PluginTagToContent("hparams")
    assert b"hidden_sizes" in run.PluginTagToContent("hparams")["_hparams_/session_start_info"]


def test_hparams_list_the_datamodule_the_extras_and_the_best_of_each_validation_metric(classifier_run):
    trainer, _, recorder = classifier_run
    run = events(trainer)
    hparams, metric_names = hparams_plugin(run)
    assert (hparams["data/batch_size"], hparams["data/val_fraction"], hparams["data/augment"]) == (64, 0.1, False)
    assert (hparams["variant"], hparams["seed"]) == ("dropout_0.3", 1)
    assert (hparams["hidden_sizes"], hparams["lr"]) == ("[16]", 0.05)  # a list shows as its str
    assert hparams["data/train_size"] == "None" and hparams["data/download"] == 0.0  # torch writes a bool as 0/1
    assert set(metric_names) == {"hp_metric", "best_val_loss", "best_val_acc"}
    best = {name: [s.value for s in run.Scalars(name)] for name in metric_names}
    assert best["best_val_loss"] == pytest.approx([min(h["val_loss"] for h in recorder.history)])
    assert best["best_val_acc"] == pytest.approx([max(h["val_acc"] for h in recorder.history)])
    assert best["hp_metric"] == best["best_val_loss"]
    saved = yaml.safe_load((Path(trainer.log_dir) / "hparams.yaml").read_text())  # Lightning's, at the start of fit
    assert (saved["hidden_sizes"], saved["batch_size"]) == ([16], 64)


def test_best_values_take_the_lowest_of_losses_and_errors_and_the_highest_of_the_rest():
    curves = LearningCurves(monitor="val_acc", mode="max", metrics=["loss", "mae", "r2", "acc"])
    curves.history = {0: {"val_loss": 0.5, "val_mae": 0.2, "val_r2": 0.7, "val_acc": 0.9, "train_loss": 0.1},
                      1: {"val_loss": 0.4, "val_mae": 0.3, "val_r2": 0.8, "val_acc": 0.8, "train_loss": 0.05}}
    assert curves.best_values() == {"best_val_acc": 0.9, "best_val_loss": 0.4, "best_val_mae": 0.2, "best_val_r2": 0.8}
    curves.monitor, curves.mode = "val_r2", "min"  # the monitor follows the mode it is given
    assert curves.best_values()["best_val_r2"] == 0.7


@pytest.fixture
def pair_args(request, tmp_path) -> list[str]:
    """Command-line arguments of a tiny fit of each model/datamodule pair the configs use."""
    root = tmp_path / "data"
    if request.param == "fashion":
        write_fashion_mnist(str(root), num_train=60, num_test=10)
        return ["--model", "DenseClassifier", "--data", "FashionMNISTDataModule", "--data.data_dir", str(root),
                "--data.download", "false"]
    if request.param == "animal_faces":
        write_afhq(str(root), per_class=4, val_per_class=2, image_size=8)
        return ["--model", "DenseClassifier", "--data", "AnimalFacesDataModule", "--data.data_dir", str(root),
                "--data.download", "false", "--data.cache_dir", "null", "--data.image_size", "8",
                "--data.val_size", "3"]
    if request.param == "toy_regression":
        return ["--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--data.dataset", "linear"]
    write_image_folder(root, {"not_tom": 4, "tom": 4}, sizes=((12, 12),))
    return ["--model", "BitmojiClassifier", "--data", "ImageFolderDataModule", "--data.train_dir", str(root),
            "--data.image_size", "8", "--data.cache_dir", "", "--data.val_fraction", "0.25"]


@pytest.mark.parametrize("pair_args", ["fashion", "animal_faces", "toy_regression", "image_folder"], indirect=True)
def test_the_cli_logs_the_datamodule_and_extra_hparams_and_checkpoints_the_datamodules_arguments(
        pair_args, in_tmp_dir):
    cli = build_cli(["fit", *pair_args, "--data.batch_size", "3", "--model.hidden_sizes", "[4]",
                     "--trainer.max_epochs", "1", "--learning_curves.init_args.extra_hparams",
                     json.dumps({"variant": "a", "seed": 1}), *QUIET])  # no clash of model and datamodule hparams
    hparams, metric_names = hparams_plugin(events(cli.trainer))
    assert (hparams["data/batch_size"], hparams["variant"], hparams["seed"]) == (3, "a", 1)
    assert hparams["hidden_sizes"] == "[4]" and {"hp_metric", "best_val_loss"} <= set(metric_names)
    assert not [name for name in hparams if name.startswith(("_", "data/_"))]  # LightningCLI's _class_path
    checkpoint = torch.load(cli.trainer.checkpoint_callback.best_model_path, weights_only=False)
    data_hparams = checkpoint["datamodule_hyper_parameters"]
    assert (data_hparams["batch_size"], data_hparams["_class_path"]) == (3, f"datamodules.{pair_args[3]}")


def test_regressor_gets_one_loss_panel_and_custom_size(tmp_path, make_trainer):
    curves = LearningCurves(panel_size=(3, 2), log_hp_metric=False)
    trainer = make_trainer(max_epochs=2, logger=default_logger("reg", save_dir=str(tmp_path)), callbacks=[curves])
    trainer.fit(DenseRegressor(hidden_sizes=[4]), datamodule=ToyRegressionDataModule("linear", batch_size=5))
    with Image.open(curves.plot_path) as image:
        assert image.size == (300, 200)
    axes = curves.plot().axes
    assert [a.get_ylabel() for a in axes] == ["mean squared error loss (target units²)"]
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
        ({"extra_hparams": ["variant"]},
         r"^`extra_hparams` must be a dict of string keys and str, int, float or bool values, e\.g\. "
         r"\{'variant': 'dropout_0\.3', 'seed': 1\}, got \['variant'\]$"),
        ({"extra_hparams": {"seeds": [0, 1]}}, r"`extra_hparams` must be .* got \{'seeds': \[0, 1\]\}"),
        ({"extra_hparams": {"note": None}}, r"`extra_hparams` must be .* got \{'note': None\}"),
        ({"extra_hparams": {1: "a"}}, r"`extra_hparams` must be .* got \{1: 'a'\}"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LearningCurves(**kwargs)


def test_hparams_metrics_are_logged_at_the_last_training_step(classifier_run):
    trainer, _, _ = classifier_run
    run = events(trainer)
    assert trainer.global_step > 0
    for name in ("hp_metric", "best_val_loss", "best_val_acc"):
        assert [s.step for s in run.Scalars(name)] == [trainer.global_step]


class PlainRegressor(pl.LightningModule):
    """A model outside the collection: LearningCurves knows no loss label for it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self.net(batch[0]), batch[1])
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", F.mse_loss(self.net(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_a_model_outside_the_collection_gets_the_plain_loss_label(tmp_path, make_trainer):
    curves = LearningCurves(metrics=["loss"])
    trainer = make_trainer(max_epochs=1, logger=default_logger("plain", save_dir=str(tmp_path)), callbacks=[curves])
    trainer.fit(PlainRegressor(), datamodule=ToyRegressionDataModule("linear", batch_size=5))
    assert curves.plot_path.is_file() and curves.loss_label == "loss"
    assert [axes.get_ylabel() for axes in curves.plot().axes] == ["loss"]
    assert [s.value for s in events(trainer).Scalars("hp_metric")] == [curves.best_score]


def test_a_figure_drawn_before_the_end_of_fit_has_the_plain_title_and_loss_label():
    curves = LearningCurves(metrics=["loss"])
    curves.history = {0: {"train_loss": 1.0, "val_loss": 1.2}, 1: {"train_loss": 0.8, "val_loss": 1.0}}
    figure = curves.plot()
    assert figure.get_suptitle() == "Learning curves"
    assert figure.axes[0].get_ylabel() == "loss"
