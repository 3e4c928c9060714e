"""The in-memory base every datamodule of the collection shares.

Data path: files are decoded once into one tensor per split (uint8 for images); a
:class:`BatchTensorDataset` returns a whole batch from one tensor index; a standard ``DataLoader``
carries the indices (so Lightning can inject a ``DistributedSampler``); float conversion and
normalization happen on the batch, on the model's device, in :meth:`InMemoryDataModule.on_after_batch_transfer`.
With ``device_cache=True`` and a CUDA accelerator the split tensors themselves live on the GPU, so a batch is
indexed there and no step copies from host to device.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler

from datamodules.augment import BatchAugmentation, check_rotation, seeded_rotation

SPLITS = ("train", "val", "test")
#: how ``label_noise`` relabels the training samples it picks (the keys are the allowed ``label_noise_mode``)
LABEL_NOISE_MODES = {
    "other_class": "each picked sample gets a label drawn uniformly from the other classes (every one changes)",
    "shuffle": "the picked samples' labels are permuted among themselves (the lecture's; the label counts stay)",
}

log = logging.getLogger(__name__)


class BatchTensorDataset(Dataset):
    """Inputs and targets held as two tensors; ``__getitems__`` fetches a whole batch by one index.

    ``targets`` may also be a plain sequence (e.g. the file paths of images to predict); a batch then
    carries a list of them.

    Example:
        >>> ds = BatchTensorDataset(torch.arange(10).view(5, 2), torch.arange(5))
        >>> ds.__getitems__([4, 0])
        (tensor([[8, 9],
                [0, 1]]), tensor([4, 0]))
    """

    def __init__(self, inputs: Tensor, targets: Tensor | Sequence[Any]) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"inputs and targets differ in length: {len(inputs)} != {len(targets)}")
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.inputs[index], self.targets[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor | list[Any]]:
        index = torch.as_tensor(indices, dtype=torch.long, device=self.inputs.device)
        # index_select, not `inputs[index]`: the same rows, without advanced indexing's per-call setup (~10x faster)
        inputs = self.inputs.index_select(0, index)
        if isinstance(self.targets, Tensor):
            return inputs, self.targets.index_select(0, index)
        return inputs, [self.targets[i] for i in indices]

    def to(self, device: torch.device | str) -> BatchTensorDataset:
        """The same data on ``device`` (``self`` when it is already there)."""
        device = torch.device(device)
        movable = isinstance(self.targets, Tensor)
        if self.inputs.device == device and (not movable or self.targets.device == device):
            return self
        return BatchTensorDataset(self.inputs.to(device), self.targets.to(device) if movable else self.targets)


class EpochRandomSampler(RandomSampler):
    """A ``RandomSampler`` whose order depends only on ``seed`` and the epoch Lightning sets.

    A run resumed from a checkpoint therefore sees the same batches as an uninterrupted one. Being a
    ``RandomSampler``, Lightning still swaps it for a ``DistributedSampler`` under DDP and for a
    sequential one with ``overfit_batches``.

    Example:
        >>> sampler = EpochRandomSampler(range(5), seed=0)
        >>> sampler.set_epoch(3); first = list(sampler); sampler.set_epoch(3)
        >>> list(sampler) == first
        True
    """

    def __init__(self, data_source: Dataset, seed: int = 0) -> None:
        self.seed = seed
        super().__init__(data_source, generator=torch.Generator().manual_seed(seed))

    def set_epoch(self, epoch: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed + epoch)


def collate_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """The batch from ``__getitems__`` is already collated; pass it through."""
    return batch


def check_positive_int(value: int, argument: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}")
    return value


def check_fraction(value: float, argument: str) -> float:
    if not 0.0 < value < 1.0:
        raise ValueError(f"`{argument}` must be in (0, 1), got {value!r}")
    return value


def split_indices(num_samples: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded random train/validation split of ``range(num_samples)``: ``(train_idx, val_idx)``.

    Raises:
        ValueError: if the fraction leaves no training or no validation sample.

    Example:
        >>> train, val = split_indices(10, 0.2, seed=0)
        >>> len(train), len(val), sorted(torch.cat([train, val]).tolist()) == list(range(10))
        (8, 2, True)
    """
    num_val = round(num_samples * val_fraction)
    if num_val < 1 or num_val > num_samples - 1:
        raise ValueError(
            f"`val_fraction`={val_fraction} of {num_samples} samples leaves {num_val} for validation and "
            f"{num_samples - num_val} for training; both need at least one: pick a fraction between "
            f"{1 / num_samples:.4g} and {1 - 1 / num_samples:.4g}"
        )
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    return order[num_val:], order[:num_val]


