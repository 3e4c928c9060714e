"""The figure callbacks' shared helpers (``lit_reg.callbacks.figures``): title wrapping and where a split's tensors
are found."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from lit_reg.callbacks.figures import save_to_run, split_tensors, text_width, wrap_title

TITLE = "run/version_3: decision boundary after 12 epochs"


def test_a_title_exactly_as_wide_as_the_room_stays_on_one_line_at_12_points():
    width = text_width(TITLE, 12.0)
    assert wrap_title(TITLE, width) == TITLE  # the default size is 12 points, and a line that just fits is kept
    assert "\n" in wrap_title(TITLE, width, fontsize=13.0)
    assert "\n" in wrap_title(TITLE, width * 0.99)


@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("as_list", [False, True])
def test_without_a_datamodule_a_splits_tensors_come_from_the_trainers_dataloader(split, as_list):
    x, y = torch.randn(6, 2), torch.arange(6)
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    attribute = {"train": "train_dataloader", "val": "val_dataloaders", "test": "test_dataloaders"}[split]
    trainer = SimpleNamespace(datamodule=None, **{attribute: [loader] if as_list else loader})
    inputs, targets = split_tensors(trainer, split)
    assert inputs is x and targets is y
    assert split_tensors(trainer, "predict") is None


def test_the_png_has_100_pixels_an_inch_whatever_the_users_matplotlib_settings(make_trainer, tmp_path, caplog):
    trainer = make_trainer()
    with matplotlib.rc_context({"figure.dpi": 50, "savefig.dpi": 72}), \
            caplog.at_level(logging.INFO, logger="lit_reg.callbacks.figures"):
        path = save_to_run(trainer, lambda: Figure(figsize=(3, 2)), "figures/drawn.png", "my_tag")
    assert path == Path(tmp_path) / "figures" / "drawn.png"
    assert Image.open(path).size == (300, 200)
    assert f"my_tag saved to {path}" in caplog.text
