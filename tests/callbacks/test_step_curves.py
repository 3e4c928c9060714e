import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from matplotlib.font_manager import FontProperties
from PIL import Image
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from datamodules import FashionMNISTDataModule, ToyRegressionDataModule
from lit_reg.callbacks.step_curves import StepCurves, batch_hits, moving_average
from lit_reg.models import BitmojiClassifier, DenseClassifier, DenseRegressor

BATCH = 8  # 180 training images after the 10 % validation split: 23 batches per epoch, the last one of 4


class KeepsLast:
    """The change StepCurves asks of the base model: keep the last training (preds, target) while asked to."""

    keep_last_train_batch = False
    last_train_batch = None

    def metric_inputs(self, outputs, target):
        preds, labels = super().metric_inputs(outputs, target)
        if self.training and self.keep_last_train_batch:
            self.last_train_batch = (preds, labels)
        return preds, labels


class KeepsLastBatch(KeepsLast, DenseClassifier):
    pass


class KeepsLastRegression(KeepsLast, DenseRegressor):
    pass


class KeepsLastBinary(KeepsLast, BitmojiClassifier):
    pass


class ByHand(Callback):
    """Loss and accuracy of every training batch, computed again before the step with the same weights."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.accuracies: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        x, y = batch
        with torch.no_grad():
            logits = pl_module(x)
        self.losses.append(float(F.cross_entropy(logits, y)))
        self.accuracies.append(float((logits.argmax(1) == y).float().mean()))


def fit_classifier(tmp_path, fashion_root, make_trainer, callbacks, epochs=2, logger=None, dropout=0.0, **kwargs):
    torch.manual_seed(0)
    model = KeepsLastBatch(hidden_sizes=[16], lr=0.01, dropout=dropout)
    trainer = make_trainer(max_epochs=epochs, logger=logger if logger is not None else False, callbacks=callbacks,
                           **kwargs)
    trainer.fit(model, datamodule=FashionMNISTDataModule(str(fashion_root), batch_size=BATCH, download=False))
    return model, trainer


def scalars(log_dir) -> dict[str, list]:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}, events.Tags()["images"]


def test_batch_hits_counts_multiclass_binary_and_label_predictions():
    assert int(batch_hits(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))) == 1
    assert int(batch_hits(torch.tensor([0.7, 0.3, 0.5]), torch.tensor([1, 1, 1]))) == 2  # p >= 0.5 is class 1
    assert int(batch_hits(torch.tensor([2, 0, 1]), torch.tensor([2, 1, 1]))) == 2


def test_moving_average_is_the_mean_of_the_last_window_values():
    values = [4.0, 2.0, 6.0, 0.0, 8.0]
    expected = [np.mean(values[max(0, i - 2):i + 1]) for i in range(len(values))]
    assert moving_average(values, 3).tolist() == pytest.approx(expected)
    assert moving_average(values, 1).tolist() == values


def test_logs_every_n_steps_the_batch_values_and_their_moving_averages(tmp_path, fashion_root, make_trainer):
    hand, curves = ByHand(), StepCurves(every_n_steps=5, window=7)
    logger = TensorBoardLogger(str(tmp_path), name="run")
    _, trainer = fit_classifier(tmp_path, fashion_root, make_trainer, [hand, curves], logger=logger)
    assert len(hand.losses) == 46
    logged, _ = scalars(trainer.log_dir)
    steps = list(range(5, 46, 5))  # never step 0, before any batch
    for tag in ("train_loss_step", "train_loss_step_avg", "train_acc_step", "train_acc_step_avg"):
        assert [s.step for s in logged[tag]] == steps, tag
    for point, entry in zip(logged["train_loss_step"], curves.history, strict=True):
        step = point.step
        assert entry["step"] == step
        assert point.value == pytest.approx(hand.losses[step - 1], rel=1e-5)  # the batch that made the step
        assert entry["train_acc_step"] == pytest.approx(hand.accuracies[step - 1])
        # every batch in the window, not only the logged ones
        assert entry["train_loss_step_avg"] == pytest.approx(np.mean(hand.losses[max(0, step - 7):step]), rel=1e-5)
        assert entry["train_acc_step_avg"] == pytest.approx(np.mean(hand.accuracies[max(0, step - 7):step]))
    assert [p.value for p in logged["train_acc_step"]] == pytest.approx([h["train_acc_step"] for h in curves.history])
    assert curves.history[4]["train_acc_step"] == pytest.approx(hand.accuracies[24])
    assert len(curves.batch_losses) == 7  # without live_plot only the window is kept
    assert curves.plot_path is None and curves.last_figure is None


def test_accumulated_batches_log_the_batch_that_made_the_step_with_its_whole_loss(tmp_path, fashion_root,
                                                                                  make_trainer):
    hand, curves = ByHand(), StepCurves(every_n_steps=3, window=4)
    fit_classifier(tmp_path, fashion_root, make_trainer, [hand, curves], epochs=1, accumulate_grad_batches=2)
    assert [h["step"] for h in curves.history] == [3, 6, 9, 12]  # 23 batches: 12 optimizer steps
    for entry in curves.history:
        batch = min(2 * entry["step"] - 1, 22)  # the second batch of the step's pair, 0-based; the last one alone
        assert entry["train_loss_step"] == pytest.approx(hand.losses[batch], rel=1e-5)
        assert entry["train_loss_step_avg"] == pytest.approx(np.mean(hand.losses[batch - 3:batch + 1]), rel=1e-5)


def test_live_plot_writes_the_png_at_every_logged_step_and_keeps_the_figure(tmp_path, fashion_root, make_trainer,
                                                                          monkeypatch):
    drawn, titles = [], []
    figure = StepCurves._figure

    def recording(self, trainer):
        drawn.append(trainer.global_step)
        titles.append(figure(self, trainer).axes[0].get_title())
        return self.last_figure

    monkeypatch.setattr(StepCurves, "_figure", recording)
    curves = StepCurves(every_n_steps=10, window=5, live_plot=True)
    logger = TensorBoardLogger(str(tmp_path), name="run")
    _, trainer = fit_classifier(tmp_path, fashion_root, make_trainer, [curves], logger=logger)
    assert drawn == [10, 20, 30, 40, 46]  # at every logged step, then once at the end of fit
    assert curves.plot_path == tmp_path / "run" / "version_0" / "live_training.png"
    with Image.open(curves.plot_path) as image:
        assert image.format == "PNG" and image.size == (640, 480)
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert pixels.std() > 0 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10
    assert len(curves.batch_losses) == len(curves.batch_accuracies) == 46  # every batch of the fit
    axes = curves.last_figure.axes
    assert [a.get_ylabel() for a in axes] == ["accuracy (fraction correct)", "training loss"]
    # epochs counted from 1, as the other figures do: 23 batches an epoch, the last figure after the fit
    assert titles == ["Training batches: run/version_0, during epoch 1"] * 2 + [
        "Training batches: run/version_0, during epoch 2"] * 2 + ["Training batches: run/version_0, after 2 epochs"]
    assert len(axes[0].lines[0].get_xdata()) == 46
    assert axes[0].lines[1].get_ydata()[-1] == pytest.approx(np.mean(curves.batch_accuracies[-5:]))
    _, images = scalars(trainer.log_dir)
    assert images == ["live_training"]


def test_a_long_fit_draws_at_most_max_points_per_line_over_the_whole_fit(tmp_path, fashion_root, make_trainer):
    curves = StepCurves(every_n_steps=100, window=5, live_plot=True, max_points=10)
    fit_classifier(tmp_path, fashion_root, make_trainer, [curves])
    assert len(curves.batch_losses) == 46
    for axes, values in zip(curves.last_figure.axes, (curves.batch_accuracies, curves.batch_losses), strict=True):
        raw, average = axes.lines
        x = raw.get_xdata()
        assert len(x) == len(average.get_xdata()) == 10 and (x[0], x[-1]) == (1, 46)  # first to last batch
        assert list(raw.get_ydata()) == pytest.approx([values[i - 1] for i in x])
        # the average is still over every batch, not over the points shown
        assert average.get_ydata()[-1] == pytest.approx(np.mean(values[-5:]))


def test_training_is_the_same_with_and_without_the_callback(tmp_path, fashion_root, make_trainer):
    plain, _ = fit_classifier(tmp_path, fashion_root, make_trainer, [], epochs=1, dropout=0.3)
    watched, _ = fit_classifier(tmp_path, fashion_root, make_trainer, [StepCurves(every_n_steps=4, live_plot=True)],
                                epochs=1, dropout=0.3)
    for a, b in zip(plain.state_dict().values(), watched.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert watched.keep_last_train_batch is False and "keep_last_train_batch" not in vars(watched)
    assert watched.last_train_batch is None


def test_regression_logs_the_loss_only_without_a_warning(tmp_path, make_trainer, recwarn):
    torch.manual_seed(0)
    curves = StepCurves(every_n_steps=2, window=3)
    trainer = make_trainer(max_epochs=2, logger=TensorBoardLogger(str(tmp_path)), callbacks=[curves],
                           limit_val_batches=0)
    trainer.fit(KeepsLastRegression(hidden_sizes=[4]), datamodule=ToyRegressionDataModule("linear", batch_size=5))
    assert [h["step"] for h in curves.history] == [2, 4]
    assert set(curves.history[0]) == {"step", "train_loss_step", "train_loss_step_avg"}
    logged, _ = scalars(trainer.log_dir)
    assert "train_loss_step" in logged and "train_acc_step" not in logged
    assert not [w for w in recwarn if "StepCurves" in str(w.message)]


def test_binary_accuracy_thresholds_the_probability_at_one_half(make_trainer):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    hand, curves = [], StepCurves(every_n_steps=4, window=4)

    class ByHandBinary(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            with torch.no_grad():
                hand.append(float(((pl_module(batch[0]).sigmoid() >= 0.5).long() == batch[1]).float().mean()))

    make_trainer(max_epochs=2, callbacks=[ByHandBinary(), curves]).fit(
        KeepsLastBinary(input_size=4, hidden_sizes=[8], lr=0.05, dropout=0.0),
        DataLoader(TensorDataset(x, y), batch_size=8))
    assert [h["step"] for h in curves.history] == [4, 8, 12, 16]
    assert [h["train_acc_step"] for h in curves.history] == pytest.approx([hand[h["step"] - 1] for h in curves.history])
    assert curves.history[-1]["train_acc_step_avg"] == pytest.approx(np.mean(hand[-4:]))


class PlainClassifier(pl.LightningModule):
    """A classifier outside the collection: no last_train_batch."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(784, 10)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return {"loss": F.cross_entropy(self.net(x.flatten(1)), y)}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_a_module_without_last_train_batch_gets_the_loss_and_one_warning(tmp_path, fashion_root, make_trainer):
    curves = StepCurves(every_n_steps=10)
    trainer = make_trainer(max_epochs=2, callbacks=[curves], limit_val_batches=0)
    with pytest.warns(UserWarning, match="StepCurves logs train_loss_step only: PlainClassifier") as caught:
        trainer.fit(PlainClassifier(), datamodule=FashionMNISTDataModule(str(fashion_root), batch_size=BATCH,
                                                                        download=False))
    assert len([w for w in caught if "StepCurves" in str(w.message)]) == 1
    assert [h["step"] for h in curves.history] == [10, 20, 30, 40]
    assert all("train_acc_step" not in h for h in curves.history)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"every_n_steps": 0}, "`every_n_steps` must be a positive integer, got 0"),
    ({"every_n_steps": True}, "`every_n_steps` must be a positive integer, got True"),
    ({"window": -1}, "`window` must be a positive integer, got -1"),
    ({"filename": "live.jpg"}, "`filename` must end in '.png', got 'live.jpg'"),
    ({"max_points": 1}, "`max_points` must be an integer >= 2, got 1"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StepCurves(**kwargs)


def test_the_live_figure_draws_both_lines_against_the_batch_number_with_small_legends(make_trainer):
    torch.manual_seed(0)
    curves = StepCurves(every_n_steps=100, window=3, live_plot=True)
    make_trainer(max_epochs=1, callbacks=[curves], limit_val_batches=0).fit(
        KeepsLastRegression(hidden_sizes=[4]), datamodule=ToyRegressionDataModule("linear", batch_size=5))
    (axes,) = curves.last_figure.axes  # a regressor: the loss only
    raw, average = axes.lines
    batches = np.arange(1, len(curves.batch_losses) + 1)
    np.testing.assert_array_equal(raw.get_xdata(), batches)
    np.testing.assert_array_equal(average.get_xdata(), batches)  # each average at the batch it ends with
    assert axes.get_xlabel() == "training batch (count since the start of fit)"
    small = FontProperties(size="small").get_size_in_points()
    assert [(t.get_text(), t.get_fontsize()) for t in axes.get_legend().get_texts()] == [
        ("batch loss", small), ("moving average (3 batches)", small)]


class FailsAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError(f"failed at step {self.step}")


@pytest.mark.parametrize("flag_before", [None, False])
def test_a_failing_fit_gives_the_model_its_own_flag_back_and_its_own_error(make_trainer, flag_before):
    model = KeepsLastRegression(hidden_sizes=[4])
    if flag_before is not None:
        model.keep_last_train_batch = flag_before
    trainer = make_trainer(max_epochs=2, callbacks=[StepCurves(every_n_steps=2), FailsAtStep(3)],
                           limit_val_batches=0)
    with pytest.raises(RuntimeError, match="failed at step 3"):
        trainer.fit(model, datamodule=ToyRegressionDataModule("linear", batch_size=5))
    if flag_before is None:
        assert "keep_last_train_batch" not in vars(model) and model.keep_last_train_batch is False
    else:
        assert vars(model)["keep_last_train_batch"] is flag_before
    assert model.last_train_batch is None


def test_a_new_callback_has_no_history_and_the_live_figure_takes_its_figsize(tmp_path, make_trainer):
    curves = StepCurves(every_n_steps=100, live_plot=True, figsize=(3.0, 2.0))
    assert (curves.history, list(curves.batch_losses), curves.last_figure, curves.plot_path) == ([], [], None, None)
    make_trainer(max_epochs=1, callbacks=[curves], limit_val_batches=0).fit(
        KeepsLastRegression(hidden_sizes=[4]), datamodule=ToyRegressionDataModule("linear", batch_size=5))
    assert list(curves.last_figure.get_size_inches()) == [3.0, 2.0]
    with Image.open(curves.plot_path) as image:
        assert image.size == (300, 200)


class FailsAtFitStart(Callback):
    def on_fit_start(self, trainer, pl_module):
        raise RuntimeError("failed before training")


def test_a_fit_failing_before_training_leaves_the_models_flag_alone(make_trainer):
    model = KeepsLastRegression(hidden_sizes=[4])
    model.keep_last_train_batch = True  # the user's own setting, not StepCurves'
    trainer = make_trainer(max_epochs=1, callbacks=[StepCurves(), FailsAtFitStart()], limit_val_batches=0)
    with pytest.raises(RuntimeError, match="failed before training"):
        trainer.fit(model, datamodule=ToyRegressionDataModule("linear", batch_size=5))
    assert vars(model)["keep_last_train_batch"] is True
