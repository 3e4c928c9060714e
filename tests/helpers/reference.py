"""The plain reference data path the fast one is checked against: torchvision, per-sample transforms."""

from __future__ import annotations

from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from datamodules import FashionMNISTDataModule
from datamodules.base import EpochRandomSampler, split_indices


def reference_loader(dm: FashionMNISTDataModule, split: str, shuffle: bool = False) -> DataLoader:
    """torchvision's FashionMNIST with per-sample ``ToTensor`` + ``Normalize`` (the datamodule's mean and std),
    the datamodule's seeded train/val split and batch size, default collation: no fusion, no batch index."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(dm.mean.tolist(), dm.std.tolist())])
    full = FashionMNIST(dm.data_dir, train=True, transform=transform, download=False)
    train_idx, val_idx = split_indices(len(full), dm.val_fraction, dm.seed)
    indices = {"train": train_idx, "val": val_idx}[split]
    subset = Subset(full, indices.tolist())
    sampler = EpochRandomSampler(subset, dm.seed) if shuffle else None  # the same order as the datamodule's
    return DataLoader(subset, batch_size=dm.batch_size, sampler=sampler)
