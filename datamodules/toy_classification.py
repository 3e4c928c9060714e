"""The lectures' small 2-D classification sets (two moons, two circles), generated from a seed."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from datamodules.base import InMemoryDataModule, check_positive_int


def _check_nonnegative(value: float, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"`{argument}` must be a finite number >= 0, got {value!r}")
    return float(value)


def make_points(dataset: str, num_samples: int, noise: float, generator: torch.Generator,
                factor: float = 0.5) -> tuple[Tensor, Tensor]:
    """``num_samples`` shuffled points ``(n, 2)`` (float32) of ``dataset`` with Gaussian ``noise``, labels ``(n,)``.

    As scikit-learn's ``make_moons``/``make_circles`` (the same shapes and label order, not the same random
    numbers): ``n // 2`` points of class 0 and ``n - n // 2`` of class 1, evenly spaced along their curve, shuffled,
    then ``noise`` × N(0, 1) added to each coordinate. Moons: class 0 is the upper half circle
    ``(cos t, sin t)``, class 1 the lower one ``(1 - cos t, 1/2 - sin t)``, t in [0, π]. Circles: class 0 on the
    unit circle, class 1 on the circle of radius ``factor``.

    Example:
        >>> x, y = make_points("moons", 6, 0.0, torch.Generator().manual_seed(0))
        >>> x.shape, sorted(y.tolist())
        (torch.Size([6, 2]), [0, 0, 0, 1, 1, 1])
    """
    num_outer = num_samples // 2
    num_inner = num_samples - num_outer
    if dataset == "moons":
        t_outer = torch.linspace(0, math.pi, num_outer, dtype=torch.float64)
        t_inner = torch.linspace(0, math.pi, num_inner, dtype=torch.float64)
        outer = torch.stack([t_outer.cos(), t_outer.sin()], dim=1)
        inner = torch.stack([1 - t_inner.cos(), 0.5 - t_inner.sin()], dim=1)
    else:
        t_outer = torch.arange(num_outer, dtype=torch.float64) * (2 * math.pi / max(num_outer, 1))
        t_inner = torch.arange(num_inner, dtype=torch.float64) * (2 * math.pi / max(num_inner, 1))
        outer = torch.stack([t_outer.cos(), t_outer.sin()], dim=1)
        inner = factor * torch.stack([t_inner.cos(), t_inner.sin()], dim=1)
    points = torch.cat([outer, inner])
    labels = torch.cat([torch.zeros(num_outer, dtype=torch.long), torch.ones(num_inner, dtype=torch.long)])
    order = torch.randperm(num_samples, generator=generator)
    points, labels = points[order], labels[order]
    if noise:
        points = points + noise * torch.randn(points.shape, generator=generator, dtype=torch.float64)
    return points.float(), labels


class ToyClassificationDataModule(InMemoryDataModule):
    """A 2-D two-class toy set of the lectures, generated with a seed in torch (no scikit-learn, no files).

    - ``"moons"``: two interleaving half circles (scikit-learn's ``make_moons``); the defaults are lecture 001's
      ``make_moons(100, noise=0.25, random_state=3)`` (the same recipe, torch's random numbers).
    - ``"circles"``: a circle of radius ``factor`` inside the unit circle (``make_circles``).

    Splits: ``num_samples`` training points, and validation and test sets drawn afresh from the same
    distribution (``val_samples`` and ``test_samples`` points, by default as many as for training), all from
    one local ``torch.Generator`` seeded with ``seed`` (train, then validation, then test): the same seed gives
    the same points, and the global RNG is left alone. ``seed`` also sets the order of the training batches.
    Each split has ``n // 2`` points of class 0 and ``n - n // 2`` of class 1, shuffled.

    Inputs are float32 ``(n, 2)`` (unnormalized: they pass to the model unchanged), targets long ``(n,)``;
    ``input_size = 2``, ``num_classes = 2``. The points are in ``datasets[split].inputs`` and
    ``datasets[split].targets`` after :meth:`setup` (what a plot of the decision boundary draws).

    Args:
        dataset: ``"moons"`` or ``"circles"``.
        num_samples: training points, >= 2.
        noise: standard deviation of the Gaussian noise added to each coordinate, >= 0.
        val_samples: validation points, >= 2; None for ``num_samples``.
        test_samples: test points, >= 2; None for ``num_samples``.
        factor: ``"circles"`` only: radius of the inner circle, in (0, 1).
        batch_size: samples per batch.
        seed: seed of the points, the noise and the batch order.
        num_workers: ``DataLoader`` workers.

    Raises:
        ValueError: naming the argument, for an unknown ``dataset`` or a value out of range.

    Example:
        >>> dm = ToyClassificationDataModule("moons")
        >>> dm.setup()
        >>> [tuple(dm.datasets[s].inputs.shape) for s in ("train", "val", "test")]
        [(100, 2), (100, 2), (100, 2)]
        >>> dm.datasets["train"].targets.bincount().tolist(), dm.num_classes, dm.input_size
        ([50, 50], 2, 2)
    """

    input_size = 2
    num_classes = 2
    classes = ["0", "1"]
    DATASETS = ("moons", "circles")

    def __init__(
        self,
        dataset: Literal["moons", "circles"] = "moons",
        num_samples: int = 100,
        noise: float = 0.25,
        val_samples: int | None = None,
        test_samples: int | None = None,
        factor: float = 0.5,
        batch_size: int = 32,
        seed: int = 3,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()  # checkpoints and TensorBoard's HPARAMS carry the arguments
        if dataset not in self.DATASETS:
            raise ValueError(f"`dataset` must be one of {list(self.DATASETS)}, got {dataset!r}")
        sizes = {"num_samples": num_samples, "val_samples": val_samples, "test_samples": test_samples}
        for argument, value in sizes.items():
            if value is not None and (check_positive_int(value, argument) < 2):
                raise ValueError(f"`{argument}` must be an integer >= 2 (one point per class), got {value!r}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise ValueError(f"`factor` must be in (0, 1) (the inner circle's radius), got {factor!r}")
        self.dataset = dataset
        self.num_samples = num_samples
        self.noise = _check_nonnegative(noise, "noise")
        self.val_samples = num_samples if val_samples is None else val_samples
        self.test_samples = num_samples if test_samples is None else test_samples
        self.factor = float(factor)
        self.classes = list(self.classes)  # an instance's own list: editing it leaves the class attribute alone

    def load_splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)
        sizes = {"train": self.num_samples, "val": self.val_samples, "test": self.test_samples}
        return {split: make_points(self.dataset, size, self.noise, generator, self.factor)
                for split, size in sizes.items()}
