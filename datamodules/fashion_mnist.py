"""FashionMNIST, read from Zalando's IDX files (gzipped or not) into in-memory uint8 tensors."""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import socket
from collections.abc import Iterator

import torch
from torch import Tensor
from torchvision.datasets import FashionMNIST

from datamodules.augment import BatchAugmentation
from datamodules.base import (
    InMemoryDataModule,
    balanced_subset_indices,
    check_fraction,
    check_positive_int,
    split_indices,
    uint8_mean_std,
)

#: the IDX files of each split: (images, labels)
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


@contextlib.contextmanager
def network_timeout(seconds: float) -> Iterator[None]:
    """Give sockets opened inside the block a timeout, so a download without network fails fast."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


class CorruptFileError(ValueError):
    """An IDX file whose header or length is not what the format and the data set say."""


def read_idx(path: str, shape: tuple[int, ...]) -> Tensor:
    """A uint8 IDX file (``.gz`` or unpacked) as a tensor; ``shape`` gives the sizes after the first (count) one.

    Raises:
        CorruptFileError: a bad gzip stream, a header that is not uint8 IDX of ``1 + len(shape)`` dimensions
            with those sizes, or a length that differs from what the header announces.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError; a truncated stream an EOFError
        raise CorruptFileError(f"cannot be unpacked ({err})") from err
    ndim = 1 + len(shape)
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes([0, 0, 0x08, ndim]):
        raise CorruptFileError(f"does not start with the header of a uint8 IDX file of {ndim} dimensions")
    sizes = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if sizes[1:] != shape:
        raise CorruptFileError(f"holds items of shape {sizes[1:]}, expected {shape}")
    if len(data) != header + sizes[0] * math.prod(shape):
        raise CorruptFileError(f"has {len(data) - header} bytes of data where its header announces {sizes}")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(sizes)


