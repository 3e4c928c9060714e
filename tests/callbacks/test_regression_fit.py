import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from datamodules import ToyRegressionDataModule
from datamodules.toy_classification import ToyClassificationDataModule
from lit_reg.callbacks.regression_fit import FitSnapshot, RegressionFit
from lit_reg.callbacks.weight_norm import frobenius_norm
from lit_reg.models import DenseClassifier, DenseRegressor


class Recorder(Callback):
    """After the callbacks listed before it, at each epoch end: the weight norm, the prediction on ``grid``, the
    modules' train flags; at the end, the final weights."""

    def __init__(self, grid=None):
        self.grid = grid
        self.norms, self.predictions, self.modes = {}, {}, []

    def on_train_epoch_end(self, trainer, pl_module):
        epochs = trainer.current_epoch + 1
        self.norms[epochs] = frobenius_norm(pl_module)
        self.modes.append(all(m.training for m in pl_module.modules()))
        if self.grid is not None:
            pl_module.eval()
            with torch.no_grad():
                self.predictions[epochs] = pl_module(self.grid.unsqueeze(1)).reshape(-1)
            pl_module.train()

    def on_train_end(self, trainer, pl_module):
        self.weights = [p.detach().clone() for p in pl_module.state_dict().values()]


def fit(make_trainer, callbacks, epochs=4, data=None, model=None, **trainer_kwargs):
    pl.seed_everything(0, verbose=False)
    model = model or DenseRegressor(hidden_sizes=[16], lr=0.05)
    trainer = make_trainer(max_epochs=epochs, callbacks=callbacks, limit_val_batches=0, **trainer_kwargs)
    trainer.fit(model, datamodule=data or ToyRegressionDataModule("linear", batch_size=10))
    return model, trainer


def assert_image(path, size, image_format="PNG"):
    with Image.open(path) as image:
        assert image.format == image_format and image.size == size
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


def test_files_snapshots_and_tensorboard_images(tmp_path, make_trainer):
    fit_plot = RegressionFit(every_n_epochs=2, gif=True, true_function=lambda x: 2 * x)
    logger = TensorBoardLogger(str(tmp_path), name="linear", default_hp_metric=False)
    _, trainer = fit(make_trainer, [fit_plot], epochs=6, logger=logger)
    run = tmp_path / "linear" / "version_0"
    assert [s.epoch for s in fit_plot.snapshots] == [2, 4, 6]  # epochs / every_n_epochs
    assert (fit_plot.plot_path, fit_plot.snapshots_path, fit_plot.gif_path) == (
        run / "regression_fit.png", run / "regression_fit_snapshots.png", run / "regression_fit.gif")
    assert_image(fit_plot.plot_path, (640, 480))
    assert_image(fit_plot.snapshots_path, (3 * 320, 360))  # three panels of 3.2 in, 3.2 + 0.4 in high
    with Image.open(fit_plot.gif_path) as gif:
        assert gif.format == "GIF" and gif.size == (640, 480) and gif.n_frames == 3
    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"regression_fit", "regression_fit_snapshots"} <= set(events.Tags()["images"])
    assert [(i.step, i.width) for i in events.Images("regression_fit_snapshots")] == [(6, 960)]


def test_titles_give_the_epochs_and_the_weight_norms_at_those_epochs(make_trainer):
    fit_plot = RegressionFit(every_n_epochs=2)
    recorder = Recorder()
    fit(make_trainer, [fit_plot, recorder], epochs=6)
    assert [s.weight_norm for s in fit_plot.snapshots] == [recorder.norms[e] for e in (2, 4, 6)]
    assert len(set(recorder.norms.values())) == 6  # the weights move: a stale norm would show
    titles = [axes.get_title() for axes in fit_plot.snapshots_figure.axes]
    assert titles == [f"epoch {e}, ‖W‖ = {recorder.norms[e]:.3g}" for e in (2, 4, 6)]
    assert fit_plot.last_figure.axes[0].get_title().replace("\n", " ").endswith(
        f": fit after 6 epochs (‖W‖ = {recorder.norms[6]:.3g})")


