import math
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from PIL import Image
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from datamodules import FashionMNISTDataModule, ToyRegressionDataModule
from datamodules.toy_classification import ToyClassificationDataModule
from lit_reg.callbacks.decision_boundary import (
    BoundaryMap,
    DecisionBoundary,
    contour_length,
    mean_gradient_norm,
    to_probabilities,
)
from lit_reg.models import BitmojiClassifier, DenseClassifier, DenseRegressor


def moons(**kwargs):
    return ToyClassificationDataModule(**{"num_samples": 40, "val_samples": 10, "test_samples": 10,
                                          "batch_size": 20, **kwargs})


def fit(make_trainer, model, data, callbacks, epochs=2, **trainer_kwargs):
    trainer = make_trainer(max_epochs=epochs, callbacks=callbacks, **trainer_kwargs)
    if isinstance(data, pl.LightningDataModule):
        trainer.fit(model, datamodule=data)
    else:
        trainer.fit(model, train_dataloaders=data)
    return trainer


def grid_inputs(boundary):
    return torch.from_numpy(np.stack([boundary.xx.ravel(), boundary.yy.ravel()], axis=1)).float()


def assert_png(path, size):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == size
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


def test_png_and_tensorboard_images_at_every_n_epochs_and_at_the_end(tmp_path, make_trainer):
    boundary = DecisionBoundary(every_n_epochs=2, resolution=40)
    logger = TensorBoardLogger(str(tmp_path), name="moons", default_hp_metric=False)
    torch.manual_seed(0)
    model = DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[8], lr=0.05)
    trainer = fit(make_trainer, model, moons(), [boundary], epochs=5, logger=logger, limit_val_batches=0)
    assert boundary.drawn_epochs == [2, 4, 5]
    assert boundary.plot_path == tmp_path / "moons" / "version_0" / "decision_boundary.png"
    assert_png(boundary.plot_path, (640, 480))
    assert boundary.last_figure.axes[0].get_title() == "moons/version_0: decision boundary after 5 epochs"
    assert [a.get_xlabel() for a in boundary.last_figure.axes] == ["input feature x₁", ""]  # the map, its colorbar
    assert boundary.last_figure.axes[1].get_ylabel() == "P(class '1')"
    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    images = events.Images("decision_boundary")
    assert [(i.step, i.width, i.height) for i in images] == [(4, 640, 480), (8, 640, 480), (10, 640, 480)]


def test_the_map_is_the_models_probability_on_a_grid_covering_the_points(tmp_path, make_trainer):
    boundary = DecisionBoundary(resolution=30, padding=0.1)
    torch.manual_seed(0)
    model = DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[8], lr=0.05)
    data = moons()
    fit(make_trainer, model, data, [boundary])
    result = boundary.boundary
    assert result.xx.shape == result.yy.shape == (30, 30) and result.probs.shape == (30, 30, 2)
    points = data.datasets["train"].inputs.double()
    low, high = points.min(0).values, points.max(0).values
    margin = 0.1 * (high - low)
    assert result.xx.min() == pytest.approx(float(low[0] - margin[0])) and result.xx.max() == pytest.approx(
        float(high[0] + margin[0]))
    assert result.yy.min() == pytest.approx(float(low[1] - margin[1])) and result.yy.max() == pytest.approx(
        float(high[1] + margin[1]))
    model.eval()
    with torch.no_grad():
        expected = model(grid_inputs(result)).softmax(dim=1).reshape(30, 30, 2)
    np.testing.assert_allclose(result.probs, expected.numpy(), atol=1e-6)
    assert torch.equal(result.points["train"][0], data.datasets["train"].inputs)
    assert torch.equal(result.points["train"][1], data.datasets["train"].targets)
    assert list(result.points) == ["train"] and result.class_names == ["0", "1"]


