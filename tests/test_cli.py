import functools
import json
import logging
import re
import subprocess
import sys
from argparse import ArgumentError
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from jsonargparse import ArgumentParser
from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.utilities.model_summary import get_human_readable_count, summarize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_reg.callbacks import LearningCurves
from lit_reg.cli import (
    _option,
    _raised_in,
    build_cli,
    check_checkpoint_file,
    classes_from_checkpoint,
    innermost_message,
)
from lit_reg.models import DenseClassifier, DenseRegressor

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fashion_args(root: Path) -> list[str]:
    return ["--model", "DenseClassifier", "--data", "FashionMNISTDataModule", "--data.data_dir", str(root),
            "--data.download", "false", "--model.hidden_sizes", "[32]", "--trainer.max_epochs", "2", *QUIET]


def scalar_tags(run_dir: Path) -> set[str]:
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return set(accumulator.Tags()["scalars"])


def test_fit_with_overrides_writes_a_tensorboard_run(in_tmp_dir, fashion_root):
    cli = build_cli(["fit", *fashion_args(fashion_root), "--model.dropout", "0.3", "--model.optimizer", "sgd",
                     "--model.momentum", "0.9", "--model.nesterov", "true", "--model.l2_penalty", "0.01",
                     "--model.label_smoothing", "0.01", "--model.lr_scheduler", "step",
                     "--model.lr_scheduler_kwargs", '{"step_size": 1, "gamma": 0.5}', "--model.init", "kaiming_normal"])
    assert isinstance(cli.model, DenseClassifier)
    assert (cli.model.hparams.dropout, cli.model.hparams.optimizer, cli.model.hparams.momentum) == (0.3, "sgd", 0.9)
    assert cli.model.hparams.l2_penalty == 0.01
    assert cli.model.hparams.lr_scheduler_kwargs == {"step_size": 1, "gamma": 0.5}
    assert (cli.model.hparams.input_size, cli.model.hparams.num_classes) == (784, 10)  # linked from the data
    run = in_tmp_dir / "logs" / "DenseClassifier" / "version_0"
    assert {"val_loss", "val_acc", "train_loss", "train_data_loss", "train_acc", "lr", "weight_norm/total",
            "hp_metric"} <= scalar_tags(run)
    assert (run / "weight_norms.png").is_file() and (run / "learning_curves.png").is_file()
    assert (run / "config.yaml").is_file() and (run / "hparams.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert Path(cli.trainer.checkpoint_callback.best_model_path).resolve().parent == run / "checkpoints"
    saved = yaml.safe_load((run / "hparams.yaml").read_text())
    assert "output_size" not in saved and saved["dropout"] == 0.3


def test_second_run_gets_a_new_version_and_keeps_the_first(in_tmp_dir, fashion_root):
    build_cli(["fit", *fashion_args(fashion_root), "--trainer.max_epochs", "1"])
    first = in_tmp_dir / "logs" / "DenseClassifier" / "version_0"
    before = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    build_cli(["fit", *fashion_args(fashion_root), "--trainer.max_epochs", "1"])
    assert (in_tmp_dir / "logs" / "DenseClassifier" / "version_1" / "config.yaml").is_file()
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*")} == before


def test_yaml_config_with_dotted_overrides(in_tmp_dir, fashion_root):
    config = in_tmp_dir / "run.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"class_path": "lit_reg.models.DenseClassifier",
                  "init_args": {"hidden_sizes": [16, 8], "batchnorm": True, "optimizer": "rmsprop"}},
        "data": {"class_path": "datamodules.FashionMNISTDataModule",
                 "init_args": {"data_dir": str(fashion_root), "download": False, "batch_size": 50}},
        "trainer": {"max_epochs": 1},
        "early_stopping": {"init_args": {"patience": 2}},
    }))
    cli = build_cli(["fit", "--config", str(config), "--model.lr", "0.01", "--trainer.logger.init_args.save_dir",
                     "runs", "--seed_everything", "7", *QUIET])
    assert cli.model.hparams.hidden_sizes == [16, 8] and cli.model.hparams.lr == 0.01
    assert cli.datamodule.batch_size == 50
    assert cli.trainer.early_stopping_callback.patience == 2
    assert cli.config.fit.seed_everything == 7
    assert "val_loss" in scalar_tags(in_tmp_dir / "runs" / "DenseClassifier" / "version_0")


