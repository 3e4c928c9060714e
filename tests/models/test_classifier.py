import pytest
import torch

from datamodules import FashionMNISTDataModule
from lit_reg.models import DenseClassifier
from tests.helpers.training import assert_checkpoint_round_trip, overfit_losses


@pytest.fixture
def fashion(fashion_root):
    return FashionMNISTDataModule(str(fashion_root), batch_size=32, download=False)


def test_overfits_one_batch(fashion, make_trainer):
    torch.manual_seed(0)
    model = DenseClassifier(hidden_sizes=[64, 32], lr=1e-2)
    losses = overfit_losses(model, fashion, make_trainer, epochs=40)
    assert losses[-1] < 0.1 * losses[0]
    assert losses[-1] < 0.1


def test_logged_keys_are_exactly_loss_and_accuracy_per_stage(fashion, make_trainer):
    model = DenseClassifier(hidden_sizes=[16])
    trainer = make_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=2)
    trainer.fit(model, datamodule=fashion)
    assert set(trainer.logged_metrics) == {"train_loss", "train_data_loss", "train_acc", "val_loss", "val_acc", "lr"}
    trainer.test(model, datamodule=fashion, verbose=False)
    assert set(trainer.logged_metrics) == {"test_loss", "test_acc"}
    assert 0.0 <= float(trainer.logged_metrics["test_acc"]) <= 1.0


def test_accuracy_matches_predictions(fashion, make_trainer):
    model = DenseClassifier(hidden_sizes=[16])
    trainer = make_trainer(max_epochs=1)
    trainer.fit(model, datamodule=fashion)
    (metrics,) = trainer.test(model, datamodule=fashion, verbose=False)
    predictions = trainer.predict(model, datamodule=fashion)
    preds = torch.cat([p["preds"] for p in predictions])
    targets = fashion.datasets["test"].targets
    assert metrics["test_acc"] == pytest.approx((preds == targets).float().mean().item(), abs=1e-6)


def test_predict_returns_indices_and_probabilities(fashion, make_trainer):
    model = DenseClassifier(hidden_sizes=[16])
    batches = make_trainer().predict(model, datamodule=fashion)
    first = batches[0]
    assert first["preds"].shape == (32,) and first["preds"].dtype == torch.long
    assert first["probs"].shape == (32, 10)
    torch.testing.assert_close(first["probs"].sum(dim=1), torch.ones(32))
    assert torch.equal(first["probs"].argmax(dim=1), first["preds"])


def test_checkpoint_round_trip(tmp_path, make_trainer):
    model = DenseClassifier(hidden_sizes=[32, 16], dropout=[0.2, 0.1], batchnorm=True, optimizer="sgd",
                            momentum=0.9)
    loaded = assert_checkpoint_round_trip(model, make_trainer, str(tmp_path / "m.ckpt"), torch.randn(4, 1, 28, 28))
    assert loaded.hparams.hidden_sizes == [32, 16] and loaded.hparams.momentum == 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, r"`num_classes` must be an integer >= 2, got 1"),
        ({"lr": -0.1}, r"`lr` must be in \(0.0, inf\), got -0.1"),
        ({"weight_decay": -1e-4}, r"`weight_decay` must be in \[0.0, inf\)"),
        ({"momentum": -0.5, "optimizer": "sgd"}, r"`momentum` must be in \[0.0, inf\)"),
        ({"optimizer": "lbfgs"},
         r"`optimizer` must be one of \['adagrad', 'adam', 'adamax', 'adamw', 'rmsprop', 'sgd'\], got 'lbfgs'"),
        ({"momentum": 0.9, "optimizer": "adam"}, r"`momentum` applies only to optimizer \['sgd', 'rmsprop'\]"),
        ({"dropout": 1.5}, r"`dropout` must be in \[0.0, 1.0\), got 1.5"),
        ({"hidden_sizes": [512, 512], "dropout": [0.1, 0.2, 0.3]}, r"one rate per hidden layer \(2\), got 3"),
        ({"label_smoothing": 1.0}, r"`label_smoothing` must be in \[0.0, 1.0\), got 1.0"),
        ({"label_smoothing": -0.01}, r"`label_smoothing` must be in \[0.0, 1.0\), got -0.01"),
    ],
)
def test_invalid_hyperparameters_raise_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DenseClassifier(**kwargs)


def test_label_smoothing_mixes_the_targets_with_the_uniform_distribution():
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[8], label_smoothing=0.01)
    logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    log_probs = logits.log_softmax(dim=1)
    nll = -log_probs[torch.arange(6), target].mean()
    uniform = -log_probs.mean()
    assert model.compute_loss(logits, target).item() == pytest.approx((0.99 * nll + 0.01 * uniform).item(), rel=1e-6)


def test_setattr_shortcut_keeps_module_registration():
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[8])
    model._current_fx_name = "training_step"  # what Lightning sets around every hook
    assert model._current_fx_name == "training_step" and "_current_fx_name" not in dict(model.named_modules())
    model.extra = torch.nn.Linear(2, 2)  # every other attribute still goes through nn.Module
    model.scale = torch.nn.Parameter(torch.ones(1))
    assert "extra" in dict(model.named_children()) and "scale" in dict(model.named_parameters())


def test_accuracy_is_the_share_of_correct_samples_not_a_mean_over_classes():
    """micro accuracy: 3 of 4 right is 0.75, where a mean of per-class recalls (macro) would give 0.5."""
    model = DenseClassifier(input_size=2, num_classes=3, hidden_sizes=[2])
    always_class_0 = torch.tensor([[5.0, 0.0, 0.0]] * 4)
    for metric in model.val_metrics.values(copy_state=False):
        metric.defer(always_class_0, torch.tensor([0, 0, 0, 1]))
    assert model.val_metrics.compute()["val_acc"].item() == pytest.approx(0.75)
