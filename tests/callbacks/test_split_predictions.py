import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from datamodules import FashionMNISTDataModule
from lit_reg.callbacks import ConfusionMatrix, Mistakes
from lit_reg.callbacks.split_predictions import NotApplicableError, SplitReport, predict_split, show_image, split_data
from lit_reg.models import DenseClassifier


class LabelledData:
    """A datamodule stand-in: an in-memory ``val`` split of two-feature samples, with class labels."""

    def __init__(self, num_classes=2, transform=True):
        self.datasets = {"val": SimpleNamespace(inputs=torch.zeros(4, 2), targets=torch.tensor([0, 1, 0, 1]))}
        self.num_classes = num_classes
        if transform:
            self.transform_inputs = lambda x: x


@pytest.mark.parametrize(("data", "message"), [
    (LabelledData(num_classes=0), r"^needs the class names \(`classes` or `num_classes`\) of LabelledData$"),
    (LabelledData(num_classes=1), r"^needs the class names \(`classes` or `num_classes`\) of LabelledData$"),
    (LabelledData(transform=False), r"^needs `transform_inputs` of the datamodule \(LabelledData has none\)$"),
])
def test_predicting_a_split_the_datamodule_cannot_label_or_transform_names_what_is_missing(data, message):
    with pytest.raises(NotApplicableError, match=message):
        predict_split(DenseClassifier(input_size=2, num_classes=2, hidden_sizes=[]), data, "val")


def drawn(image):
    axes = Figure().subplots()
    show_image(axes, image)
    assert axes.get_xticks().size == axes.get_yticks().size == 0
    return axes.images[0]


@pytest.mark.parametrize(("image", "top"), [
    (torch.tensor([[10, 20], [30, 200]], dtype=torch.uint8), 255),
    (torch.tensor([[[10, 20], [30, 200]]], dtype=torch.uint8), 255),  # (1, H, W)
    (torch.tensor([[0.25, 0.5], [0.5, 0.75]]), 1.0),
])
def test_grayscale_images_are_drawn_gray_on_their_full_value_range(image, top):
    shown = drawn(image)
    assert shown.get_cmap().name == "gray"
    assert shown.get_clim() == (0, top)  # not stretched to the image's own darkest and brightest pixel
    assert np.array_equal(shown.get_array(), image.reshape(2, 2).float().numpy())


def test_float_rgb_images_are_clamped_to_0_1_before_matplotlib_sees_them(caplog):
    image = torch.tensor([[[1.5, 0.5]], [[-0.5, 0.25]], [[2.5, 1.0]]])  # (3, 1, 2), outside [0, 1]
    with caplog.at_level(logging.WARNING, logger="matplotlib"):
        shown = drawn(image)
    assert np.array_equal(shown.get_array(), image.clamp(0, 1).permute(1, 2, 0).numpy())
    assert not [r for r in caplog.records if "Clipping input data" in r.getMessage()]  # no matplotlib warning


def test_uint8_rgb_images_are_drawn_as_they_are():
    image = torch.tensor([[[0, 255]], [[128, 1]], [[7, 9]]], dtype=torch.uint8)
    assert np.array_equal(drawn(image).get_array(), image.permute(1, 2, 0).numpy())


def test_a_split_not_loaded_yet_is_loaded_by_setup(fashion_root):
    data = FashionMNISTDataModule(str(fashion_root), download=False)
    assert "test" not in data.datasets
    inputs, targets = split_data(data, "test", images=True)
    assert inputs.dtype == torch.uint8 and len(inputs) == len(targets) == len(data.datasets["test"].targets)


def test_reports_predict_the_split_1024_samples_at_a_time_by_default():
    class Report(SplitReport):
        """A report with SplitReport's own ``__init__``."""

    assert Report().batch_size == ConfusionMatrix().batch_size == Mistakes().batch_size == 1024
    assert Report().stages == ("val", "test")
