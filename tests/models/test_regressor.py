import torch

from datamodules import ToyRegressionDataModule
from lit_reg.models import DenseRegressor
from tests.helpers.training import assert_checkpoint_round_trip, overfit_losses


def test_overfits_one_batch(make_trainer):
    torch.manual_seed(0)
    data = ToyRegressionDataModule("quadratic", batch_size=40)
    model = DenseRegressor(hidden_sizes=[64, 64], lr=1e-2)
    losses = overfit_losses(model, data, make_trainer, epochs=150)
    assert losses[-1] < 0.2 * losses[0]


def test_logged_keys_and_metric_values(make_trainer):
    data = ToyRegressionDataModule("linear", batch_size=5)
    model = DenseRegressor(hidden_sizes=[8])
    trainer = make_trainer(max_epochs=1)
    trainer.fit(model, datamodule=data)
    assert set(trainer.logged_metrics) == {"train_loss", "train_data_loss", "train_mae", "train_r2",
                                           "val_loss", "val_mae", "val_r2", "lr"}
    (metrics,) = trainer.test(model, datamodule=data, verbose=False)
    assert set(metrics) == {"test_loss", "test_mae", "test_r2"}
    x, y = data.datasets["test"].inputs, data.datasets["test"].targets
    with torch.no_grad():
        pred = model(x)
    assert abs(metrics["test_loss"] - torch.nn.functional.mse_loss(pred, y).item()) < 1e-5
    assert abs(metrics["test_mae"] - (pred - y).abs().mean().item()) < 1e-5
    r2 = 1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert abs(metrics["test_r2"] - r2.item()) < 1e-4


def test_predict_returns_the_network_outputs_of_the_test_split(make_trainer):
    data = ToyRegressionDataModule("quadratic", batch_size=8)
    model = DenseRegressor(hidden_sizes=[4])
    batches = make_trainer().predict(model, datamodule=data)
    assert [b.shape for b in batches] == [(8, 1)] * 5
    with torch.no_grad():
        expected = model(data.datasets["test"].inputs)
    torch.testing.assert_close(torch.cat(batches), expected)


def test_checkpoint_round_trip(tmp_path, make_trainer):
    model = DenseRegressor(hidden_sizes=[6], activation="sigmoid", optimizer="rmsprop", lr=0.05)
    assert_checkpoint_round_trip(model, make_trainer, str(tmp_path / "r.ckpt"), torch.linspace(-3, 3, 7).view(-1, 1))
