import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from datamodules import FashionMNISTDataModule, ToyRegressionDataModule
from lit_reg.callbacks import ModelCheckpoint
from lit_reg.callbacks.weight_averaging import (
    WEIGHT_AVERAGING,
    EMAWeightAveraging,
    SWAWeightAveraging,
    update_batch_norm,
    weight_averaging,
)
from lit_reg.models import DenseClassifier, DenseRegressor


def parameters_of(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def state_of(module):
    return {name: t.detach().clone() for name, t in module.state_dict().items()}


def assert_same(actual, expected, atol=1e-6):
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=atol, rtol=0, msg=name)


class Recorder(Callback):
    """The model's weights after every optimizer step and epoch, during every validation, and when training ends."""

    def __init__(self):
        self.steps, self.epochs, self.validations, self.final = [], [], [], None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append((trainer.current_epoch, trainer.global_step - 1, parameters_of(pl_module)))

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append(parameters_of(pl_module))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and not trainer.sanity_checking:
            self.validations.append(state_of(pl_module))

    def on_train_end(self, trainer, pl_module):  # listed before the averaging callback: the current weights
        self.final = parameters_of(pl_module)


def fashion(fashion_root, **kwargs):
    dm = FashionMNISTDataModule(data_dir=str(fashion_root), batch_size=32, val_fraction=0.2, **kwargs)
    dm.setup()
    return dm


def bn_classifier(dropout=0.0):
    torch.manual_seed(0)
    return DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[16], batchnorm=True, dropout=dropout,
                           lr=0.05)


def fit_toy(make_trainer, averaging, epochs=3, extra=(), **trainer_kwargs):
    torch.manual_seed(0)
    model = DenseRegressor(hidden_sizes=[8], lr=0.02)
    recorder = Recorder()
    trainer = make_trainer(max_epochs=epochs, callbacks=[recorder, averaging, *extra], **trainer_kwargs)
    trainer.fit(model, datamodule=ToyRegressionDataModule("quadratic", batch_size=8))
    return model, recorder, trainer


def by_hand_statistics(linear, batches):
    """Cumulative batch-norm statistics of the layer after ``linear``: the mean of the batch means and unbiased
    variances of its outputs."""
    outputs = [batch.flatten(1) @ linear.weight.detach().T + linear.bias.detach() for batch in batches]
    means = torch.stack([h.mean(0) for h in outputs]).mean(0)
    variances = torch.stack([h.var(0, unbiased=True) for h in outputs]).mean(0)
    return means, variances


def val_loss_by_hand(model, dm):
    model.eval()
    with torch.no_grad():
        data = dm.datasets["val"]
        return float(F.cross_entropy(model(dm.transform_inputs(data.inputs)), data.targets))


# -- by name, and bad values ------------------------------------------------------------------------------------
def test_names_give_the_callbacks_with_their_arguments():
    assert WEIGHT_AVERAGING == {"ema": EMAWeightAveraging, "swa": SWAWeightAveraging}
    ema = weight_averaging("EMA", decay=0.9, update_every_n_steps=3)
    assert type(ema) is EMAWeightAveraging and (ema.decay, ema.update_every_n_steps) == (0.9, 3)
    swa = weight_averaging("swa", swa_epoch_start=4)
    assert type(swa) is SWAWeightAveraging and swa.start_epoch == 4
    assert SWAWeightAveraging().swa_epoch_start == 0.8 and EMAWeightAveraging().decay == 0.999


def test_unknown_name_is_one_clear_error():
    with pytest.raises(ValueError) as error:
        weight_averaging("foo")
    assert str(error.value) == "`weight_averaging` must be one of ['ema', 'swa'], got 'foo'"


