"""The lectures' small 1-D regression sets, generated from a seed."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from datamodules.base import InMemoryDataModule


class ToyRegressionDataModule(InMemoryDataModule):
    """One of the lectures' 1-D regression sets, generated with a seed (no files, no download).

    - ``"quadratic"``: x in [-3, 3) with step 0.15 (40 points), y = x² + x·ε with ε ~ N(0, 1) for
      training; validation and test on the clean curve y = x² at the same x. A net that fits the
      noise sees its validation loss turn up: the early-stopping demo.
    - ``"linear"``: 10 points x ~ U(0, 1), y = 2x + 2·ε for training; validation and test on a
      40-point grid of the clean line y = 2x over [0, 1]: the over-fitting / weight-norm demo.
    - ``"lecture000"``: lecture 000's exact numbers: the ``"quadratic"`` training set with the noise drawn
      from seed 0 whatever ``seed`` says (the lecture's ``torch.manual_seed(0)`` then
      ``y = x**2 + x * torch.randn(len(x))``, drawn here from a local generator, which gives the same numbers and
      leaves the global RNG alone); validation and test on the 6 points x = -3, -2, ..., 2 of y = x²
      (the lecture's ``torch.arange(-3, 3)``). ``seed`` still sets the order of the training batches.

    Inputs and targets have shape ``(n, 1)``; ``input_size`` and ``output_size`` are 1.

    Args:
        dataset: ``"quadratic"``, ``"linear"`` or ``"lecture000"``.
        batch_size: samples per batch (the lecture uses 1).
        seed: seed of the generated noise and points (``"lecture000"``: of the batch order only).
        num_workers: ``DataLoader`` workers.

    Example:
        >>> dm = ToyRegressionDataModule("quadratic")
        >>> dm.setup()
        >>> [len(dm.datasets[s]) for s in ("train", "val", "test")]
        [40, 40, 40]
        >>> dm = ToyRegressionDataModule("lecture000")
        >>> dm.setup()
        >>> dm.datasets["val"].inputs[:, 0].tolist()
        [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0]
    """

    input_size = 1
    output_size = 1
    DATASETS = ("quadratic", "linear", "lecture000")
    #: the seed of lecture 000's noise (``torch.manual_seed(0)``)
    LECTURE000_SEED = 0

    def __init__(
        self,
        dataset: Literal["quadratic", "linear", "lecture000"] = "quadratic",
        batch_size: int = 1,
        seed: int = 2021,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()  # checkpoints and TensorBoard's HPARAMS carry the arguments
        if dataset not in self.DATASETS:
            raise ValueError(f"`dataset` must be one of {list(self.DATASETS)}, got {dataset!r}")
        self.dataset = dataset

    def true_function(self, x: Tensor) -> Tensor:
        """The clean curve the points scatter around, at inputs ``x``: x² (``"quadratic"``, ``"lecture000"``) or
        2x (``"linear"``); :class:`~lit_reg.callbacks.RegressionFit` draws it as the true function.

        Example:
            >>> ToyRegressionDataModule("linear").true_function(torch.tensor([[0.5]]))
            tensor([[1.]])
        """
        return x**2 if self.dataset in ("quadratic", "lecture000") else 2 * x

    def load_splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        seed = self.LECTURE000_SEED if self.dataset == "lecture000" else self.seed
        generator = torch.Generator().manual_seed(seed)
        if self.dataset in ("quadratic", "lecture000"):
            x = torch.arange(-3, 3, 0.15).unsqueeze(1)
            y = x**2 + x * torch.randn(x.shape, generator=generator)  # the same numbers as randn(len(x))
            grid = torch.arange(-3, 3, dtype=x.dtype).unsqueeze(1) if self.dataset == "lecture000" else x
            clean = (grid, grid**2)
        else:
            x = torch.rand(10, 1, generator=generator)
            y = 2 * x + 2 * torch.randn(x.shape, generator=generator)
            grid = torch.linspace(0, 1, 40).unsqueeze(1)
            clean = (grid, 2 * grid)
        return {"train": (x, y), "val": clean, "test": clean}