def test_grid_points_are_normalized_as_the_datamodule_does(tmp_path, make_trainer):
    class Standardized(ToyClassificationDataModule):
        def fit_normalization(self, train_inputs):
            self.mean, self.std = train_inputs.mean(0), train_inputs.std(0) / 4

    boundary = DecisionBoundary(resolution=20)
    torch.manual_seed(0)
    model = DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[8])
    data = Standardized(num_samples=40, batch_size=20)
    fit(make_trainer, model, data, [boundary], epochs=1, limit_val_batches=0)
    grid = grid_inputs(boundary.boundary)
    model.eval()
    with torch.no_grad():
        expected = model((grid - data.mean) / data.std).softmax(dim=1)
        raw = model(grid).softmax(dim=1)
    np.testing.assert_allclose(boundary.boundary.probs.reshape(-1, 2), expected.numpy(), atol=1e-6)
    assert not np.allclose(boundary.boundary.probs.reshape(-1, 2), raw.numpy(), atol=1e-3)
    assert abs(boundary.boundary.xx).max() < 4  # the grid is in the data's own units, not the normalized ones


def test_one_logit_binary_model_shows_the_sigmoid(tmp_path, make_trainer):
    boundary = DecisionBoundary(resolution=20)
    torch.manual_seed(0)
    model = BitmojiClassifier(input_size=2, hidden_sizes=[8], dropout=0.0, classes=["outer", "inner"], lr=0.05)
    fit(make_trainer, model, moons(), [boundary], limit_val_batches=0)
    model.eval()
    with torch.no_grad():
        expected = model(grid_inputs(boundary.boundary)).sigmoid()
    np.testing.assert_allclose(boundary.boundary.probs[..., 1].reshape(-1), expected.numpy(), atol=1e-6)
    np.testing.assert_allclose(boundary.boundary.probs.sum(-1), 1.0, atol=1e-6)
    assert boundary.boundary.class_names == ["0", "1"]  # the datamodule's names come first
    assert boundary.last_figure.axes[1].get_ylabel() == "P(class '1')"


def test_multi_class_model_on_a_tensor_dataset_draws_the_predicted_classes(tmp_path, make_trainer):
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    targets = torch.arange(3).repeat(20)
    inputs = centres[targets] + 0.5 * torch.randn(60, 2, generator=generator)
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=30)
    boundary = DecisionBoundary(resolution=25)
    torch.manual_seed(0)
    model = DenseClassifier(input_size=2, num_classes=3, hidden_sizes=[8], lr=0.05)
    fit(make_trainer, model, loader, [boundary], epochs=20)
    result = boundary.boundary
    assert result.probs.shape == (25, 25, 3) and result.class_names == ["0", "1", "2"]
    model.eval()
    with torch.no_grad():
        expected = model(grid_inputs(result)).argmax(dim=1).reshape(25, 25)
    assert np.array_equal(result.predicted, expected.numpy())
    assert set(np.unique(result.predicted)) == {0, 1, 2}  # three blobs, three regions
    assert len(boundary.last_figure.axes) == 1  # classes, no probability colorbar
    legend = [t.get_text() for t in boundary.last_figure.axes[0].get_legend().get_texts()]
    assert legend == ["train: class 0", "train: class 1", "train: class 2"]
    assert_png(boundary.plot_path, (640, 480))


def test_validation_points_are_drawn_when_asked(tmp_path, make_trainer):
    boundary = DecisionBoundary(resolution=10, splits=["train", "val"], probability=False)
    data = moons()
    fit(make_trainer, DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[4]), data, [boundary], epochs=1)
    assert list(boundary.boundary.points) == ["train", "val"]
    assert torch.equal(boundary.boundary.points["val"][0], data.datasets["val"].inputs)
    legend = [t.get_text() for t in boundary.last_figure.axes[0].get_legend().get_texts()]
    assert legend == ["train: class 0", "train: class 1", "validation: class 0", "validation: class 1"]


