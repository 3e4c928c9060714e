"""FashionMNIST, decoded once by torchvision into in-memory uint8 tensors."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from torch import Tensor
from torchvision.datasets import FashionMNIST

from datamodules.base import InMemoryDataModule, check_fraction, split_indices, uint8_mean_std


@contextlib.contextmanager
def network_timeout(seconds: float) -> Iterator[None]:
    """Give sockets opened inside the block a timeout, so a download without network fails fast."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


class FashionMNISTDataModule(InMemoryDataModule):
    """FashionMNIST (Zalando's 28×28 grayscale clothing images, 10 classes) held in memory.

    torchvision's :class:`~torchvision.datasets.FashionMNIST` downloads and parses the IDX files into
    ``<data_dir>/FashionMNIST/raw/``; each split is then one uint8 tensor and batches are fetched by
    one tensor index. A seeded split of the 60,000 training images gives the validation set; the
    official 10,000 test images are the test set. Batches are normalized with the mean and std of the
    training split (the validation images excluded).

    Specs: classes ``classes`` (10 names), ``input_size`` 784, ``num_classes`` 10, ``dims`` (1, 28, 28).

    Args:
        data_dir: folder holding (or receiving) ``FashionMNIST/raw/``.
        batch_size: samples per batch.
        val_fraction: fraction of the training images held out for validation, in (0, 1).
        seed: seed of the train/validation split.
        download: download the files if they are missing (``prepare_data`` does it, once).
        num_workers: ``DataLoader`` workers.
        download_timeout: seconds a download may wait on the network before giving up.
        pin_memory, device_cache: see :class:`~datamodules.base.InMemoryDataModule` (``device_cache=True``
            keeps all 70,000 images, 55 MB, on the GPU when training there).

    Raises:
        RuntimeError: when the files are missing and cannot be downloaded, naming ``data_dir`` and the
            files expected; or when a file is truncated or corrupt, naming it.

    Example:
        >>> dm = FashionMNISTDataModule(data_dir="data", download=False)
        >>> dm.input_size, dm.num_classes, dm.classes[0]
        (784, 10, 'T-shirt/top')
    """

    dims = (1, 28, 28)
    input_size = 28 * 28
    num_classes = 10
    classes: list[str] = list(FashionMNIST.classes)

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        val_fraction: float = 0.1,
        seed: int = 42,
        download: bool = True,
        num_workers: int = 0,
        download_timeout: float = 10.0,
        pin_memory: bool | None = None,
        device_cache: bool = False,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, pin_memory=pin_memory,
                         device_cache=device_cache)
        self.data_dir = str(data_dir)
        self.val_fraction = check_fraction(val_fraction, "val_fraction")
        self.download = download
        self.download_timeout = download_timeout

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.data_dir, FashionMNIST.__name__, "raw")

    def _missing_message(self, reason: str) -> str:
        files = [os.path.splitext(name)[0] for name, _ in FashionMNIST.resources]
        return (
            f"FashionMNIST not found in data_dir={self.data_dir!r} ({reason}). Expected the IDX files {files} "
            f"in {self.raw_folder}/. Either run with download=True on a machine with network access, or "
            f"download them from {FashionMNIST.mirrors[0]} and place them (gunzipped) there."
        )

    def prepare_data(self) -> None:
        """Download the files if asked and missing; assigns nothing."""
        if not self.download:
            return
        try:
            with network_timeout(self.download_timeout):
                FashionMNIST(self.data_dir, train=True, download=True)
        except (RuntimeError, OSError) as err:
            reason = " ".join(str(err).split())
            raise RuntimeError(self._missing_message(f"download failed: {reason}")) from err

    def _read_split(self, train: bool) -> tuple[Tensor, Tensor]:
        try:
            dataset = FashionMNIST(self.data_dir, train=train, download=False)
        except RuntimeError as err:
            if "Dataset not found" in str(err):
                reason = "download=False" if not self.download else "the download did not complete"
                raise RuntimeError(self._missing_message(reason)) from err
            raise self._corrupt_error(train) from err
        except (AssertionError, ValueError) as err:
            raise self._corrupt_error(train) from err
        return dataset.data, dataset.targets

    def _corrupt_error(self, train: bool) -> RuntimeError:
        prefix = "train" if train else "t10k"
        return RuntimeError(
            f"FashionMNIST file {self.raw_folder}/{prefix}-images-idx3-ubyte (or its labels file) is truncated "
            f"or corrupt. Delete the files in {self.raw_folder}/ and run again with download=True."
        )

    def load_splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        images, labels = self._read_split(train=True)
        train_idx, val_idx = split_indices(len(images), self.val_fraction, self.seed)
        return {
            "train": (images[train_idx], labels[train_idx]),
            "val": (images[val_idx], labels[val_idx]),
            "test": self._read_split(train=False),
        }

    def fit_normalization(self, train_inputs: Tensor) -> None:
        self.mean, self.std = uint8_mean_std(train_inputs)