def test_the_plotted_prediction_is_the_models_output_on_the_grid(make_trainer):
    fit_plot = RegressionFit(every_n_epochs=1, num_points=50, padding=0.1)
    data = ToyRegressionDataModule("linear", batch_size=10)
    data.setup()
    inputs = torch.cat([data.datasets[s].inputs.reshape(-1) for s in ("train", "val")])
    low, high = float(inputs.min()), float(inputs.max())
    grid = torch.linspace(low - 0.1 * (high - low), high + 0.1 * (high - low), 50)
    recorder = Recorder(grid)
    model, _ = fit(make_trainer, [fit_plot, recorder], epochs=3, data=data)
    torch.testing.assert_close(fit_plot.grid, grid)
    for snapshot in fit_plot.snapshots:
        torch.testing.assert_close(snapshot.prediction, recorder.predictions[snapshot.epoch])
    assert not torch.allclose(fit_plot.snapshots[0].prediction, fit_plot.snapshots[-1].prediction)
    model.eval()
    with torch.no_grad():
        final = model(grid.unsqueeze(1)).reshape(-1)
    line = next(line for line in fit_plot.last_figure.axes[0].get_lines() if line.get_label() == "model")
    np.testing.assert_allclose(line.get_xdata(), grid.numpy())
    np.testing.assert_allclose(line.get_ydata(), final.numpy(), atol=1e-6)
    panels = fit_plot.snapshots_figure.axes
    panel_lines = [next(ln for ln in a.get_lines() if ln.get_label() == "model") for a in panels]
    for line, snapshot in zip(panel_lines, fit_plot.snapshots, strict=True):
        np.testing.assert_allclose(line.get_ydata(), snapshot.prediction.numpy())
    scatter = fit_plot.last_figure.axes[0].collections[0]
    np.testing.assert_allclose(scatter.get_offsets(), torch.cat(
        [data.datasets["train"].inputs, data.datasets["train"].targets], dim=1).numpy())


def test_grid_points_are_normalized_as_the_datamodule_does(make_trainer):
    class Shifted(ToyRegressionDataModule):
        def transform_inputs(self, x, augment=False):
            return x - 10.0

    fit_plot = RegressionFit(num_points=20)
    model, _ = fit(make_trainer, [fit_plot], epochs=1, data=Shifted("linear", batch_size=10))
    model.eval()
    with torch.no_grad():
        expected = model(fit_plot.grid.unsqueeze(1) - 10.0).reshape(-1)
    torch.testing.assert_close(fit_plot.snapshots[-1].prediction, expected)
    assert float(fit_plot.grid.min()) > -1  # the grid is in the data's units


def test_only_the_end_without_every_n_epochs_and_the_last_epoch_added(make_trainer):
    at_end, every_2 = RegressionFit(), RegressionFit(every_n_epochs=2)
    assert at_end.state_key != every_2.state_key
    fit(make_trainer, [at_end, every_2], epochs=5)
    assert [s.epoch for s in at_end.snapshots] == [5]
    assert [s.epoch for s in every_2.snapshots] == [2, 4, 5]
    assert len(at_end.snapshots_figure.axes) == 1 and at_end.gif_path is None


def test_the_strip_shows_at_most_max_panels(make_trainer):
    fit_plot = RegressionFit(every_n_epochs=1, max_panels=4)
    fit(make_trainer, [fit_plot], epochs=7)
    assert len(fit_plot.snapshots) == 7
    titles = [axes.get_title() for axes in fit_plot.snapshots_figure.axes]
    assert [t.split(",")[0] for t in titles] == ["epoch 1", "epoch 3", "epoch 5", "epoch 7"]


def panel_rows(figure):
    """The panels' titles, row by row from the top (by the panels' positions in the figure)."""
    rows = {}
    for axes in figure.axes:
        rows.setdefault(round(axes.get_position().y0, 3), []).append((axes.get_position().x0, axes.get_title()))
    return [[title.split(",")[0] for _, title in sorted(row)] for _, row in sorted(rows.items(), reverse=True)]


def title_fits(figure, text):
    """Whether the rendered ``text`` (the figure's suptitle or an axes title) lies inside the figure."""
    extent = text.get_window_extent()
    return extent.x0 >= 0 and extent.x1 <= figure.bbox.width and extent.y1 <= figure.bbox.height


