import csv

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from datamodules import ToyRegressionDataModule
from lit_reg.callbacks.weight_histograms import WeightHistograms, layer_label, linear_layer_names, sparsity
from lit_reg.models import DenseClassifier, DenseRegressor

LAYERS = ["Linear 1 (1→8)", "Linear 2 (8→4)", "Linear 3 (4→1)"]


def test_layer_names_count_the_linear_layers_from_one_with_their_sizes():
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[512, 32], batchnorm=True, dropout=0.2)
    assert linear_layer_names(model) == {"net.0": "Linear 1 (784→512)", "net.4": "Linear 2 (512→32)",
                                         "net.8": "Linear 3 (32→10)"}
    assert layer_label(nn.Linear(3, 7), 4) == "Linear 4 (3→7)"
    assert linear_layer_names(nn.Sequential(nn.ReLU())) == {}


def test_sparsity_is_the_share_of_small_weights_by_hand():
    torch.manual_seed(0)
    model = DenseRegressor(hidden_sizes=[8, 4])
    with torch.no_grad():
        model.net[0].weight[:4] = 0.0  # half of the first layer
        model.net[2].weight[0, :3] = 5e-4  # below the threshold too
        model.net[2].weight[1, :2] = 2e-3  # above it
    values = WeightHistograms(threshold=1e-3).values(model)
    weights = [model.net[i].weight.detach() for i in (0, 2, 4)]
    expected = [float((w.abs() < 1e-3).float().mean()) for w in weights]
    assert list(values) == [f"weight_sparsity/{name}" for name in LAYERS] + ["weight_sparsity/total"]
    assert [values[f"weight_sparsity/{name}"] for name in LAYERS] == pytest.approx(expected)
    assert values["weight_sparsity/Linear 1 (1→8)"] == pytest.approx(0.5)
    assert values["weight_sparsity/Linear 2 (8→4)"] == pytest.approx(3 / 32)
    all_weights = torch.cat([w.flatten() for w in weights])
    assert values["weight_sparsity/total"] == pytest.approx(float((all_weights.abs() < 1e-3).float().mean()))
    assert values["weight_sparsity/total"] == pytest.approx((4 + 3) / (8 + 32 + 4))  # not the mean of the shares
    assert sparsity(weights[0], 1e-3) == pytest.approx(0.5)
    assert WeightHistograms(threshold=1e-9).values(model)["weight_sparsity/Linear 1 (1→8)"] == pytest.approx(0.5)


def fit(tmp_path, make_trainer, callbacks, epochs=3, logger=None):
    torch.manual_seed(0)
    model = DenseRegressor(hidden_sizes=[8, 4], lr=0.05, dropout=0.2)  # dropout: the global RNG matters
    with torch.no_grad():
        model.net[0].weight[:4] = 0.0
    trainer = make_trainer(max_epochs=epochs, logger=logger if logger is not None else False, callbacks=callbacks,
                           limit_val_batches=0)
    trainer.fit(model, datamodule=ToyRegressionDataModule("linear", batch_size=5))  # 2 batches per epoch
    return model, trainer


def read_events(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"histograms": 0, "scalars": 0})
    events.Reload()
    return events