def test_the_grid_covers_validation_points_beyond_the_training_points(tmp_path, make_trainer):
    class FarValidation(ToyClassificationDataModule):
        def setup(self, stage=None):
            super().setup(stage)
            self.datasets["val"].inputs = self.datasets["val"].inputs * 3 + 5  # all outside the training points

    boundary = DecisionBoundary(resolution=10, splits=["train", "val"], padding=0.0)
    data = FarValidation(num_samples=40, val_samples=10, batch_size=20)
    fit(make_trainer, DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[4]), data, [boundary], epochs=1,
        limit_val_batches=0)
    points = torch.cat([data.datasets[s].inputs for s in ("train", "val")]).double()
    result = boundary.boundary
    assert (result.xx.min(), result.xx.max()) == pytest.approx((float(points[:, 0].min()), float(points[:, 0].max())))
    assert (result.yy.min(), result.yy.max()) == pytest.approx((float(points[:, 1].min()), float(points[:, 1].max())))
    axes = boundary.last_figure.axes[0]
    for inputs in (data.datasets["train"].inputs, data.datasets["val"].inputs):  # every point drawn is on the map
        assert axes.get_xlim()[0] <= float(inputs[:, 0].min()) and float(inputs[:, 0].max()) <= axes.get_xlim()[1]
        assert axes.get_ylim()[0] <= float(inputs[:, 1].min()) and float(inputs[:, 1].max()) <= axes.get_ylim()[1]


def test_a_long_title_is_wrapped_inside_the_figure(tmp_path, make_trainer):
    boundary = DecisionBoundary(resolution=10)
    logger = TensorBoardLogger(str(tmp_path), name="two_moons_with_a_long_name")
    fit(make_trainer, DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[4]), moons(), [boundary], epochs=1,
        logger=logger, limit_val_batches=0)
    title = boundary.last_figure.axes[0].title
    assert "\n" in title.get_text()  # broken at a space
    assert title.get_text().replace("\n", " ") == (
        "two_moons_with_a_long_name/version_0: decision boundary after 1 epoch")
    extent = title.get_window_extent()  # drawn when the PNG was saved
    assert 0 <= extent.x0 and extent.x1 <= boundary.last_figure.bbox.width
    assert extent.y1 <= boundary.last_figure.bbox.height


def test_image_data_gives_one_warning_and_draws_nothing(tmp_path, make_trainer, fashion_root):
    boundary = DecisionBoundary(every_n_epochs=1)
    data = FashionMNISTDataModule(data_dir=str(fashion_root), batch_size=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(make_trainer, DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[4]), data, [boundary],
            limit_val_batches=0)
    ours = [str(w.message) for w in caught if "DecisionBoundary" in str(w.message)]
    assert len(ours) == 1 and "2-D inputs, but the train inputs have 784 features" in ours[0]
    assert boundary.boundary is None and boundary.last_figure is None and boundary.plot_path is None
    assert not list(tmp_path.rglob("decision_boundary.png"))


def test_regression_data_gives_one_warning(tmp_path, make_trainer):
    boundary = DecisionBoundary(every_n_epochs=1)
    with pytest.warns(UserWarning, match="DecisionBoundary draws 2-D inputs") as caught:
        fit(make_trainer, DenseRegressor(hidden_sizes=[4]), ToyRegressionDataModule("linear", batch_size=5),
            [boundary])
    assert len([w for w in caught if "DecisionBoundary" in str(w.message)]) == 1
    assert boundary.plot_path is None


def test_float_targets_on_2d_inputs_give_one_warning(tmp_path, make_trainer):
    loader = DataLoader(TensorDataset(torch.rand(20, 2), torch.rand(20, 1)), batch_size=10)
    boundary = DecisionBoundary(every_n_epochs=1)
    with pytest.warns(UserWarning, match="DecisionBoundary needs class labels") as caught:
        fit(make_trainer, DenseRegressor(input_size=2, hidden_sizes=[4]), loader, [boundary])
    assert len([w for w in caught if "DecisionBoundary" in str(w.message)]) == 1
    assert boundary.plot_path is None


class ModesAndWeights(Callback):
    """After the callbacks listed before it: the modules' train flags at each epoch end, the final weights."""

    def __init__(self):
        self.modes = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.modes.append(all(m.training for m in pl_module.modules()))

    def on_train_end(self, trainer, pl_module):
        self.weights = [p.detach().clone() for p in pl_module.parameters()]