@pytest.mark.parametrize(("name", "kwargs", "argument"), [
    ("ema", {"decay": 0.0}, "decay"), ("ema", {"decay": 1.0}, "decay"), ("ema", {"decay": -0.5}, "decay"),
    ("ema", {"decay": 1.5}, "decay"), ("ema", {"decay": True}, "decay"), ("ema", {"decay": "0.9"}, "decay"),
    ("ema", {"update_every_n_steps": 0}, "update_every_n_steps"),
    ("ema", {"update_starting_at_epoch": -1}, "update_starting_at_epoch"),
    ("swa", {"swa_epoch_start": -1}, "swa_epoch_start"), ("swa", {"swa_epoch_start": 1.0}, "swa_epoch_start"),
    ("swa", {"swa_epoch_start": 0.0}, "swa_epoch_start"), ("swa", {"swa_epoch_start": 1.5}, "swa_epoch_start"),
    ("swa", {"swa_epoch_start": True}, "swa_epoch_start"),
    ("swa", {"recompute_batch_norm": "yes"}, "recompute_batch_norm"),
])
def test_bad_values_raise_naming_the_argument(name, kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        weight_averaging(name, **kwargs)


# -- the averages -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "clip"), [({}, None), ({}, 0.05), ({"update_every_n_steps": 2}, None),
                                              ({"update_starting_at_epoch": 1}, None)])
def test_ema_is_the_recursion_over_the_recorded_steps(make_trainer, kwargs, clip):
    decay = 0.7
    model, recorder, trainer = fit_toy(make_trainer, EMAWeightAveraging(decay=decay, **kwargs),
                                       gradient_clip_val=clip)
    every, start = kwargs.get("update_every_n_steps", 1), kwargs.get("update_starting_at_epoch", 0)
    averaged = [w for epoch, step, w in recorder.steps if epoch >= start and step % every == 0]
    assert len(recorder.steps) == 15 and len(averaged) == {1: 15, 2: 8}[every] - 5 * start
    expected = dict(averaged[0])
    for weights in averaged[1:]:
        expected = {name: decay * expected[name] + (1 - decay) * weights[name] for name in expected}
    assert_same(parameters_of(model), expected)
    assert_same(recorder.final, recorder.steps[-1][2])  # the last step's weights, not the average, until the end
    assert not torch.allclose(recorder.final["net.0.weight"], expected["net.0.weight"])


def test_gradient_clipping_acts_under_ema(make_trainer):
    clipped, _, _ = fit_toy(make_trainer, EMAWeightAveraging(decay=0.7), gradient_clip_val=0.05)
    free, _, _ = fit_toy(make_trainer, EMAWeightAveraging(decay=0.7))
    assert not torch.allclose(clipped.net[0].weight, free.net[0].weight)


@pytest.mark.parametrize("start", [2, 0.5])
def test_swa_is_the_mean_of_the_epoch_end_weights_from_the_start_epoch(make_trainer, start):
    model, recorder, _ = fit_toy(make_trainer, SWAWeightAveraging(swa_epoch_start=start), epochs=4)
    mean = {name: (recorder.epochs[2][name] + recorder.epochs[3][name]) / 2 for name in recorder.epochs[2]}
    assert_same(parameters_of(model), mean)
    validated = [{n: v for n, v in state.items() if n in mean} for state in recorder.validations]
    # before the start the current weights are validated; from it the average including the epoch just trained
    assert_same(validated[0], recorder.epochs[0], atol=0)
    assert_same(validated[1], recorder.epochs[1], atol=0)
    assert_same(validated[2], recorder.epochs[2])
    assert_same(validated[3], mean)


def test_averaging_that_never_starts_warns_and_keeps_the_last_weights(make_trainer):
    with pytest.warns(UserWarning, match="no weights were averaged"):
        model, recorder, _ = fit_toy(make_trainer, SWAWeightAveraging(swa_epoch_start=5), epochs=2)
    assert_same(parameters_of(model), recorder.epochs[-1], atol=0)