def test_regressor_on_toy_data_links_output_size(in_tmp_dir):
    cli = build_cli(["fit", "--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--data.batch_size", "8",
                     "--model.hidden_sizes", "[4]", "--trainer.max_epochs", "1", "--early_stopping", "null",
                     "--weight_norm", "null", "--learning_curves.metrics", "[loss, mae]", *QUIET])
    assert isinstance(cli.model, DenseRegressor)
    assert dict(cli.model.hparams)["output_size"] == 1 and "num_classes" not in cli.model.hparams
    assert cli.trainer.early_stopping_callback is None
    run = in_tmp_dir / "logs" / "DenseRegressor" / "version_0"
    assert "val_r2" in scalar_tags(run) and "weight_norm/total" not in scalar_tags(run)
    assert not (run / "weight_norms.png").exists() and (run / "learning_curves.png").is_file()
    assert [c.metrics for c in cli.trainer.callbacks if isinstance(c, LearningCurves)] == [["loss", "mae"]]


def test_validate_and_test_subcommands_load_the_checkpoint_weights(in_tmp_dir, fashion_root, make_trainer):
    """``validate``/``test --ckpt_path`` score the checkpoint's weights: validate gives back the val_loss the fit
    recorded for its best checkpoint, and both equal a script's ``load_from_checkpoint`` (a fresh model differs)."""
    from datamodules import FashionMNISTDataModule

    fit = build_cli(["fit", *fashion_args(fashion_root), "--trainer.max_epochs", "1"])
    best = fit.trainer.checkpoint_callback
    ckpt, best_val_loss = best.best_model_path, float(best.best_model_score)
    validated = build_cli(["validate", *fashion_args(fashion_root), "--ckpt_path", ckpt])
    tested = build_cli(["test", *fashion_args(fashion_root), "--ckpt_path", ckpt])
    val = {k: float(v) for k, v in validated.trainer.logged_metrics.items()}
    test = {k: float(v) for k, v in tested.trainer.logged_metrics.items()}
    assert set(val) == {"val_loss", "val_acc"} and set(test) == {"test_loss", "test_acc"}
    assert val["val_loss"] == pytest.approx(best_val_loss, abs=1e-6)

    def script(model: DenseClassifier) -> dict[str, float]:
        data = FashionMNISTDataModule(str(fashion_root), download=False)
        trainer = make_trainer()
        return {**trainer.validate(model, datamodule=data, verbose=False)[0],
                **trainer.test(model, datamodule=data, verbose=False)[0]}

    loaded = script(DenseClassifier.load_from_checkpoint(ckpt))
    assert {**val, **test} == pytest.approx(loaded, abs=1e-6)
    fresh = script(DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[32]))
    assert abs(fresh["val_loss"] - val["val_loss"]) > 1e-3 and abs(fresh["test_loss"] - test["test_loss"]) > 1e-3