def train(make_trainer, callbacks):
    pl.seed_everything(0, verbose=False)
    model = DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[16, 16], dropout=0.3, batchnorm=True)
    recorder = ModesAndWeights()
    fit(make_trainer, model, moons(), [*callbacks, recorder], epochs=3)
    return model, recorder, torch.get_rng_state()


def test_training_is_unchanged_and_the_train_mode_restored(make_trainer):
    plain, plain_recorder, plain_rng = train(make_trainer, [])
    drawn, recorder, rng = train(make_trainer, [DecisionBoundary(every_n_epochs=1, resolution=20)])
    assert recorder.modes == [True, True, True]
    for a, b in zip(plain.state_dict().values(), drawn.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # weights and batch-norm statistics alike
    assert torch.equal(plain_rng, rng)


def test_compute_leaves_an_eval_module_in_eval_mode(make_trainer):
    boundary = DecisionBoundary(resolution=5)
    model = DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[4], dropout=0.5)
    trainer = fit(make_trainer, model, moons(), [boundary], epochs=1)
    model.eval()
    model.net[0].train()  # a mixed state stays as it was
    boundary.compute(trainer, model, 1)
    assert [m.training for m in model.modules()][:3] == [False, False, True]


def test_smoothness_measures():
    xx, yy = np.meshgrid(np.linspace(-2, 2, 201), np.linspace(-2, 2, 201))
    radius = np.hypot(xx, yy)
    assert contour_length(xx, yy, radius, level=1.0) == pytest.approx(2 * math.pi, rel=1e-3)
    assert mean_gradient_norm(xx, yy, radius) == pytest.approx(1.0, rel=0.02)  # |∇r| = 1 (but at the origin)
    assert contour_length(xx, yy, np.zeros_like(xx)) == 0.0
    step = (xx > 0).astype(float)  # an abrupt boundary changes faster than a gentle one
    gentle = 1 / (1 + np.exp(-xx))
    assert mean_gradient_norm(xx, yy, step) > mean_gradient_norm(xx, yy, gentle)


def test_boundary_map_smoothness_needs_two_classes(tmp_path, make_trainer):
    boundary = DecisionBoundary(resolution=30)
    torch.manual_seed(0)
    fit(make_trainer, DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[8], lr=0.05), moons(), [boundary],
        epochs=10)
    result = boundary.boundary
    assert result.contour_length() == pytest.approx(contour_length(result.xx, result.yy, result.probs[..., 1]))
    assert result.contour_length() > 0 and result.mean_gradient_norm() > 0
    result.probs = np.concatenate([result.probs, result.probs[..., :1]], axis=-1)
    with pytest.raises(ValueError, match="needs two classes"):
        result.contour_length()


