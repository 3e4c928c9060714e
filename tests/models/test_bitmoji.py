from pathlib import Path

import pytest
import torch

from datamodules import ImageFolderDataModule
from lit_reg.models import BitmojiClassifier
from tests.conftest import SHARED_DATA, EpochMetrics
from tests.datamodules.image_trees import write_tree
from tests.helpers.training import assert_checkpoint_round_trip, overfit_losses


@pytest.fixture
def bitmoji_tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "train", {"not_tom": 12, "tom": 12})


def tiny_data(root: Path, tmp_path: Path, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(str(root), image_size=10, batch_size=8, cache_dir=str(tmp_path / "cache"), **kwargs)


def test_lecture_defaults_and_one_logit():
    model = BitmojiClassifier()
    assert [layer.out_features for layer in model.linear_layers] == [256, 128, 64, 16, 1]
    assert model.linear_layers[0].in_features == 2500
    assert model(torch.zeros(3, 1, 50, 50)).shape == (3,)


def test_loss_is_bce_on_float_targets():
    model = BitmojiClassifier(input_size=4, hidden_sizes=[3])
    logits, target = torch.tensor([0.0, 2.0]), torch.tensor([1, 0])
    expected = -(torch.log(torch.sigmoid(torch.tensor(0.0))) + torch.log(1 - torch.sigmoid(torch.tensor(2.0)))) / 2
    assert torch.isclose(model.compute_loss(logits, target), expected)


@pytest.mark.parametrize("classes", [["tom"], ["a", "a"], "ab", ["a", "b", "c"]])
def test_classes_must_be_two_names(classes):
    with pytest.raises(ValueError, match="`classes` must be two distinct class names"):
        BitmojiClassifier(classes=classes)


def test_predict_returns_probabilities_and_class_names():
    model = BitmojiClassifier(input_size=2, hidden_sizes=[2], classes=["cat", "dog"]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.linear_layers[-1].bias.fill_(2.0)  # logit 2 for every input
    out = model.predict_step((torch.zeros(2, 2), ["a.png", "b.png"]), 0)
    assert out["labels"] == ["dog", "dog"]
    assert torch.allclose(out["probs"], torch.sigmoid(torch.tensor(2.0)).expand(2))
    assert torch.allclose(out["confidence"], out["probs"])


def test_overfits_a_small_batch_and_logs_per_stage_metrics(bitmoji_tree, tmp_path, make_trainer):
    torch.manual_seed(0)
    model = BitmojiClassifier(input_size=100, hidden_sizes=[32, 16], dropout=0.0, lr=1e-2)
    dm = tiny_data(bitmoji_tree, tmp_path, val_fraction=0.25)
    losses = overfit_losses(model, dm, make_trainer, epochs=30)
    assert losses[-1] < 0.05 < losses[0]
    trainer = make_trainer(max_epochs=1)
    recorder = EpochMetrics()
    trainer.callbacks.append(recorder)
    trainer.fit(model, datamodule=dm)
    keys = set(trainer.callback_metrics)
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "val_auroc"} <= keys
    assert not {"train_f1", "train_auroc"} & keys


def test_checkpoint_round_trip_keeps_classes(tmp_path, make_trainer):
    model = BitmojiClassifier(input_size=6, hidden_sizes=[4], batchnorm=True, classes=["a", "b"])
    loaded = assert_checkpoint_round_trip(model, make_trainer, str(tmp_path / "m.ckpt"), torch.randn(5, 6))
    assert list(loaded.hparams.classes) == ["a", "b"]


def test_wrong_input_size_fails_before_training_with_both_numbers(bitmoji_tree, tmp_path, make_trainer):
    model = BitmojiClassifier(input_size=2500, hidden_sizes=[4])
    dm = tiny_data(bitmoji_tree, tmp_path)  # 10×10 grayscale: 100 inputs
    trainer = make_trainer(max_epochs=1)
    with pytest.raises(ValueError, match=r"ImageFolderDataModule gives 100 input features .* input_size=2500"):
        trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 0


@pytest.mark.slow
def test_real_bitmoji_data_beats_chance(tmp_path, make_trainer):
    root = SHARED_DATA / "bitmoji_bw"
    if not (root / "train").is_dir() or not (root / "valid").is_dir():
        pytest.skip(f"the Bitmoji data is not at {root}/{{train,valid}} (the shared data folder is absent)")
    torch.manual_seed(0)
    dm = ImageFolderDataModule(str(root / "train"), val_dir=str(root / "valid"), augment=True, max_shift=3,
                               cache_dir=str(tmp_path / "cache"))
    model = BitmojiClassifier(batchnorm=True, dropout=0.3, optimizer="adamw", weight_decay=0.01)
    trainer = make_trainer(max_epochs=4)
    trainer.fit(model, datamodule=dm)
    assert trainer.validate(model, datamodule=dm, verbose=False)[0]["val_acc"] > 0.6