class FashionMNISTDataModule(InMemoryDataModule):
    """FashionMNIST (Zalando's 28×28 grayscale clothing images, 10 classes) held in memory.

    Reads the four files Zalando publishes (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``), gzipped or unpacked, where they are:
    directly in ``data_dir`` (``data_dir="/usr/share/datasets/fashion-mnist"``, where Debian's package
    ``dataset-fashion-mnist`` puts them, or a folder of a manual download) or in ``<data_dir>/FashionMNIST/raw/``,
    where torchvision's download puts them. Nothing is copied or unpacked into the user's tree; headers and
    sizes are checked, not archive checksums (Debian recompresses the archives). Each split is then one uint8
    tensor and batches are fetched by one tensor index. A seeded split of the 60,000 training images gives the
    validation set; the official 10,000 test images are the test set. Batches are normalized with the mean and
    std of the training split (the validation images excluded).

    Specs: classes ``classes`` (10 names), ``input_size`` 784, ``num_classes`` 10, ``dims`` (1, 28, 28).

    Args:
        data_dir: folder holding the four files, or ``FashionMNIST/raw/`` with them (downloads go there).
        batch_size: samples per batch.
        val_fraction: fraction of the training images held out for validation, in (0, 1).
        seed: seed of the train/validation split, of ``train_size``'s subset, of the rotated test set and of the
            label noise.
        download: download the files with torchvision if they are not found (``prepare_data`` does it, once).
        num_workers: ``DataLoader`` workers.
        download_timeout: seconds a download may wait on the network before giving up.
        pin_memory, device_cache: see :class:`~datamodules.base.InMemoryDataModule` (``device_cache=True``
            keeps all 70,000 images, 55 MB, on the GPU when training there).
        train_size: train on a seeded, class-balanced subset of this many images of the training split
            (None: all of it, 54,000 with the default ``val_fraction``); validation and test stay whole.
        augment: augment training batches (:class:`~datamodules.augment.BatchAugmentation`): a random rotation
            within ``rotation`` degrees, a shift of up to ``max_shift`` pixels and, with ``hflip``, a left-right
            flip of half the images.
        rotation, max_shift, hflip: the augmentation's ranges.
        test_rotation: also hold the test set rotated by seeded angles within this many degrees and test on
            it (the lecture's ``RandomRotation(25, fill=0)``); see :class:`~datamodules.base.InMemoryDataModule`.
        label_noise: share of the training images (after ``train_size``) to relabel, in [0, 1]; validation and
            test labels never change.
        label_noise_mode: ``"other_class"`` (a label of another class) or ``"shuffle"`` (the picked images' labels
            permuted among themselves, as lecture 002's random labels); see
            :class:`~datamodules.base.InMemoryDataModule`.

    Raises:
        RuntimeError: when the files are missing and cannot be downloaded, naming ``data_dir`` and the
            files expected; or when a file is truncated, corrupt or of the wrong size, naming it.

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
        train_size: int | None = None,
        augment: bool = False,
        rotation: float = 10.0,
        max_shift: int = 2,
        hflip: bool = True,
        test_rotation: float = 0.0,
        label_noise: float = 0.0,
        label_noise_mode: str = "other_class",
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, pin_memory=pin_memory,
                         device_cache=device_cache, test_rotation=test_rotation, label_noise=label_noise,
                         label_noise_mode=label_noise_mode)
        self.save_hyperparameters()  # checkpoints and TensorBoard's HPARAMS carry the arguments
        self.data_dir = str(data_dir)
        self.val_fraction = check_fraction(val_fraction, "val_fraction")
        self.download = download
        self.download_timeout = download_timeout
        self.train_size = None if train_size is None else check_positive_int(train_size, "train_size")
        self.augment = augment
        augmentation = BatchAugmentation(hflip=hflip, max_shift=max_shift, rotation=rotation)  # checks the ranges
        self.augmentation = augmentation if augment else None

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.data_dir, FashionMNIST.__name__, "raw")

    def find_file(self, name: str) -> str | None:
        """Where the file ``name`` is: ``raw_folder`` first, then ``data_dir``; unpacked before ``.gz``."""
        for folder in (self.raw_folder, self.data_dir):
            for candidate in (name, name + ".gz"):
                path = os.path.join(folder, candidate)
                if os.path.isfile(path):
                    return path
        return None

    def _check_exists(self) -> bool:
        return all(self.find_file(name) is not None for names in FILES.values() for name in names)

    def _missing_message(self, reason: str) -> str:
        missing = [name for names in FILES.values() for name in names if self.find_file(name) is None]
        return (
            f"FashionMNIST not found in data_dir={self.data_dir!r} ({reason}): no {', '.join(missing)} (nor .gz) in "
            f"{self.data_dir}/ or {self.raw_folder}/. Get the four files with download=True on a machine with "
            f"network access, or install Debian's package dataset-fashion-mnist and pass "
            f"data_dir=/usr/share/datasets/fashion-mnist, or download them from {FashionMNIST.mirrors[0]} "
            f"into data_dir."
        )

    def prepare_data(self) -> None:
        """Download the files if asked and not found; assigns nothing."""
        if not self.download or self._check_exists():
            return
        try:
            with network_timeout(self.download_timeout):
                FashionMNIST(self.data_dir, train=True, download=True)
        except (RuntimeError, OSError) as err:
            reason = " ".join(str(err).split())
            raise RuntimeError(self._missing_message(f"download failed: {reason}")) from err

    def _read_split(self, split: str) -> tuple[Tensor, Tensor]:
        if not self._check_exists():
            reason = "download=False" if not self.download else "the download did not run or did not complete"
            raise RuntimeError(self._missing_message(reason))
        images_name, labels_name = FILES[split]
        images = self._read(images_name, (28, 28))
        labels = self._read(labels_name, ())
        largest = int(labels.max()) if labels.numel() else 0
        if len(images) != len(labels) or largest >= self.num_classes:
            raise RuntimeError(
                f"FashionMNIST file {self.find_file(labels_name)} does not match {self.find_file(images_name)} "
                f"({len(labels)} labels for {len(images)} images, largest label {largest}): "
                f"replace both with the files of one download."
            )
        return images, labels.long()

    def _read(self, name: str, shape: tuple[int, ...]) -> Tensor:
        path = self.find_file(name)
        try:
            return read_idx(path, shape)
        except CorruptFileError as err:
            raise RuntimeError(
                f"FashionMNIST file {path} is truncated or corrupt: it {err}. Replace it with the file from "
                f"{FashionMNIST.mirrors[0]} (or delete the files in {self.raw_folder}/ and run with download=True)."
            ) from err

    def load_splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        images, labels = self._read_split("train")
        train_idx, val_idx = split_indices(len(images), self.val_fraction, self.seed)
        if self.train_size is not None:
            train_idx = train_idx[balanced_subset_indices(labels[train_idx], self.train_size, self.seed)]
        return {
            "train": (images[train_idx], labels[train_idx]),
            "val": (images[val_idx], labels[val_idx]),
            "test": self._read_split("test"),
        }

    def fit_normalization(self, train_inputs: Tensor) -> None:
        self.mean, self.std = uint8_mean_std(train_inputs)
