"""A datamodule whose inputs are the sample indices, so a batch (or a rank) tells which samples it holds."""

from __future__ import annotations

import torch

from datamodules.base import InMemoryDataModule


class IndexData(InMemoryDataModule):
    """``size`` samples whose input is their own index, labelled ``index % 3``; the same samples in every split."""

    input_size = 1
    num_classes = 3

    def __init__(self, size: int = 64, **kwargs) -> None:
        super().__init__(**kwargs)
        self.size = size

    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        x = torch.arange(self.size, dtype=torch.float32).unsqueeze(1)
        y = torch.arange(self.size) % 3
        return {"train": (x, y), "val": (x, y), "test": (x, y)}