# -- batch norm, validation, checkpoints ------------------------------------------------------------------------
def test_validation_uses_the_averaged_weights_with_recomputed_batch_norm(make_trainer, fashion_root):
    dm = fashion(fashion_root)
    model, recorder = bn_classifier(), Recorder()
    trainer = make_trainer(max_epochs=2, callbacks=[recorder, EMAWeightAveraging(decay=0.8)])
    trainer.fit(model, datamodule=dm)
    batches = [dm.transform_inputs(x) for x, _ in dm.train_dataloader()]
    assert len(batches) == 5
    # at every validation: the batch norm statistics are a fresh cumulative pass with the validated weights
    for state in recorder.validations:
        linear = torch.nn.Linear(784, 16)
        linear.load_state_dict({"weight": state["net.0.weight"], "bias": state["net.0.bias"]})
        mean, var = by_hand_statistics(linear, batches)
        torch.testing.assert_close(state["net.1.running_mean"], mean, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state["net.1.running_var"], var, atol=1e-5, rtol=1e-5)
        assert int(state["net.1.num_batches_tracked"]) == 5
    # after fit the model holds the last validated weights and statistics, and val_loss is theirs
    assert_same(state_of(model), recorder.validations[-1], atol=0)
    assert float(trainer.callback_metrics["val_loss"]) == pytest.approx(val_loss_by_hand(model, dm), rel=1e-5)
    current = bn_classifier()
    current.load_state_dict({**state_of(model), **recorder.final})  # the current weights, the averaged statistics
    assert abs(val_loss_by_hand(current, dm) - val_loss_by_hand(model, dm)) > 1e-3


def test_best_checkpoint_holds_the_averaged_weights_and_is_what_gets_tested(make_trainer, fashion_root, tmp_path):
    dm = fashion(fashion_root)
    model, recorder = bn_classifier(), Recorder()
    best = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val_loss", save_top_k=1,
                           restore_best_weights=True)
    trainer = make_trainer(max_epochs=3, enable_checkpointing=True,
                           callbacks=[recorder, EMAWeightAveraging(decay=0.5), best])
    trainer.fit(model, datamodule=dm)
    checkpoint = torch.load(best.best_model_path, weights_only=False)
    validated = recorder.validations[checkpoint["epoch"]]
    assert_same(checkpoint["state_dict"], validated, atol=0)
    assert not torch.equal(checkpoint["current_model_state"]["net.0.weight"], validated["net.0.weight"])
    assert_same(state_of(model), validated, atol=0)  # restore_best_weights: the best average
    # evaluating after fit: the weights given, not the last average swapped in, nor the checkpoint's current ones
    loss = trainer.validate(model, datamodule=dm, verbose=False)[0]["val_loss"]
    assert loss == pytest.approx(val_loss_by_hand(model, dm), rel=1e-5)
    tested = trainer.test(datamodule=dm, ckpt_path="best", verbose=False)[0]["test_loss"]
    data = dm.datasets["test"]
    with torch.no_grad():
        by_hand = float(F.cross_entropy(model.eval()(dm.transform_inputs(data.inputs)), data.targets))
    assert tested == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("name", ["ema", "swa"])
def test_resuming_from_last_ckpt_continues_the_average(make_trainer, tmp_path, name):
    kwargs = {"ema": {"decay": 0.8}, "swa": {"swa_epoch_start": 1}}[name]

    def fit(epochs, directory, ckpt_path=None):
        torch.manual_seed(0)
        model = DenseRegressor(hidden_sizes=[8], batchnorm=True, lr=0.02)
        last = ModelCheckpoint(dirpath=str(directory), filename="last", monitor=None, enable_version_counter=False)
        trainer = make_trainer(max_epochs=epochs, enable_checkpointing=True,
                               callbacks=[weight_averaging(name, **kwargs), last])
        trainer.fit(model, datamodule=ToyRegressionDataModule("quadratic", batch_size=8), ckpt_path=ckpt_path)
        return model

    straight = fit(4, tmp_path / "straight")
    fit(2, tmp_path / "resumed")
    resumed = fit(4, tmp_path / "resumed", ckpt_path=str(tmp_path / "resumed" / "last.ckpt"))
    assert_same(state_of(resumed), state_of(straight))


