import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from datamodules import ImageFolderDataModule, ToyRegressionDataModule
from lit_reg.callbacks.sample_grid import SampleGrid
from lit_reg.models import DenseClassifier, DenseRegressor
from tests.datamodules.image_trees import write_tree
from tests.helpers import figures
from tests.helpers.figures import assert_png, fit_logged, warnings_naming


def fashion(fashion_root, **kwargs):
    return figures.fashion(fashion_root, batch_size=64, **kwargs)


def fit(tmp_path, make_trainer, model, datamodule, callbacks):
    """One epoch without validation or test: the grid is drawn when training starts."""
    return fit_logged(tmp_path, make_trainer, model, datamodule, callbacks, test=False, limit_val_batches=0)


def image_panels(figure):
    return [axes for axes in figure.axes if axes.images]


def test_one_row_per_class_of_training_images(tmp_path, make_trainer, fashion_root):
    dm = fashion(fashion_root)
    grid = SampleGrid(per_class=4)
    trainer = fit(tmp_path, make_trainer, DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[4]), dm,
                  [grid])

    assert list(grid.indices) == dm.classes and grid.panels == 40
    targets = dm.datasets["train"].targets
    for label, chosen in enumerate(grid.indices.values()):
        assert len(chosen) == 4 and len(set(chosen.tolist())) == 4 and (targets[chosen] == label).all()
    assert grid.plot_paths == {"train": tmp_path / "run" / "version_0" / "samples.png"}
    assert grid.augmented_images is None and not (tmp_path / "run" / "version_0" / "samples_augmented.png").exists()
    assert_png(grid.plot_paths["train"], grid.last_figure)

    panels = image_panels(grid.last_figure)
    assert len(panels) == 40
    first_chosen = grid.indices[dm.classes[0]][0]
    assert np.array_equal(panels[0].images[0].get_array(), dm.datasets["train"].inputs[first_chosen].numpy())
    row_titles = [axes.get_ylabel() for axes in grid.last_figure.axes if axes.get_ylabel()]
    assert row_titles == dm.classes
    assert "run/version_0" in grid.last_figure.get_suptitle()

    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert "samples/train" in events.Tags()["images"]


def test_the_choice_is_seeded(fashion_root):
    dm = fashion(fashion_root)
    dm.setup()
    targets = dm.datasets["train"].targets
    first = SampleGrid(seed=1).choose(targets, dm.classes)
    again = SampleGrid(seed=1).choose(targets, dm.classes)
    other = SampleGrid(seed=2).choose(targets, dm.classes)
    assert all(torch.equal(first[name], again[name]) for name in dm.classes)
    assert any(not torch.equal(first[name], other[name]) for name in dm.classes)


def test_a_class_with_fewer_images_gives_what_it_has():
    chosen = SampleGrid(per_class=3).choose(torch.tensor([0, 1, 0, 0, 0, 2, 2]), ["a", "b", "c", "d"])
    assert [len(indices) for indices in chosen.values()] == [3, 1, 2, 0]
    assert chosen["b"].tolist() == [1] and sorted(chosen["c"].tolist()) == [5, 6]


def test_augmented_grid_is_seeded_and_leaves_the_global_rng_alone(tmp_path, make_trainer, fashion_root):
    dm = fashion(fashion_root, augment=True, rotation=20, max_shift=2)
    grid = SampleGrid(per_class=3)
    trainer = fit(tmp_path, make_trainer, DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[4]), dm,
                  [grid])
    run = tmp_path / "run" / "version_0"
    assert grid.plot_paths == {"train": run / "samples.png", "augmented": run / "samples_augmented.png"}
    assert_png(grid.plot_paths["augmented"], grid.last_figure)
    assert len(image_panels(grid.last_figure)) == 30 and "BatchAugmentation" in grid.last_figure.get_suptitle()

    originals = dm.datasets["train"].inputs[torch.cat(list(grid.indices.values()))].float() / 255
    assert grid.augmented_images.shape == originals.shape
    assert not torch.allclose(grid.augmented_images, originals)  # rotated and shifted
    state = torch.get_rng_state()
    again = grid.augment(dm, dm.datasets["train"].inputs[torch.cat(list(grid.indices.values()))])
    assert torch.equal(torch.get_rng_state(), state)  # drawn from a seeded fork of the global generator
    assert torch.equal(again, grid.augmented_images)  # the same augmented images on every run

    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"samples/train", "samples/augmented"} <= set(events.Tags()["images"])


