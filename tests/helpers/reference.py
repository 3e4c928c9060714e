"""The plain reference data path the fast one is checked against: torchvision, per-sample transforms, and a
training order defined independently of the datamodule's sampler."""

from __future__ import annotations

from torch.utils.data import DataLoader, DistributedSampler, Subset
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from datamodules import FashionMNISTDataModule
from datamodules.base import split_indices


def epoch_seeded_sampler(dataset: Subset, seed: int) -> DistributedSampler:
    """The training order README promises, from torch's own implementation of it, not ours: a permutation
    that is a function of ``seed`` and the epoch only (``set_epoch``). torch's ``DistributedSampler`` with a
    single replica is exactly that: epoch ``e`` is ``randperm(n)`` of a generator seeded with ``seed + e``,
    no padding and nothing dropped."""
    return DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed, drop_last=False)


def reference_loader(dm: FashionMNISTDataModule, split: str, shuffle: bool = False) -> DataLoader:
    """torchvision's FashionMNIST with per-sample ``ToTensor`` + ``Normalize`` (the datamodule's mean and std),
    the datamodule's seeded train/val split and batch size, default collation: no fusion, no batch index.
    With ``shuffle`` the order is :func:`epoch_seeded_sampler`'s (call ``loader.sampler.set_epoch(e)``)."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(dm.mean.tolist(), dm.std.tolist())])
    full = FashionMNIST(dm.data_dir, train=True, transform=transform, download=False)
    train_idx, val_idx = split_indices(len(full), dm.val_fraction, dm.seed)
    indices = {"train": train_idx, "val": val_idx}[split]
    subset = Subset(full, indices.tolist())
    sampler = epoch_seeded_sampler(subset, dm.seed) if shuffle else None
    return DataLoader(subset, batch_size=dm.batch_size, sampler=sampler)