def test_training_is_the_same_with_and_without_averaging(make_trainer, fashion_root):
    def fit(*callbacks):
        torch.manual_seed(1)
        model, recorder = bn_classifier(dropout=0.3), Recorder()
        dm = fashion(fashion_root, augment=True)  # augmentation and dropout draw from the global generator
        make_trainer(max_epochs=2, callbacks=[recorder, *callbacks]).fit(model, datamodule=dm)
        return recorder.final

    plain = fit()
    assert_same(fit(EMAWeightAveraging(decay=0.8)), plain, atol=0)
    assert_same(fit(SWAWeightAveraging(swa_epoch_start=0)), plain, atol=0)


def test_batch_norm_from_the_fits_dataloader_without_a_datamodule(make_trainer):
    torch.manual_seed(0)
    x, y = torch.randn(24, 3) * 2 + 1, torch.randn(24, 1)
    model = DenseRegressor(input_size=3, hidden_sizes=[4], batchnorm=True, lr=0.05)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    trainer = make_trainer(max_epochs=2, callbacks=[EMAWeightAveraging(decay=0.8)])
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=DataLoader(TensorDataset(x, y), batch_size=8))
    mean, var = by_hand_statistics(model.net[0], [x[i:i + 8] for i in range(0, 24, 8)])
    torch.testing.assert_close(model.net[1].running_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.net[1].running_var, var, atol=1e-5, rtol=1e-5)