def test_one_histogram_per_layer_at_the_start_and_after_every_epoch(tmp_path, make_trainer):
    histograms = WeightHistograms()
    logger = TensorBoardLogger(str(tmp_path), name="run")
    model, trainer = fit(tmp_path, make_trainer, [histograms], logger=logger)
    events = read_events(trainer.log_dir)
    assert sorted(events.Tags()["histograms"]) == sorted(f"weights/{name}" for name in LAYERS)
    for name, layer in zip(LAYERS, model.linear_layers, strict=True):
        records = events.Histograms(f"weights/{name}")
        assert [r.step for r in records] == [0, 2, 4, 6]
        weight = layer.weight.detach()
        last = records[-1].histogram_value
        assert last.num == weight.numel()
        assert last.min == pytest.approx(float(weight.min()), abs=1e-6)
        assert last.max == pytest.approx(float(weight.max()), abs=1e-6)
        assert last.sum == pytest.approx(float(weight.sum()), abs=1e-4)
    first = events.Histograms("weights/Linear 1 (1→8)")[0].histogram_value
    assert first.num == 8 and first.min <= 0.0 <= first.max
    scalars = {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}
    assert {f"weight_sparsity/{name}" for name in LAYERS} | {"weight_sparsity/total"} <= set(scalars)
    assert [s.step for s in scalars["weight_sparsity/total"]] == [0, 2, 4, 6]
    assert scalars["weight_sparsity/Linear 1 (1→8)"][0].value == pytest.approx(0.5)  # the zeroed half, at the start
    final = WeightHistograms().values(model)
    assert scalars["weight_sparsity/total"][-1].value == pytest.approx(final["weight_sparsity/total"])
    assert [h["epoch"] for h in histograms.history] == [-1, 0, 1, 2]
    assert histograms.history[-1]["weight_sparsity/Linear 3 (4→1)"] == final["weight_sparsity/Linear 3 (4→1)"]


def test_every_n_epochs_thins_the_records(tmp_path, make_trainer):
    histograms = WeightHistograms(every_n_epochs=2)
    _, trainer = fit(tmp_path, make_trainer, [histograms], epochs=5, logger=TensorBoardLogger(str(tmp_path)))
    assert [r.step for r in read_events(trainer.log_dir).Histograms("weights/Linear 2 (8→4)")] == [0, 4, 8]
    assert [h["epoch"] for h in histograms.history] == [-1, 1, 3]


def test_other_loggers_get_the_scalars_only(tmp_path, make_trainer):
    logger = CSVLogger(str(tmp_path), name="csv")
    fit(tmp_path, make_trainer, [WeightHistograms()], epochs=2, logger=logger)
    with open(tmp_path / "csv" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert "weight_sparsity/Linear 1 (1→8)" in rows[0]
    records = [(int(r["step"]), float(r["weight_sparsity/total"])) for r in rows if r["weight_sparsity/total"]]
    assert [step for step, _ in records] == [0, 2, 4]  # start, after epoch 0, after epoch 1
    assert records[0][1] == pytest.approx(4 / 44)


def test_training_is_the_same_with_and_without_the_callback(tmp_path, make_trainer):
    plain, _ = fit(tmp_path, make_trainer, [])
    watched, _ = fit(tmp_path, make_trainer, [WeightHistograms()], logger=TensorBoardLogger(str(tmp_path)))
    for a, b in zip(plain.state_dict().values(), watched.state_dict().values(), strict=True):
        assert torch.equal(a, b)


class NoLinear(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.scale * x, y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_a_module_without_linear_layers_gets_one_warning_and_nothing_logged(tmp_path, make_trainer):
    histograms = WeightHistograms()
    trainer = make_trainer(max_epochs=2, logger=TensorBoardLogger(str(tmp_path)), callbacks=[histograms],
                           limit_val_batches=0)
    with pytest.warns(UserWarning, match="no nn.Linear layer") as caught:
        trainer.fit(NoLinear(), datamodule=ToyRegressionDataModule("linear", batch_size=5))
    assert len([w for w in caught if "nn.Linear" in str(w.message)]) == 1
    assert histograms.history == []
    assert read_events(trainer.log_dir).Tags()["histograms"] == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"every_n_epochs": 0}, "`every_n_epochs` must be a positive integer, got 0"),
    ({"every_n_epochs": 1.5}, "`every_n_epochs` must be a positive integer, got 1.5"),
    ({"threshold": 0.0}, "`threshold` must be a number > 0, got 0.0"),
    ({"threshold": -1e-3}, "`threshold` must be a number > 0, got -0.001"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        WeightHistograms(**kwargs)