def test_snapshots_wrap_into_at_most_three_columns_within_1000_pixels(tmp_path, make_trainer):
    by_default, six = RegressionFit(every_n_epochs=1), RegressionFit(every_n_epochs=1, max_panels=6, num_points=50)
    assert by_default.max_panels == 4
    fit(make_trainer, [by_default, six], epochs=7)
    assert panel_rows(by_default.snapshots_figure) == [["epoch 1", "epoch 3"], ["epoch 5", "epoch 7"]]
    assert panel_rows(six.snapshots_figure) == [["epoch 1", "epoch 2", "epoch 3"], ["epoch 5", "epoch 6", "epoch 7"]]
    # 2 × 2 and 2 × 3 panels of 3.2 in, 0.4 in for the title and 0.25 in for each more line of it (both write one
    # file: the last one, six's, is left)
    extra = 25 * by_default.snapshots_figure.get_suptitle().count("\n")
    assert list(by_default.snapshots_figure.get_size_inches() * 100) == pytest.approx([640, 680 + extra])
    assert_image(six.snapshots_path, (960, 680 + 25 * six.snapshots_figure.get_suptitle().count("\n")))
    bottom = six.snapshots_figure.axes[4]
    assert bottom.get_xlabel() == "input x" and six.snapshots_figure.axes[1].get_xlabel() == ""  # x label at the bottom


def test_five_panels_leave_no_empty_axes_and_label_the_lowest_x_axis_of_each_column():
    fit_plot = RegressionFit(max_panels=5)
    fit_plot.grid = torch.linspace(0, 1, 5)
    fit_plot.points = {"train": (torch.rand(4), torch.rand(4))}
    fit_plot.snapshots = [FitSnapshot(e, 1.0, torch.zeros(5)) for e in range(1, 6)]
    figure = fit_plot.plot_snapshots()
    assert panel_rows(figure) == [["epoch 1", "epoch 2", "epoch 3"], ["epoch 4", "epoch 5"]]
    # the top right panel has no panel below it: its x axis is labelled
    labelled = [bool(a.get_xlabel()) and any(t.get_text() for t in a.get_xticklabels()) for a in figure.axes]
    assert labelled == [False, False, True, True, True]


def test_long_run_names_are_wrapped_inside_the_figure(tmp_path, make_trainer):
    fit_plot = RegressionFit(every_n_epochs=1, max_panels=2)
    logger = TensorBoardLogger(str(tmp_path), name="a_long_experiment_name_for_the_quadratic_data")
    fit(make_trainer, [fit_plot], epochs=2, logger=logger)
    title = fit_plot.last_figure.axes[0].title
    assert "\n" in title.get_text() and title_fits(fit_plot.last_figure, title)
    assert title.get_text().replace("\n", " ").startswith(
        "a_long_experiment_name_for_the_quadratic_data/version_0: fit after 2 epochs (‖W‖ = ")
    suptitle = fit_plot.snapshots_figure.get_suptitle()
    assert "\n" in suptitle and title_fits(fit_plot.snapshots_figure, fit_plot.snapshots_figure._suptitle)


def test_the_true_function_from_the_argument_or_the_datamodule(make_trainer):
    class WithoutTruth(ToyRegressionDataModule):
        true_function = None

    from_data, neither = RegressionFit(), RegressionFit()
    from_argument = RegressionFit(true_function=lambda x: x**2, num_points=300)  # another key than from_data's
    # ToyRegressionDataModule("linear") knows its clean line, y = 2x
    fit(make_trainer, [from_data, from_argument], epochs=1, data=ToyRegressionDataModule("linear", batch_size=10))
    fit(make_trainer, [neither], epochs=1, data=WithoutTruth("linear", batch_size=10))
    torch.testing.assert_close(from_data.true_values, 2 * from_data.grid)
    torch.testing.assert_close(from_argument.true_values, from_argument.grid**2)  # the argument wins
    assert neither.true_values is None
    labels = [[line.get_label() for line in fit_plot.last_figure.axes[0].get_lines()]
              for fit_plot in (from_data, neither)]
    assert labels == [["true function", "model"], ["model"]]


def test_a_failing_true_function_gives_one_warning_and_is_left_out(make_trainer):
    fit_plot = RegressionFit(true_function=lambda x: x[:3])
    with pytest.warns(UserWarning, match=r"RegressionFit: the true function failed on inputs of shape \(400, 1\)"):
        fit(make_trainer, [fit_plot], epochs=1)
    assert fit_plot.true_values is None and fit_plot.plot_path.is_file()