class DictBatchModel(pl.LightningModule):
    """Dict batches, which a batch-norm pass cannot feed to ``forward(x)``."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return F.mse_loss(self(batch["x"]), batch["y"])

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", F.mse_loss(self(batch["x"]), batch["y"]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def test_a_model_the_pass_cannot_feed_gets_one_warning_and_the_averaged_statistics(make_trainer):
    torch.manual_seed(0)
    data = DataLoader([{"x": torch.randn(8, 3), "y": torch.randn(8, 1)} for _ in range(3)], batch_size=None)
    averaging = SWAWeightAveraging(swa_epoch_start=0)
    trainer = make_trainer(max_epochs=3, callbacks=[averaging])
    with pytest.warns(UserWarning, match=r"^SWAWeightAveraging: could not recompute the batch-norm statistics of "
                                         r"the averaged weights \(TypeError: ") as record:
        trainer.fit(DictBatchModel(), train_dataloaders=data, val_dataloaders=data)
    assert sum("could not recompute" in str(w.message) for w in record) == 1
    assert trainer.callback_metrics["val_loss"].isfinite()


def test_batch_norm_pass_at_the_end_of_a_fit_without_validation_sees_unaugmented_inputs(make_trainer, fashion_root):
    dm = fashion(fashion_root, augment=True)
    model = bn_classifier()
    make_trainer(max_epochs=1, limit_val_batches=0, callbacks=[EMAWeightAveraging(decay=0.8)]).fit(model, datamodule=dm)
    mean, var = by_hand_statistics(model.net[0], [dm.transform_inputs(x) for x, _ in dm.train_dataloader()])
    torch.testing.assert_close(model.net[1].running_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.net[1].running_var, var, atol=1e-5, rtol=1e-5)


def test_checkpoints_before_the_average_starts_hold_the_current_weights(make_trainer, tmp_path):
    every = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val_loss", save_top_k=-1,
                            filename="{epoch}")
    torch.manual_seed(0)
    model, recorder = DenseRegressor(hidden_sizes=[8], lr=0.02), Recorder()
    trainer = make_trainer(max_epochs=3, enable_checkpointing=True,
                           callbacks=[recorder, SWAWeightAveraging(swa_epoch_start=2), every])
    trainer.fit(model, datamodule=ToyRegressionDataModule("quadratic", batch_size=8))
    for epoch in range(3):
        checkpoint = torch.load(tmp_path / "ckpt" / f"epoch={epoch}.ckpt", weights_only=False)
        assert_same(checkpoint["state_dict"], recorder.epochs[epoch], atol=0)  # epoch 2: an average of one


class SaveDuringValidation(Callback):
    def __init__(self, path):
        self.path = path

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and trainer.current_epoch == 1:
            trainer.save_checkpoint(self.path)


def test_a_checkpoint_saved_during_validation_holds_the_average_and_the_current_weights(make_trainer, tmp_path):
    torch.manual_seed(0)
    model, recorder = DenseRegressor(hidden_sizes=[8], lr=0.02), Recorder()
    path = tmp_path / "during.ckpt"
    averaging = EMAWeightAveraging(decay=0.7)
    trainer = make_trainer(max_epochs=2, callbacks=[recorder, averaging, SaveDuringValidation(path)])
    trainer.fit(model, datamodule=ToyRegressionDataModule("quadratic", batch_size=8))
    checkpoint = torch.load(path, weights_only=False)
    assert_same(checkpoint["state_dict"], recorder.validations[1], atol=0)
    assert_same(checkpoint["current_model_state"], recorder.epochs[1], atol=0)


def test_weights_only_checkpoints_are_warned_about(make_trainer, tmp_path):
    weights_only = ModelCheckpoint(dirpath=str(tmp_path), monitor="val_loss", save_weights_only=True)
    with pytest.warns(UserWarning, match="^EMAWeightAveraging: a ModelCheckpoint with save_weights_only=True saves "
                                         "the current weights"):
        fit_toy(make_trainer, EMAWeightAveraging(decay=0.7), epochs=1, extra=[weights_only], enable_checkpointing=True)


@pytest.mark.parametrize("limit", [2, 0.4])
def test_batch_norm_pass_takes_the_batches_limit_train_batches_allows(make_trainer, limit):
    torch.manual_seed(0)
    model = DenseRegressor(hidden_sizes=[8], batchnorm=True, lr=0.02)
    dm = ToyRegressionDataModule("quadratic", batch_size=8)
    trainer = make_trainer(max_epochs=2, limit_train_batches=limit, callbacks=[EMAWeightAveraging(decay=0.8)])
    trainer.fit(model, datamodule=dm)
    assert int(model.net[1].num_batches_tracked) == 2
    mean, var = by_hand_statistics(model.net[0], [x for x, _ in dm.train_dataloader()][:2])
    torch.testing.assert_close(model.net[1].running_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.net[1].running_var, var, atol=1e-5, rtol=1e-5)


def test_resuming_swa_from_a_checkpoint_written_at_validation_continues_the_average(make_trainer, tmp_path):
    def fit(directory, ckpt_path=None):
        torch.manual_seed(0)
        model = DenseRegressor(hidden_sizes=[8], batchnorm=True, lr=0.02)
        every = ModelCheckpoint(dirpath=str(directory), monitor="val_loss", save_top_k=-1, filename="{epoch}",
                                save_on_train_epoch_end=False)  # written at the end of validation, inside the epoch
        trainer = make_trainer(max_epochs=4, enable_checkpointing=True,
                               callbacks=[SWAWeightAveraging(swa_epoch_start=1), every])
        trainer.fit(model, datamodule=ToyRegressionDataModule("quadratic", batch_size=8), ckpt_path=ckpt_path)
        return model

    straight = fit(tmp_path / "ckpt")
    # the resume state says which epochs the average holds already: none before the start epoch, then up to epoch 1
    states = [torch.load(tmp_path / "ckpt" / f"epoch={e}.ckpt", weights_only=False)["callbacks"] for e in (0, 1)]
    assert [next(v["latest_update_epoch"] for k, v in state.items() if "WeightAveraging" in k)
            for state in states] == [-1, 1]
    # resuming inside epoch 1, whose update is in the average already: not averaged twice
    resumed = fit(tmp_path / "resumed", ckpt_path=str(tmp_path / "ckpt" / "epoch=1.ckpt"))
    assert_same(state_of(resumed), state_of(straight))


class ScaledInputsRegressor(DenseRegressor):
    """Triples the inputs in ``on_before_batch_transfer``: the batch-norm pass must see them tripled too."""

    def on_before_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        return 3 * x, y


def test_batch_norm_pass_goes_through_the_models_hooks_and_keeps_the_shuffled_order(make_trainer):
    torch.manual_seed(0)
    x, y = torch.randn(24, 3), torch.randn(24, 1)

    def fit(*callbacks):
        torch.manual_seed(0)
        model, recorder = ScaledInputsRegressor(input_size=3, hidden_sizes=[4], batchnorm=True, lr=0.05), Recorder()
        shuffled = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                              generator=torch.Generator().manual_seed(0))  # the loader's own generator
        trainer = make_trainer(max_epochs=3, callbacks=[recorder, *callbacks])
        trainer.fit(model, train_dataloaders=shuffled, val_dataloaders=DataLoader(TensorDataset(x, y), batch_size=8))
        return model, recorder.final, shuffled

    plain = fit()[1]
    model, final, shuffled = fit(EMAWeightAveraging(decay=0.8))
    assert_same(final, plain, atol=0)  # the passes before each validation left the loader's order alone
    # the last pass drew the batches the loader gives next, each through on_before_batch_transfer
    mean, var = by_hand_statistics(model.net[0], [3 * inputs for inputs, _ in shuffled])
    torch.testing.assert_close(model.net[1].running_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.net[1].running_var, var, atol=1e-5, rtol=1e-5)


def test_batch_norm_pass_under_ddp_averages_the_statistics_over_the_ranks(make_trainer, monkeypatch):
    torch.manual_seed(0)
    module = DenseRegressor(input_size=3, hidden_sizes=[4], batchnorm=True)
    batches = [(torch.randn(8, 3), torch.randn(8, 1)) for _ in range(3)]
    trainer = make_trainer(limit_train_batches=2)
    other_rank = [torch.full((4,), 5.0), torch.full((4,), 3.0)]  # its running_mean and running_var
    monkeypatch.setattr(pl.Trainer, "world_size", property(lambda self: 2))

    def reduce(tensor, reduce_op=None):  # DDP's reduce: the sum over the ranks unless asked for the mean
        total = tensor + other_rank.pop(0)
        return total / 2 if reduce_op in ("mean", "avg") else total

    monkeypatch.setattr(trainer.strategy, "reduce", reduce)
    assert update_batch_norm(module, batches, trainer, module) == 2
    assert other_rank == []
    mean, var = by_hand_statistics(module.net[0], [x for x, _ in batches[:2]])
    torch.testing.assert_close(module.net[1].running_mean, (mean + 5) / 2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(module.net[1].running_var, (var + 3) / 2, atol=1e-5, rtol=1e-5)


class Batches:
    """An iterable of batches that is no ``DataLoader``."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def test_a_fit_loader_that_is_no_dataloader_warns_and_keeps_the_averaged_statistics(make_trainer):
    torch.manual_seed(0)
    batches = Batches([(torch.randn(8, 3), torch.randn(8, 1)) for _ in range(3)])
    model = DenseRegressor(input_size=3, hidden_sizes=[4], batchnorm=True, lr=0.05)
    trainer = make_trainer(max_epochs=2, callbacks=[EMAWeightAveraging(decay=0.8)])
    with pytest.warns(UserWarning, match=r"^EMAWeightAveraging: no training dataloader to recompute the batch-norm "
                                         r"statistics of the averaged weights from \(use a LightningDataModule\)"):
        trainer.fit(model, train_dataloaders=batches, val_dataloaders=batches)
    assert int(model.net[1].num_batches_tracked) != 3  # Lightning's averaged statistics, not a pass over 3 batches


class GrowingRegressor(DenseRegressor):
    """Registers a buffer once the fit started, after the averaging callback copied the model."""

    def on_fit_start(self):
        self.register_buffer("seen", torch.zeros(1))


def test_a_model_that_grows_a_tensor_during_fit_cannot_be_checkpointed_before_the_average(make_trainer, tmp_path):
    torch.manual_seed(0)
    every = ModelCheckpoint(dirpath=str(tmp_path), monitor=None, filename="last")
    trainer = make_trainer(max_epochs=1, enable_checkpointing=True,
                           callbacks=[SWAWeightAveraging(swa_epoch_start=5), every])
    with pytest.raises(ValueError):  # not a checkpoint whose weights lack the new tensor
        trainer.fit(GrowingRegressor(hidden_sizes=[8], lr=0.02), datamodule=ToyRegressionDataModule("quadratic"))
