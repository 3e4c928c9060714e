from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import Callback

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


def test_predict_gives_each_sample_its_class_and_the_confidence_of_that_class():
    model = BitmojiClassifier(input_size=2, hidden_sizes=[1], classes=["cat", "dog"]).eval()
    with torch.no_grad():  # logit = leaky_relu(x₀) − 1: 2 for x₀ = 3 ("dog"), −1 for x₀ = 0 ("cat")
        model.linear_layers[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        model.linear_layers[0].bias.zero_()
        model.linear_layers[1].weight.fill_(1.0)
        model.linear_layers[1].bias.fill_(-1.0)
    out = model.predict_step(torch.tensor([[3.0, 5.0], [0.0, 5.0]]), 0)
    dog, cat = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(-1.0))
    torch.testing.assert_close(out["probs"], torch.stack([dog, cat]))  # always the probability of classes[1]
    assert out["preds"].tolist() == [1, 0] and out["labels"] == ["dog", "cat"]
    torch.testing.assert_close(out["confidence"], torch.stack([dog, 1 - cat]))
    tie = model.predict_step(torch.tensor([[1.0, 0.0]]), 0)  # logit 0, probability 0.5: the negative class,
    assert tie["labels"] == ["cat"] and tie["preds"].tolist() == [0]  # as BinaryAccuracy counts it


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


class ValidationBatches(Callback):
    """Keeps every validation batch as the model receives it (after the datamodule's transform)."""

    def __init__(self) -> None:
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.batches.append((batch[0].clone(), batch[1].clone()))


def auroc_by_hand(probs: torch.Tensor, target: torch.Tensor) -> float:
    """The share of (positive, negative) pairs the positive scores higher; a tie counts one half."""
    pos, neg = probs[target == 1].unsqueeze(1), probs[target == 0].unsqueeze(0)
    return ((pos > neg).float().mean() + 0.5 * (pos == neg).float().mean()).item()


def test_val_acc_f1_and_auroc_equal_the_hand_computation(tmp_path, make_trainer):
    root = write_tree(tmp_path / "train", {"not_tom": 20, "tom": 20})
    for i in range(0, 20, 3):  # swap a third of the images: class scores overlap, so the AUROC is neither 0 nor 1
        (root / "tom" / f"{i}.png").rename(root / "not_tom" / f"swapped_{i}.png")
        (root / "not_tom" / f"{i}.png").rename(root / "tom" / f"swapped_{i}.png")
    dm = tiny_data(root, tmp_path, val_fraction=0.5)  # 20 validation images in batches of 8, 8 and 4
    dm.setup()
    torch.manual_seed(0)
    model = BitmojiClassifier(input_size=100, hidden_sizes=[8], dropout=0.0).eval()
    with torch.no_grad():  # shift the logits so that 13 of the 20 validation images score above 0 ("tom")
        logits = model(dm.transform_inputs(dm.datasets["val"].inputs)).sort().values
        model.linear_layers[-1].bias.sub_(logits[6:8].mean())
    recorder = ValidationBatches()
    trainer = make_trainer(callbacks=[recorder])
    (metrics,) = trainer.validate(model, datamodule=dm, verbose=False)
    x, target = (torch.cat(parts) for parts in zip(*recorder.batches, strict=True))
    assert len(target) == 20 and len(recorder.batches) == 3
    with torch.no_grad():
        probs = model(x).sigmoid()
    preds = (probs >= 0.5).long()
    tp, fp, fn = [((preds == p) & (target == t)).sum().item() for p, t in ((1, 1), (1, 0), (0, 1))]
    accuracy = (preds == target).float().mean().item()
    f1 = 2 * tp / (2 * tp + fp + fn)
    auroc = auroc_by_hand(probs, target)
    assert preds.sum() == 13
    assert len({round(v, 4) for v in (accuracy, f1, auroc, 0.0, 0.5, 1.0)}) == 6  # no two alike, none degenerate
    assert metrics["val_acc"] == pytest.approx(accuracy, abs=1e-6)
    assert metrics["val_f1"] == pytest.approx(f1, abs=1e-6)
    assert metrics["val_auroc"] == pytest.approx(auroc, abs=1e-6)


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
