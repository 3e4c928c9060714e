"""Predict with a checkpoint alone: ``lit-reg predict --ckpt_path CKPT --data.predict_dir IMAGES`` and
:func:`lit_reg.cli.predict_from_checkpoint`, with the training folders moved away."""

import re
import shutil
from pathlib import Path

import pytest
import torch

from datamodules import ImageFolderDataModule
from lit_reg.cli import build_cli, predict_from_checkpoint
from tests.callbacks.test_prediction_printer import LINE, QUIET, expected_lines
from tests.datamodules.image_trees import write_tree


@pytest.fixture
def trained(in_tmp_dir, tmp_path):
    """A Bitmoji-style fit on a tree that is moved away afterwards; the best checkpoint and the fit's objects."""
    root = write_tree(tmp_path / "train", {"not_tom": 6, "tom": 6})
    fit = build_cli(["fit", "--model", "BitmojiClassifier", "--data", "ImageFolderDataModule", "--data.train_dir",
                     "train", "--data.image_size", "10", "--data.batch_size", "4", "--data.cache_dir", "",
                     "--data.grayscale", "false", "--data.val_fraction", "0.25", "--model.hidden_sizes", "[8]",
                     "--trainer.max_epochs", "2", *QUIET])
    images = shutil.move(root, tmp_path / "moved")  # the training tree is gone
    return fit, str(Path(fit.trainer.checkpoint_callback.best_model_path).resolve()), Path(images)


def test_the_cli_predicts_with_only_the_checkpoint_and_the_images(trained, tmp_path, capsys, monkeypatch):
    fit, ckpt, images = trained
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative train_dir of the checkpoint does not exist here either
    capsys.readouterr()
    cli = build_cli(["predict", "--ckpt_path", ckpt, "--data.predict_dir", str(images), *QUIET])
    lines = [line for line in capsys.readouterr().out.splitlines() if LINE.match(line)]
    assert len(lines) == 12
    assert type(cli.datamodule).__name__ == "ImageFolderDataModule" and cli.datamodule.input_size == 300  # RGB 10²
    assert cli.datamodule.classes == ["not_tom", "tom"] and list(cli.model.hparams.classes) == ["not_tom", "tom"]
    assert torch.equal(cli.datamodule.mean, fit.datamodule.mean) and torch.equal(cli.datamodule.std, fit.datamodule.std)
    assert lines == expected_lines(cli.model, cli.datamodule)


def test_predict_from_checkpoint_in_one_call(trained):
    fit, ckpt, images = trained
    batches = predict_from_checkpoint(ckpt, str(images / "tom"))
    labels = [label for batch in batches for label in batch["labels"]]
    probs = torch.cat([batch["probs"] for batch in batches])
    assert len(labels) == 6 and set(labels) <= {"not_tom", "tom"}
    model = type(fit.model).load_from_checkpoint(ckpt).eval()
    data = ImageFolderDataModule(predict_dir=str(images / "tom"), classes=["not_tom", "tom"], image_size=10,
                                 grayscale=False, cache_dir="")
    data.load_state_dict({"mean": fit.datamodule.mean, "std": fit.datamodule.std})
    (batch,) = list(data.predict_dataloader())
    inputs, _ = data.on_after_batch_transfer(batch, 0)
    with torch.no_grad():
        assert torch.allclose(probs, model(inputs).sigmoid())


def test_a_script_checkpoint_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "script.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"hidden_sizes": [2]}}, path)
    with pytest.raises(ValueError, match="names no model or datamodule class .*load_from_checkpoint"):
        predict_from_checkpoint(str(path), str(tmp_path))


def test_folders_are_checked_by_the_stage_that_reads_them(tmp_path):
    data = ImageFolderDataModule(train_dir=str(tmp_path / "gone"), val_dir="also_gone", classes=["a", "b"])
    assert (data.num_classes, data.input_size) == (2, 2500)
    with pytest.raises(FileNotFoundError, match=re.escape(f"`train_dir` directory {tmp_path / 'gone'} does not exist")):
        data.setup("fit")
    with pytest.raises(FileNotFoundError, match="`predict_dir` nowhere does not exist"):
        ImageFolderDataModule(classes=["a", "b"], predict_dir="nowhere").setup("predict")


def test_without_train_dir_or_classes_the_classes_are_unknown(tmp_path):
    with pytest.raises(ValueError, match="needs `train_dir` .* or `classes`; to predict with a trained model"):
        ImageFolderDataModule()
    with pytest.raises(FileNotFoundError, match="`train_dir` directory .*gone does not exist"):
        ImageFolderDataModule(str(tmp_path / "gone"))


def test_given_classes_must_match_the_training_folders(tmp_path):
    root = write_tree(tmp_path / "train", {"cat": 2, "dog": 2})
    assert ImageFolderDataModule(str(root), classes=["cat", "dog"]).classes == ["cat", "dog"]
    with pytest.raises(ValueError, match=r"`classes` \['dog', 'cat'\] differ from the class folders \['cat', 'dog'\]"):
        ImageFolderDataModule(str(root), classes=["dog", "cat"])
    with pytest.raises(ValueError, match="`classes` must be a list of distinct class names"):
        ImageFolderDataModule(str(root), classes=["cat", "cat"])


def test_a_missing_checkpoint_is_one_clear_error(in_tmp_dir, capsys):
    from lit_reg.cli import cli_main

    with pytest.raises(SystemExit) as exit_info:
        cli_main(["predict", "--ckpt_path", "runs/none.ckpt", "--data.predict_dir", "."])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "lit-reg: error: checkpoint runs/none.ckpt does not exist; pass the best checkpoint" in err