def test_two_feature_data_gives_one_warning_and_draws_nothing(tmp_path, make_trainer):
    fit_plot = RegressionFit(every_n_epochs=1, gif=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(make_trainer, [fit_plot], epochs=2, data=ToyClassificationDataModule(num_samples=20, batch_size=10),
            model=DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[4]))
    ours = [str(w.message) for w in caught if "RegressionFit" in str(w.message)]
    assert len(ours) == 1 and "one input feature), but the train inputs have 2 features" in ours[0]
    assert fit_plot.snapshots == [] and fit_plot.plot_path is None and fit_plot.last_figure is None
    assert not list(tmp_path.rglob("regression_fit*"))


class TwoOutputs(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(1, 2)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self(x)[:, :1], y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_module_with_two_outputs_gives_one_warning(tmp_path, make_trainer):
    fit_plot = RegressionFit(every_n_epochs=1)
    with pytest.warns(UserWarning, match="RegressionFit draws one output per sample") as caught:
        fit(make_trainer, [fit_plot], epochs=3, model=TwoOutputs())
    assert len([w for w in caught if "RegressionFit" in str(w.message)]) == 1
    assert fit_plot.snapshots == [] and not list(tmp_path.rglob("regression_fit*"))


def test_training_is_unchanged_and_the_train_mode_restored(make_trainer):
    def train(callbacks):
        recorder = Recorder()
        pl.seed_everything(0, verbose=False)
        model = DenseRegressor(hidden_sizes=[16, 16], dropout=0.3, batchnorm=True, lr=0.05)
        fit(make_trainer, [*callbacks, recorder], epochs=3, model=model)
        return recorder, torch.get_rng_state()

    plain, plain_rng = train([])
    drawn, rng = train([RegressionFit(every_n_epochs=1)])
    assert drawn.modes == [True, True, True]
    for a, b in zip(plain.weights, drawn.weights, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(plain_rng, rng)


def test_a_resumed_fit_goes_on_from_the_checkpoints_snapshots(tmp_path, make_trainer):
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    first = RegressionFit(every_n_epochs=2)
    fit(make_trainer, [first, checkpoint], epochs=4, enable_checkpointing=True)
    resumed = RegressionFit(every_n_epochs=2)
    pl.seed_everything(0, verbose=False)
    trainer = make_trainer(max_epochs=6, callbacks=[resumed], limit_val_batches=0)
    trainer.fit(DenseRegressor(hidden_sizes=[16], lr=0.05), datamodule=ToyRegressionDataModule("linear", batch_size=10),
                ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert [s.epoch for s in resumed.snapshots] == [2, 4, 6]
    assert resumed.snapshots[0].weight_norm == first.snapshots[0].weight_norm
    fit(make_trainer, [first], epochs=2)  # the same callback in a new fit from scratch starts afresh
    assert [s.epoch for s in first.snapshots] == [2]
    loaded = RegressionFit(every_n_epochs=2)  # so does one whose state was loaded outside a run
    loaded.load_state_dict(resumed.state_dict())
    assert [s.epoch for s in loaded.snapshots] == [2, 4, 6]
    fit(make_trainer, [loaded], epochs=3)
    assert [s.epoch for s in loaded.snapshots] == [2, 3]


def test_shown_snapshots_spread_evenly_and_keep_the_last():
    fit_plot = RegressionFit(max_panels=1)
    fit_plot.snapshots = [FitSnapshot(e, 0.0, torch.zeros(1)) for e in (1, 2, 3)]
    assert [s.epoch for s in fit_plot.shown_snapshots()] == [3]
    fit_plot.max_panels = 5
    assert [s.epoch for s in fit_plot.shown_snapshots()] == [1, 2, 3]


def test_two_with_the_same_settings_are_refused_by_lightning(make_trainer):
    with pytest.raises(RuntimeError, match="more than one stateful callback of type `RegressionFit`"):
        make_trainer(callbacks=[RegressionFit(), RegressionFit(gif=True)])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"true_function": 3}, r"`true_function` must be None or a callable"),
    ({"every_n_epochs": 0}, r"`every_n_epochs` must be None or an integer >= 1, got 0"),
    ({"num_points": 1}, r"`num_points` must be an integer >= 2, got 1"),
    ({"max_panels": 0}, r"`max_panels` must be an integer >= 1, got 0"),
    ({"max_panels": True}, r"`max_panels` must be an integer >= 1, got True"),
    ({"num_points": 2.5}, r"`num_points` must be an integer >= 2, got 2.5"),
    ({"padding": -1}, r"`padding` must be a number >= 0"),
    ({"splits": ["train", "holdout"]}, r"`splits` must be a non-empty list of \['train', 'val', 'test'\]"),
    ({"fps": 0}, r"`fps` must be a number > 0, got 0"),
    ({"axis_labels": ("x", "y", "z")}, r"`axis_labels` must be two labels"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RegressionFit(**kwargs)


def test_a_checkpoint_without_its_snapshots_starts_them_afresh(tmp_path, make_trainer):
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    fit(make_trainer, [checkpoint], epochs=4, enable_checkpointing=True)  # a run without RegressionFit
    fit_plot = RegressionFit(every_n_epochs=2)
    fit(make_trainer, [fit_plot], epochs=4)  # snapshots of another run, on the same data
    assert [s.epoch for s in fit_plot.snapshots] == [2, 4]
    pl.seed_everything(0, verbose=False)
    trainer = make_trainer(max_epochs=6, callbacks=[fit_plot], limit_val_batches=0)
    trainer.fit(DenseRegressor(hidden_sizes=[16], lr=0.05), datamodule=ToyRegressionDataModule("linear", batch_size=10),
                ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert [s.epoch for s in fit_plot.snapshots] == [6]  # none of the other run's


def test_the_grid_pads_the_data_range_or_one_unit_for_a_single_input():
    fit_plot = RegressionFit(num_points=3, padding=0.25)
    assert fit_plot.make_grid({"train": (torch.tensor([0.0, 4.0]), None)}).tolist() == [-1.0, 2.0, 5.0]
    assert fit_plot.make_grid({"train": (torch.tensor([3.0, 3.0]), None)}).tolist() == [2.75, 3.0, 3.25]


def test_the_y_limits_show_the_data_and_follow_the_predictions_only_where_they_stay_near():
    fit_plot = RegressionFit()
    fit_plot.grid = torch.tensor([0.0, 1.0])
    fit_plot.snapshots = [FitSnapshot(1, 1.0, torch.tensor([-3.0, 0.5])), FitSnapshot(2, 1.0, torch.tensor([0.1, 1.2]))]
    # no data points nor true function: the predictions' range, with a quarter of it as margin, half of it outside
    assert fit_plot.plot().axes[0].get_ylim() == pytest.approx((-3.0 - 0.525, 1.2 + 0.525))
    fit_plot.points = {"train": (torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]))}
    # the data's range 0..1 (margin 0.25): up to 1.2 above, but down to -0.5 only below (twice the margin)
    assert fit_plot.plot().axes[0].get_ylim() == pytest.approx((-0.5 - 0.125, 1.2 + 0.125))


def test_the_true_function_is_a_thin_black_dashed_line_under_the_thicker_red_model():
    fit_plot = RegressionFit()
    fit_plot.grid = torch.tensor([0.0, 1.0])
    fit_plot.true_values = torch.tensor([0.0, 2.0])
    fit_plot.snapshots = [FitSnapshot(1, 1.0, torch.tensor([0.5, 1.5]))]
    truth, model = fit_plot.plot().axes[0].get_lines()
    assert (truth.get_label(), truth.get_color(), truth.get_linestyle(), truth.get_linewidth()) == (
        "true function", "black", "--", 1)
    assert (model.get_label(), model.get_color(), model.get_linewidth()) == ("model", "tab:red", 2)


def test_a_true_function_of_the_wrong_length_is_named_in_the_warning():
    fit_plot = RegressionFit(true_function=lambda x: x[:3])
    with pytest.warns(UserWarning, match=r"\(it gave 3 values for 5 inputs\); it is not drawn"):
        assert fit_plot.evaluate_true_function(None, torch.linspace(0, 1, 5)) is None


def test_two_differing_only_in_their_splits_can_share_a_trainer(make_trainer):
    only_train, both = RegressionFit(splits=["train"]), RegressionFit()
    assert only_train.state_key != both.state_key
    assert make_trainer(callbacks=[only_train, both]).callbacks[:2] == [only_train, both]


def test_a_new_callback_takes_slow_gifs_and_has_no_title_or_snapshots_yet():
    fit_plot = RegressionFit(fps=0.5, gif=True)  # one frame every two seconds
    assert (fit_plot.fps, fit_plot.title, fit_plot.snapshots, fit_plot.grid) == (0.5, "", [], None)
