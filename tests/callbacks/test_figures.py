"""The figure callbacks' shared helpers (``lit_reg.callbacks.figures``): title wrapping and where a split's tensors
are found."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lit_reg.callbacks.figures import split_tensors, text_width, wrap_title

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