def test_to_probabilities():
    torch.testing.assert_close(to_probabilities(torch.tensor([[0.0], [math.log(3)]])),
                               torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
    torch.testing.assert_close(to_probabilities(torch.tensor([[0.0, 0.0, math.log(2)]])),
                               torch.tensor([[0.25, 0.25, 0.5]]))


def test_works_without_a_logger(tmp_path, make_trainer):
    boundary = DecisionBoundary(resolution=10)
    fit(make_trainer, DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[4]), moons(), [boundary], epochs=1)
    assert boundary.plot_path == tmp_path / "decision_boundary.png" and boundary.plot_path.is_file()
    title = boundary.last_figure.axes[0].get_title()
    assert title.replace("\n", " ") == f"{tmp_path.name}: decision boundary after 1 epoch"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"every_n_epochs": 0}, r"`every_n_epochs` must be None or an integer >= 1, got 0"),
    ({"resolution": 1}, r"`resolution` must be an integer >= 2, got 1"),
    ({"padding": -0.1}, r"`padding` must be a number >= 0"),
    ({"splits": ["training"]}, r"`splits` must be a non-empty list of \['train', 'val', 'test'\]"),
    ({"splits": "train"}, r"`splits` must be a non-empty list"),
    ({"axis_labels": ("x",)}, r"`axis_labels` must be two labels"),
    ({"filename": "boundary.jpg"}, r"`filename` must end in '.png', got 'boundary.jpg'"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DecisionBoundary(**kwargs)


def test_without_datamodule_class_names_the_models_are_used(tmp_path, make_trainer):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(20, 2, generator=generator)
    loader = DataLoader(TensorDataset(inputs, (inputs[:, 0] > 0).long()), batch_size=10)
    boundary = DecisionBoundary(resolution=10)
    model = BitmojiClassifier(input_size=2, hidden_sizes=[4], classes=["outer", "inner"])
    fit(make_trainer, model, loader, [boundary], epochs=1)
    assert boundary.boundary.class_names == ["outer", "inner"]
    assert boundary.last_figure.axes[1].get_ylabel() == "P(class 'inner')"


def contour_sets(axes):
    """``(filled, lines)``: the levels of the filled contour set and of the line contour set drawn on ``axes``."""
    sets = [c for c in axes.collections if isinstance(c, ContourSet)]
    filled = [list(c.levels) for c in sets if c.filled]
    lines = [list(c.levels) for c in sets if not c.filled]
    assert len(filled) == len(lines) == 1
    return filled[0], lines[0]


def hand_made_map(num_classes):
    xx, yy = np.meshgrid(np.linspace(0, 1, 12), np.linspace(0, 1, 12))
    logits = torch.from_numpy(np.stack([xx * c + yy * (c % 2) for c in range(num_classes)], axis=-1))
    return BoundaryMap(xx, yy, logits.softmax(dim=-1).numpy(), 3, "hand made",
                       class_names=[str(c) for c in range(num_classes)])


def test_the_probability_map_has_ten_bands_and_its_boundary_is_the_half_contour():
    axes = Figure().subplots()
    DecisionBoundary().draw(axes, hand_made_map(2), colorbar=False, legend=False)
    filled, lines = contour_sets(axes)
    assert filled == pytest.approx(np.linspace(0, 1, 11).tolist()) and lines == [0.5]


def test_the_class_map_has_one_band_per_class_and_boundaries_between_them():
    axes = Figure().subplots()
    DecisionBoundary().draw(axes, hand_made_map(3), legend=False)
    filled, lines = contour_sets(axes)
    assert filled == [-0.5, 0.5, 1.5, 2.5] and lines == [0.5, 1.5]


def test_drawing_before_fit_is_an_error():
    with pytest.raises(ValueError, match="nothing to draw yet: the boundary is computed at the end of fit"):
        DecisionBoundary().draw(Figure().subplots())


def test_the_class_map_is_filled_with_the_class_colours_and_the_points_are_small_outlined_markers():
    boundary = hand_made_map(3)
    boundary.points = {"train": (torch.tensor([[0.1, 0.1], [0.9, 0.2], [0.5, 0.9]]), torch.tensor([0, 1, 2]))}
    axes = Figure().subplots()
    DecisionBoundary().draw(axes, boundary)
    filled = next(c for c in axes.collections if isinstance(c, ContourSet) and c.filled)
    expected = [to_rgba(name, alpha=0.35) for name in ("tab:blue", "tab:red", "tab:green")]
    np.testing.assert_allclose(filled.get_facecolor(), expected)  # one band per class, in the class's colour
    points = [c for c in axes.collections if isinstance(c, PathCollection)]
    assert [tuple(c.get_facecolor()[0]) for c in points] == [to_rgba(name) for name in ("tab:blue", "tab:red",
                                                                                        "tab:green")]
    for markers in points:
        assert markers.get_sizes().tolist() == [22]
        np.testing.assert_allclose(markers.get_edgecolors(), [to_rgba("black")])
    legend = axes.get_legend()
    assert [t.get_fontsize() for t in legend.get_texts()] == [FontProperties(size="small").get_size_in_points()] * 3