def test_print_config_shows_the_defaults(in_tmp_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", "--model", "DenseClassifier", "--data", "ToyRegressionDataModule", "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["early_stopping"]["init_args"]["patience"] == 5
    assert printed["checkpoint"]["init_args"]["monitor"] == "val_loss"
    assert printed["last_checkpoint"]["init_args"]["filename"] == "last"
    assert printed["trainer"]["logger"]["init_args"]["save_dir"] == "logs"
    assert printed["seed_everything"] == 42
    assert printed["trainer"]["logger"]["init_args"]["default_hp_metric"] is False
    assert printed["weight_norm"]["class_path"] == "lit_reg.callbacks.WeightNormMonitor"
    assert printed["learning_curves"]["init_args"]["monitor"] == "val_loss"


def test_bad_override_is_a_clear_parser_error_not_a_traceback(in_tmp_dir, repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "lit_reg", "fit", "--model", "DenseClassifier", "--data", "ToyRegressionDataModule",
         "--model.dropoutt", "0.3"],
        capture_output=True, text=True, cwd=in_tmp_dir, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "dropoutt" in result.stderr
    assert not (in_tmp_dir / "logs").exists()


def test_checkpoint_saved_from_a_script_works_with_the_cli(in_tmp_dir, make_trainer):
    """A script's checkpoint has no ``_class_path``; the CLI takes the class from ``--model``."""
    from datamodules import ToyRegressionDataModule

    model = DenseRegressor(hidden_sizes=[7], activation="tanh")
    make_trainer(max_epochs=1).fit(model, datamodule=ToyRegressionDataModule(batch_size=8))
    trainer = make_trainer(max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint("script.ckpt")
    cli = build_cli(["test", "--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--ckpt_path",
                     "script.ckpt", *QUIET])
    assert cli.model.hparams.hidden_sizes == [7] and cli.model.hparams.activation == "tanh"
    assert set(cli.trainer.logged_metrics) == {"test_loss", "test_mae", "test_r2"}


def test_error_messages_come_from_the_error_jsonargparse_wrapped():
    """``innermost_message`` looks through the errors jsonargparse raised to the one it wrapped."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--x", type=int)
    try:
        try:
            raise ValueError("`dropout` must be in [0.0, 1.0),\n  got 1.5")
        except ValueError:
            parser.parse_args(["--x", "not-an-int"])  # raised inside jsonargparse, the ValueError as its context
    except ArgumentError as outer:
        wrapped = outer
    assert _raised_in(wrapped, "jsonargparse") and not _raised_in(wrapped, "lit_reg")
    assert innermost_message(wrapped) == "`dropout` must be in [0.0, 1.0), got 1.5"
    assert innermost_message(ValueError("plain  one")) == "plain one"  # not from jsonargparse: itself


def test_checkpoint_check_compares_class_names_not_module_paths(tmp_path):
    """A class moved between modules (``lit_reg.models.classifier.X`` vs ``lit_reg.X``) is the same class; a
    checkpoint without hyperparameters or a class path is not checked."""
    path = tmp_path / "x.ckpt"
    torch.save({"hyper_parameters": {"_class_path": "lit_reg.models.classifier.DenseClassifier"}}, path)
    assert check_checkpoint_file(str(path), "lit_reg.DenseClassifier")["hyper_parameters"]
    with pytest.raises(ValueError, match=re.escape("pass --model DenseClassifier or a checkpoint of DenseRegressor.")):
        check_checkpoint_file(str(path), "lit_reg.models.regressor.DenseRegressor")
    with pytest.raises(ValueError, match=re.escape("--model DenseClassifier or a checkpoint of DenseRegressor.")):
        check_checkpoint_file(str(path), "DenseRegressor")
    torch.save({"hyper_parameters": {"_class_path": "DenseClassifier"}}, path)
    with pytest.raises(ValueError, match=re.escape("--model DenseClassifier or a checkpoint of DenseRegressor.")):
        check_checkpoint_file(str(path), "lit_reg.DenseRegressor")
    torch.save({"state_dict": {}}, path)
    assert check_checkpoint_file(str(path), "lit_reg.DenseRegressor") == {"state_dict": {}}


def test_the_model_summary_lists_each_layer_with_its_parameters(fashion_root, tmp_path, caplog):
    """Lecture 001's 784-512-512-10: 401,920 / 262,656 / 5,130 parameters, 669 K trainable."""
    args = [*fashion_args(fashion_root), "--model.hidden_sizes", "[512, 512]", "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
            "--trainer.enable_model_summary", "true", "--trainer.logger.init_args.save_dir", str(tmp_path)]
    with caplog.at_level(logging.INFO):
        cli = build_cli(["fit", *args])
    (summary_callback,) = [c for c in cli.trainer.callbacks if isinstance(c, ModelSummary)]
    assert summary_callback._max_depth == 2
    summary = summarize(cli.model, max_depth=2)
    layers = dict(zip(summary.layer_names, summary.param_nums, strict=True))
    assert [layers[f"net.{i}"] for i in (0, 2, 4)] == [401_920, 262_656, 5_130]
    assert get_human_readable_count(summary.trainable_parameters) == "669 K"
    assert re.search(r"net\.0 +\| Linear +\| 401 K", caplog.text) and "669 K     Trainable params" in caplog.text

    quiet = build_cli(["fit", *args, "--trainer.enable_model_summary", "false"])
    assert not [c for c in quiet.trainer.callbacks if isinstance(c, ModelSummary)]


def test_the_fit_summary_names_the_run_folder_with_or_without_a_checkpoint(in_tmp_dir, capsys):
    args = ["fit", "--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--data.batch_size", "16",
            "--model.hidden_sizes", "[4]", "--trainer.max_epochs", "1", "--early_stopping", "null", *QUIET]
    build_cli(args)
    printed = capsys.readouterr().out.splitlines()
    assert f"TensorBoard logs:  {Path('logs', 'DenseRegressor', 'version_0')}" in printed
    assert any(line.startswith("Best checkpoint:   logs/DenseRegressor/version_0/checkpoints/") for line in printed)
    cli = build_cli([*args, "--checkpoint", "null", "--last_checkpoint", "null", "--trainer.enable_checkpointing",
                     "false"])
    printed = capsys.readouterr().out.splitlines()
    assert cli.trainer.checkpoint_callback is None
    assert not any(isinstance(c, ModelSummary) for c in cli.trainer.callbacks)  # enable_model_summary false: none
    assert f"TensorBoard logs:  {Path('logs', 'DenseRegressor', 'version_1')}" in printed  # the logger's folder
    assert not any(line.startswith("Best checkpoint:") for line in printed)


@pytest.mark.parametrize("save_dir", [None, "elsewhere"])
def test_fit_ckpt_path_last_takes_the_highest_version_number_that_has_a_last_ckpt(in_tmp_dir, save_dir, monkeypatch):
    root = Path(save_dir or "logs") / "DenseRegressor"
    for version in (2, 10, 3):  # "version_2" sorts after "version_10" as text
        (root / f"version_{version}" / "checkpoints").mkdir(parents=True)
        (root / f"version_{version}" / "checkpoints" / "last.ckpt").write_bytes(b"")
    (root / "version_11").mkdir()  # a newer run without a checkpoint cannot be resumed
    args = ["fit", "--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--ckpt_path", "last", *QUIET]
    if save_dir:
        args += ["--trainer.logger.init_args.save_dir", save_dir]
    resumed = []

    @functools.wraps(pl.Trainer.fit)  # the CLI reads fit's arguments off its signature
    def fit(trainer, *_, **kwargs):
        resumed.append((Path(trainer.logger.log_dir), kwargs["ckpt_path"]))

    monkeypatch.setattr(pl.Trainer, "fit", fit)
    build_cli(args)
    assert resumed == [(root / "version_10", "last")]


def test_an_option_value_is_everything_after_the_first_equals_sign_and_the_last_one_counts():
    args = ["predict", "--ckpt_path=runs/lr=0.1/best.ckpt", "--data.predict_dir", "images"]
    assert _option(args, "--ckpt_path") == "runs/lr=0.1/best.ckpt"
    assert _option(args, "--data.predict_dir") == "images"
    assert _option(["--x", "1", "--x=2"], "--x") == "2" and _option(["--x=1", "--x", "2"], "--x") == "2"
    assert _option(["--x"], "--x") is None and _option(["--xy=1"], "--x") is None


@pytest.mark.parametrize("ckpt_path", ["best", "last"])
def test_predict_with_ckpt_path_best_or_last_is_left_to_lightning(in_tmp_dir, ckpt_path):
    """No file of that name is looked for: Lightning resolves ``best``/``last`` itself."""
    args = ["predict", "--ckpt_path", ckpt_path]
    assert classes_from_checkpoint(args) == args


def test_predict_with_only_a_checkpoint_rebuilds_its_model_and_datamodule(in_tmp_dir, monkeypatch):
    model = {"_class_path": "lit_reg.models.DenseRegressor", "hidden_sizes": [3], "_instantiator": "cli"}
    data = {"_class_path": "datamodules.ToyRegressionDataModule", "batch_size": 6, "predict_dir": "gone"}
    torch.save({"hyper_parameters": model, "datamodule_hyper_parameters": data}, "run.ckpt")
    args = ["predict", "--ckpt_path", "run.ckpt", *QUIET]
    assert classes_from_checkpoint(args) == [
        "predict", "--model", json.dumps({"class_path": "lit_reg.models.DenseRegressor",
                                          "init_args": {"hidden_sizes": [3]}}),
        "--data", json.dumps({"class_path": "datamodules.ToyRegressionDataModule", "init_args": {"batch_size": 6}}),
        *args[1:]]
    predicted = []

    @functools.wraps(pl.Trainer.predict)  # the CLI reads predict's arguments off its signature
    def predict(trainer, *_, **kwargs):
        predicted.append(kwargs["ckpt_path"])

    monkeypatch.setattr(pl.Trainer, "predict", predict)
    cli = build_cli(args)
    assert predicted == ["run.ckpt"]
    assert isinstance(cli.model, DenseRegressor) and cli.model.hparams.hidden_sizes == [3]
    assert type(cli.datamodule).__name__ == "ToyRegressionDataModule" and cli.datamodule.batch_size == 6