def stratified_split_indices(targets: Tensor, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded train/validation split that keeps each class's share: :func:`split_indices` per class.

    Example:
        >>> train, val = stratified_split_indices(torch.tensor([0] * 10 + [1] * 20), 0.1, seed=0)
        >>> len(train), torch.tensor([0] * 10 + [1] * 20)[val].tolist()
        (27, [0, 1, 1])
    """
    train_parts, val_parts = [], []
    for label in torch.unique(targets).tolist():
        members = torch.nonzero(targets == label).flatten()
        train, val = split_indices(len(members), val_fraction, seed)
        train_parts.append(members[train])
        val_parts.append(members[val])
    return torch.cat(train_parts).sort().values, torch.cat(val_parts).sort().values


def balanced_subset_indices(targets: Tensor, size: int, seed: int) -> Tensor:
    """Seeded subset of ``size`` positions into ``targets`` with the classes as equally represented as possible.

    Every class gets the same share, except that a class with fewer samples than its share gives all it has and
    the others share the rest; what does not divide evenly goes one sample each to the first classes (in label
    order) that have samples left. Within a class the samples are drawn at random (seeded); the positions come
    back sorted. ``size == len(targets)`` is every position.

    Raises:
        ValueError: if ``size`` exceeds ``len(targets)``.

    Example:
        >>> targets = torch.tensor([0, 1] * 10 + [2] * 5)
        >>> torch.bincount(targets[balanced_subset_indices(targets, 9, seed=0)]).tolist()
        [3, 3, 3]
        >>> torch.bincount(targets[balanced_subset_indices(targets, 20, seed=0)]).tolist()  # class 2 has only 5
        [8, 7, 5]
    """
    if size > len(targets):
        raise ValueError(f"`train_size`={size} is larger than the training split, which has {len(targets)} samples")
    labels = torch.unique(targets).tolist()
    members = {label: torch.nonzero(targets == label).flatten() for label in labels}
    shares: dict[int, int] = {}
    open_labels, pool = list(labels), size
    while open_labels:  # classes smaller than the even share give all they have; repeat with what is left
        short = [label for label in open_labels if len(members[label]) <= pool // len(open_labels)]
        if not short:
            break
        for label in short:
            shares[label] = len(members[label])
            pool -= shares[label]
            open_labels.remove(label)
    for rank, label in enumerate(open_labels):  # the others share the rest; the remainder one each, in label order
        shares[label] = pool // len(open_labels) + (1 if rank < pool % len(open_labels) else 0)
    generator = torch.Generator().manual_seed(seed)
    parts = [members[label][torch.randperm(len(members[label]), generator=generator)[: shares[label]]]
             for label in labels]
    return torch.cat(parts).sort().values


def check_label_noise(label_noise: float, label_noise_mode: str) -> tuple[float, str]:
    """``(label_noise, label_noise_mode)`` checked: a number in [0, 1] and a key of :data:`LABEL_NOISE_MODES`."""
    if isinstance(label_noise, bool) or not isinstance(label_noise, (int, float)) or not 0 <= label_noise <= 1:
        raise ValueError(f"`label_noise` must be a number in [0, 1], got {label_noise!r}")
    if not isinstance(label_noise_mode, str) or label_noise_mode not in LABEL_NOISE_MODES:
        raise ValueError(f"`label_noise_mode` must be one of {sorted(LABEL_NOISE_MODES)}, got {label_noise_mode!r}")
    return float(label_noise), label_noise_mode


def noisy_labels(targets: Tensor, fraction: float, mode: str, num_classes: int, seed: int) -> tuple[Tensor, Tensor]:
    """``(labels, picked)``: ``round(fraction * len(targets))`` positions, drawn with ``seed``, relabeled by ``mode``.

    ``"other_class"`` moves each picked label to a uniformly drawn other class; ``"shuffle"`` permutes the picked
    labels among themselves (so the label counts do not change, and a label may land where it was). ``picked``
    are the positions drawn, sorted; ``targets`` itself is not changed.

    Example:
        >>> targets = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 0])
        >>> labels, picked = noisy_labels(targets, 0.5, "other_class", 3, seed=0)
        >>> len(picked), bool((labels[picked] != targets[picked]).all())
        (5, True)
        >>> labels, picked = noisy_labels(targets, 1.0, "shuffle", 3, seed=0)
        >>> torch.equal(labels.sort().values, targets.sort().values)
        True
    """
    generator = torch.Generator().manual_seed(seed)
    count = round(fraction * len(targets))
    picked = torch.randperm(len(targets), generator=generator)[:count].sort().values
    labels = targets.clone()
    if mode == "other_class":
        offsets = torch.randint(1, num_classes, (count,), generator=generator)
        labels[picked] = (targets[picked] + offsets) % num_classes
    else:
        labels[picked] = targets[picked][torch.randperm(count, generator=generator)]
    return labels, picked


def _histogram_mean_std(values_uint8: Tensor) -> tuple[Tensor, Tensor]:
    counts = torch.bincount(values_uint8.reshape(-1), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    total = counts.sum()
    mean = (counts * values).sum() / total
    var = (counts * (values - mean) ** 2).sum() / (total - 1)
    return mean.float(), var.sqrt().float()


def uint8_mean_std(images: Tensor, per_channel: bool = False) -> tuple[Tensor, Tensor]:
    """Mean and std of uint8 ``images`` scaled to [0, 1], from a 256-bin histogram (no float copy).

    Args:
        images: uint8 tensor; with ``per_channel`` it is ``(N, C, ...)``.
        per_channel: one mean/std per channel (dimension 1), shaped ``(C, 1, ..., 1)`` so it broadcasts
            over a ``(B, C, ...)`` batch; otherwise one global value, shape ``(1,)``.

    Example:
        >>> mean, std = uint8_mean_std(torch.tensor([0, 255], dtype=torch.uint8))
        >>> round(mean.item(), 4), round(std.item(), 4)
        (0.5, 0.7071)
        >>> uint8_mean_std(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), per_channel=True)[0].shape
        torch.Size([3, 1, 1])
    """
    if not per_channel:
        mean, std = _histogram_mean_std(images)
        return mean.reshape(1), std.reshape(1)
    stats = [_histogram_mean_std(images.select(1, c)) for c in range(images.shape[1])]
    shape = (images.shape[1],) + (1,) * (images.dim() - 2)
    return torch.stack([m for m, _ in stats]).reshape(shape), torch.stack([s for _, s in stats]).reshape(shape)


class InMemoryDataModule(pl.LightningDataModule):
    """Base datamodule: one in-memory tensor pair per split, batches by one tensor index.

    Subclasses implement :meth:`load_splits` (decode files or generate data, once) and set the sizes the
    models need right in ``__init__``: ``input_size`` and either ``num_classes`` (classification,
    with ``classes``) or ``output_size`` (regression).

    Normalization: uint8 inputs become floats in [0, 1]; when :attr:`mean`/:attr:`std` are set (from the
    training split, by :meth:`fit_normalization`) the batch is standardized with them. Both are part of
    the datamodule's ``state_dict``, so they travel in checkpoints.

    Augmentation: :meth:`augment_batch` applies :attr:`augmentation` (a
    :class:`~datamodules.augment.BatchAugmentation` a subclass sets, or None) to training batches only, on the
    float [0, 1] batch before standardization; validation, test and predict batches are never augmented.

    Shifted test set: with ``test_rotation`` > 0, :meth:`setup` also holds ``datasets["test_rotated"]``, every
    test image rotated by its own angle in ``[-test_rotation, test_rotation]`` degrees (nearest neighbour,
    corners black: the lecture's ``RandomRotation(test_rotation, fill=0)``), the angles drawn from ``seed``, so
    they are the same on every run. :attr:`test_split` names the split ``test_dataloader`` serves:
    ``"test_rotated"`` when ``test_rotation`` > 0, else ``"test"``; set it to ``"test"`` to evaluate on the
    un-rotated images with the same datamodule.

    Label noise (classification only): :meth:`setup` relabels ``round(label_noise * n)`` of the ``n`` training
    samples, picked with ``seed`` (the same ones, with the same new labels, on every run), as ``label_noise_mode``
    says: ``"other_class"`` gives each a label drawn from the other classes (every one changes, so with
    ``label_noise=1.0`` a net that learns anything learns to avoid the true class: *below* chance on clean data);
    ``"shuffle"`` permutes their labels among themselves, as lecture 002's "random labels" set does (the label
    counts stay; with ``label_noise=1.0`` about ``1 - 1/C`` of ``C`` balanced classes' labels change). Validation
    and test labels never change.

    Args:
        batch_size: samples per batch, > 0.
        num_workers: ``DataLoader`` worker processes (0 loads in the main process, which is fastest for
            in-memory data).
        seed: seed for splits and any generated data.
        pin_memory: pin host memory of batches so the copy to the GPU is asynchronous; ``None`` (default)
            pins exactly when the Trainer's device is CUDA and ``device_cache`` is not in effect.
        device_cache: when the Trainer's device is CUDA, move every split to the GPU once, so batches are
            indexed there and no step copies from host to device (loaders then run in the main process).
            On CPU it changes nothing; batches and results are the same either way.
        test_rotation: largest rotation in degrees of the rotated test split, in [0, 180]; 0 builds none.
        label_noise: share of the training samples to relabel, in [0, 1].
        label_noise_mode: ``"other_class"`` or ``"shuffle"`` (see above).

    Attributes:
        clean_train_targets: the training labels before the label noise, after :meth:`setup`.
        relabeled_indices: the ``round(label_noise * n)`` training samples picked for new labels (sorted).
        noisy_indices: the training samples whose label now differs from :attr:`clean_train_targets` (sorted;
            with ``"shuffle"`` a picked sample may keep its label).

    Raises:
        ValueError: an argument is out of range (at ``__init__``), or ``label_noise`` > 0 for regression targets.
    """

    input_size: int
    num_classes: int | None = None
    output_size: int | None = None
    classes: list[str] | None = None

    def __init__(self, batch_size: int = 64, num_workers: int = 0, seed: int = 42, pin_memory: bool | None = None,
                 device_cache: bool = False, test_rotation: float = 0.0, label_noise: float = 0.0,
                 label_noise_mode: str = "other_class") -> None:
        super().__init__()
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"`num_workers` must be an integer >= 0, got {num_workers!r}")
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory
        self.device_cache = device_cache
        self.test_rotation = check_rotation(test_rotation, "test_rotation")
        self.test_split = "test_rotated" if self.test_rotation else "test"
        self.label_noise, self.label_noise_mode = check_label_noise(label_noise, label_noise_mode)
        self.clean_train_targets: Tensor | None = None
        self.relabeled_indices: Tensor | None = None
        self.noisy_indices: Tensor | None = None
        self.augmentation: BatchAugmentation | None = None
        self.datasets: dict[str, BatchTensorDataset] = {}
        self._device_datasets: dict[str, BatchTensorDataset] = {}
        self.mean: Tensor | None = None
        self.std: Tensor | None = None
        self._cached_statistics_255: tuple[Any, ...] | None = None

    @abstractmethod
    def load_splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        """Return ``{"train": (x, y), "val": (x, y), "test": (x, y)}``, decoded or generated once."""

    def setup(self, stage: str | None = None) -> None:
        """Load every split once (any stage); later calls do nothing."""
        if "train" in self.datasets:
            return
        splits = self.load_splits()
        if "train" in splits:
            splits["train"] = (splits["train"][0], self.apply_label_noise(splits["train"][1]))
        self.datasets.update({name: BatchTensorDataset(*tensors) for name, tensors in splits.items()})
        if self.test_rotation and "test" in splits:
            images, targets = splits["test"]
            self.datasets["test_rotated"] = BatchTensorDataset(
                seeded_rotation(images, self.test_rotation, self.seed), targets)
        if self.mean is None:
            self.fit_normalization(splits["train"][0])

    def apply_label_noise(self, targets: Tensor) -> Tensor:
        """The training labels with ``label_noise`` applied (see the class docstring); sets
        :attr:`clean_train_targets`, :attr:`relabeled_indices` and :attr:`noisy_indices` for class labels.

        Raises:
            ValueError: if ``label_noise`` > 0 and the datamodule has no classes (regression targets).
        """
        if self.num_classes is None:
            if self.label_noise:
                raise ValueError(f"`label_noise`={self.label_noise:g} relabels classes, but {type(self).__name__} "
                                 "has regression targets; leave it at 0")
            return targets
        labels, self.relabeled_indices = noisy_labels(targets, self.label_noise, self.label_noise_mode,
                                                      self.num_classes, self.seed + 1)  # another stream than splits'
        self.clean_train_targets = targets
        self.noisy_indices = torch.nonzero(labels != targets).flatten()
        if self.label_noise:
            log.info("%s: label_noise=%g (%s) relabeled %d of %d training samples and changed %d labels (seed %d); "
                     "their indices are in `relabeled_indices` and `noisy_indices`", type(self).__name__,
                     self.label_noise, self.label_noise_mode, len(self.relabeled_indices), len(labels),
                     len(self.noisy_indices), self.seed)
        return labels

    def fit_normalization(self, train_inputs: Tensor) -> None:
        """Set :attr:`mean`/:attr:`std` from the training inputs. The base leaves inputs unnormalized."""

    def augment_batch(self, x: Tensor) -> Tensor:
        """Augment a training batch (float, in [0, 1]) with :attr:`augmentation`; unchanged when it is None."""
        return x if self.augmentation is None else self.augmentation(x)

    def transform_inputs(self, x: Tensor, augment: bool = False) -> Tensor:
        """uint8 → float in [0, 1], :meth:`augment_batch` if ``augment``, then standardize with the
        training statistics if set.

        Without augmentation a uint8 batch is standardized straight from its 0-255 values,
        ``(x - 255·mean) / (255·std)``, in place on the float copy: the same values to float rounding,
        two passes over the batch fewer.
        """
        if x.dtype == torch.uint8 and not augment and self.mean is not None and self.std is not None:
            mean_255, std_255 = self._statistics_255(x.device)
            return x.float().sub_(mean_255).div_(std_255)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        if augment:
            x = self.augment_batch(x)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return x

    def _statistics_255(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """``255·mean`` and ``255·std`` on ``device``, computed once per (mean, std, device)."""
        cached = self._cached_statistics_255
        if cached is None or cached[0] is not self.mean or cached[1] is not self.std or cached[2] != device:
            cached = (self.mean, self.std, device, self.mean.to(device) * 255.0, self.std.to(device) * 255.0)
            self._cached_statistics_255 = cached
        return cached[3], cached[4]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = getattr(self, "trainer", None)
        augment = trainer is not None and trainer.training
        if isinstance(batch, (tuple, list)):
            return (self.transform_inputs(batch[0], augment), *batch[1:])
        return self.transform_inputs(batch, augment)

    @property
    def target_device(self) -> torch.device:
        """The device batches go to: the attached Trainer's root device, else the CPU."""
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _dataset(self, split: str, device: torch.device) -> BatchTensorDataset:
        """The split's dataset, moved to ``device`` once (and kept) when ``device_cache`` applies there."""
        if not (self.device_cache and device.type == "cuda"):
            return self.datasets[split]
        cached = self._device_datasets.get(split)
        if cached is None or cached.inputs.device != device:
            cached = self._device_datasets[split] = self.datasets[split].to(device)
        return cached

    def _dataloader(self, split: str, shuffle: bool = False) -> DataLoader:
        if split not in self.datasets:
            self.setup()
        if split not in self.datasets:
            raise ValueError(f"{type(self).__name__} has no {split!r} split; it has {sorted(self.datasets)}")
        device = self.target_device
        dataset = self._dataset(split, device)
        on_host = dataset.inputs.device.type == "cpu"
        pin_memory = (device.type == "cuda") if self.pin_memory is None else self.pin_memory
        num_workers = self.num_workers if on_host else 0
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochRandomSampler(dataset, self.seed) if shuffle else None,
            num_workers=num_workers,
            collate_fn=collate_batch,
            pin_memory=pin_memory and on_host,
            persistent_workers=num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._dataloader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._dataloader("val")

    def test_dataloader(self) -> DataLoader:
        """The :attr:`test_split`: the test images, rotated when ``test_rotation`` > 0."""
        return self._dataloader(self.test_split)

    def predict_dataloader(self) -> DataLoader:
        return self._dataloader("test")

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.mean = state_dict.get("mean")
        self.std = state_dict.get("std")