def test_augmented_false_draws_only_the_plain_grid(tmp_path, make_trainer, fashion_root):
    grid = SampleGrid(per_class=1, augmented=False)
    fit(tmp_path, make_trainer, DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[4]),
        fashion(fashion_root, augment=True), [grid])
    assert list(grid.plot_paths) == ["train"] and grid.augmented_images is None


def test_rgb_image_folder(tmp_path, make_trainer):
    root = write_tree(tmp_path / "tree", {"cat": 6, "dog": 2})
    dm = ImageFolderDataModule(str(root), image_size=10, grayscale=False, cache_dir=None, val_fraction=0.5,
                               batch_size=4)
    grid = SampleGrid(per_class=3)
    fit(tmp_path, make_trainer, DenseClassifier(input_size=300, num_classes=2, hidden_sizes=[4]), dm, [grid])
    assert [len(chosen) for chosen in grid.indices.values()] == [3, 1]  # dog has one training image
    panels = image_panels(grid.last_figure)
    assert len(panels) == 4 and panels[0].images[0].get_array().shape == (10, 10, 3)
    assert_png(grid.plot_paths["train"], grid.last_figure)


def test_regression_data_gives_one_warning_and_no_figure(tmp_path, make_trainer):
    grid = SampleGrid()

    def fit_twice():
        trainer = fit(tmp_path, make_trainer, DenseRegressor(hidden_sizes=[4]),
                      ToyRegressionDataModule("linear", batch_size=5), [grid])
        trainer.fit(trainer.lightning_module, datamodule=trainer.datamodule)  # a second fit warns no more

    ours = warnings_naming("SampleGrid", fit_twice)
    assert len(ours) == 1 and "images" in ours[0]
    assert grid.plot_paths == {} and grid.last_figure is None and not list(tmp_path.rglob("samples*.png"))


def test_training_result_is_unchanged(make_trainer, fashion_root):
    figures.assert_training_unchanged(make_trainer, lambda: fashion(fashion_root, augment=True), SampleGrid(),
                              limit_val_batches=0)


def test_nothing_runs_per_training_step():
    figures.assert_no_hooks(SampleGrid, extra=["on_train_epoch_end"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(per_class=0), "`per_class` must be a positive integer"),
    (dict(per_class=True), "`per_class` must be a positive integer"),
    (dict(panel_size=(1.0, -1.0)), "`panel_size` must be two positive sizes"),
])
def test_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SampleGrid(**kwargs)


def test_augmented_images_are_clipped_to_the_unit_range():
    class Overshooting:
        """Augments by a contrast stretch that leaves [0, 1] on both sides."""

        def augment_batch(self, images):
            return 2 * images - 0.5

    images = torch.tensor([[[0, 102], [153, 255]]], dtype=torch.uint8)  # 0, 0.4, 0.6 and 1
    augmented = SampleGrid().augment(Overshooting(), images)
    torch.testing.assert_close(augmented, torch.tensor([[[0.0, 0.3], [0.7, 1.0]]]))


def test_figure_grows_with_the_panels_and_the_longest_class_name_and_blank_panels_have_no_frame():
    grid = SampleGrid(per_class=2, panel_size=(2.0, 1.5))
    grid.indices = {"a": torch.tensor([0, 1]), "twelve_chars": torch.tensor([2])}
    figure = grid.plot(torch.zeros(3, 4, 4, dtype=torch.uint8))
    # 2 columns of 2 inches and 0.12 inch per character of the longest row title and 0.3 wide; 2 rows of 1.5 + 0.8
    assert figure.get_size_inches() == pytest.approx([2 * 2.0 + 0.12 * 12 + 0.3, 2 * 1.5 + 0.8])
    blank = figure.axes[3]  # the second class has one image: its second panel stays empty
    assert not blank.images and blank.get_frame_on() is False
    assert not blank.get_xticks().size and not blank.get_yticks().size
    assert [axes.get_frame_on() for axes in figure.axes[:3]] == [True] * 3


def test_before_any_fit_there_are_no_augmented_images_and_the_title_names_no_run():
    grid = SampleGrid(per_class=2)
    assert grid.augmented_images is None and grid.plot_paths == {} and grid.last_figure is None
    assert grid.plot(torch.zeros(0, 4, 4, dtype=torch.uint8)).get_suptitle() == "Training samples, 2 per class\n"
