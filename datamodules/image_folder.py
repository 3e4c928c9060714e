"""Any torchvision ImageFolder tree (``<root>/<class>/<image>``), decoded once into uint8 tensors."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF

from datamodules.augment import BatchAugmentation
from datamodules.base import (
    BatchTensorDataset,
    InMemoryDataModule,
    check_fraction,
    check_positive_int,
    stratified_split_indices,
    uint8_mean_std,
)

log = logging.getLogger(__name__)

#: bump when the decoded format changes, so older cache files are not read
CACHE_VERSION = 1
DEFAULT_CACHE_DIR = "~/.cache/lit_reg"


def decode_file(path: str, image_size: int, grayscale: bool) -> Tensor:
    """Decode one image file to a uint8 ``(C, image_size, image_size)`` tensor.

    The shorter side is resized to ``image_size`` (antialiased), then the center square is cropped.

    Raises:
        RuntimeError: naming the file, when it is not a readable image.
    """
    mode = ImageReadMode.GRAY if grayscale else ImageReadMode.RGB
    try:
        image = decode_image(path, mode=mode)
    except (RuntimeError, ValueError, OSError) as err:
        raise RuntimeError(
            f"Cannot read image file {path} ({' '.join(str(err).split())}); fix or remove the file."
        ) from err
    image = TF.resize(image, [image_size], antialias=True)
    return TF.center_crop(image, [image_size, image_size])


def check_dir(path: str, argument: str) -> str:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"`{argument}` directory {path} does not exist; point it at an existing folder.")
    return path


class ImageFolderDataModule(InMemoryDataModule):
    """An ImageFolder tree (``<dir>/<class name>/<image file>``) held in memory as uint8 tensors.

    Classes are the sub-folders of ``train_dir`` (sorted, as torchvision's
    :class:`~torchvision.datasets.ImageFolder` finds them). Every image is decoded once with
    ``torchvision.io``, its shorter side resized to ``image_size`` and the center square cropped,
    optionally in grayscale; each split is then one uint8 tensor, so epochs do no decoding. The decoded
    tensors are cached in ``cache_dir`` under a key made of the file list, sizes and modification
    times and the resize/grayscale settings, so a changed file decodes the split again.

    Without ``val_dir``, a seeded stratified split of ``train_dir`` (``val_fraction`` of each class) is
    the validation set. Batches are standardized with the training split's mean and std (per channel
    for RGB) when ``normalize``; both are in the datamodule's ``state_dict``, so a checkpoint carries
    them to ``predict``. With ``augment``, training batches get a random horizontal flip (half of the
    samples), a random translation of up to ``max_shift`` pixels per sample (edges replicated) and, with
    ``rotation``, a random rotation (:class:`~datamodules.augment.BatchAugmentation`). ``test_rotation`` adds a
    rotated copy of the test split (see :class:`~datamodules.base.InMemoryDataModule`).

    ``predict_dir`` (a folder searched recursively, or one image file) gives the predict batches:
    ``(images, paths)``.

    Subclasses (e.g. a downloaded dataset) may override :meth:`prepare_data` and pass their folders here.

    Args:
        train_dir: ImageFolder root of the training images; its class folders name the classes. Read, with
            ``val_dir`` and ``test_dir``, when fit, validate or test sets up; predict needs none of them.
        val_dir: ImageFolder root of the validation images; None splits ``train_dir``.
        test_dir: ImageFolder root of the test images; None leaves no test split.
        predict_dir: a folder of images, or one image file, for ``predict``.
        image_size: side of the square images, > 0.
        grayscale: decode to one channel (else RGB).
        val_fraction: share of each class held out for validation when ``val_dir`` is None, in (0, 1).
        seed: seed of the validation split.
        augment: flip and translate training batches.
        normalize: standardize with the training mean/std (else inputs stay in [0, 1]).
        batch_size: samples per batch.
        num_workers: ``DataLoader`` workers.
        max_shift: largest translation in pixels for ``augment``, >= 0.
        cache_dir: folder for the decoded-tensor cache (``~`` expanded); None or ``""`` turns caching off.
        rotation: largest random rotation in degrees for ``augment``, in [0, 180].
        test_rotation: largest rotation of the rotated test split, in [0, 180]; 0 builds none.
        label_noise, label_noise_mode: relabel this share of the training split, by ``"other_class"`` or
            ``"shuffle"`` (see :class:`~datamodules.base.InMemoryDataModule`); validation and test labels stay.
        classes: the class names, in target order, for when ``train_dir`` is not at hand; a checkpoint holds them
            (the datamodule's hyperparameters, with ``image_size``, ``grayscale`` and, in its state, the mean/std),
            so ``lit-reg predict --ckpt_path CKPT --data.predict_dir IMAGES`` needs nothing else. With ``train_dir``
            present they must equal its class folders.

    Attributes:
        classes: class names, sorted; ``class_to_idx`` maps them to targets.
        num_classes: ``len(classes)``.
        input_size: channels × ``image_size`` × ``image_size``.

    Raises:
        FileNotFoundError: a directory (or the predict file) does not exist.
        ValueError: an argument is out of range; a folder holds no class folders or no images (the
            message lists the allowed extensions); a class folder has no images; validation or test
            classes differ from the training classes.
        RuntimeError: an image file cannot be decoded (naming the file).

    Example:
        >>> dm = ImageFolderDataModule("../shared/data/bitmoji_bw/train")  # doctest: +SKIP
        >>> dm.classes, dm.input_size  # doctest: +SKIP
        (['not_tom', 'tom'], 2500)
    """

    def __init__(
        self,
        train_dir: str | None = None,
        val_dir: str | None = None,
        test_dir: str | None = None,
        predict_dir: str | None = None,
        image_size: int = 50,
        grayscale: bool = True,
        val_fraction: float = 0.1,
        seed: int = 42,
        augment: bool = False,
        normalize: bool = True,
        batch_size: int = 32,
        num_workers: int = 0,
        max_shift: int = 4,
        cache_dir: str | None = DEFAULT_CACHE_DIR,
        rotation: float = 0.0,
        test_rotation: float = 0.0,
        label_noise: float = 0.0,
        label_noise_mode: str = "other_class",
        classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, test_rotation=test_rotation,
                         label_noise=label_noise, label_noise_mode=label_noise_mode)
        self.train_dir, self.val_dir, self.test_dir, self.predict_dir = (
            None if folder is None else str(folder) for folder in (train_dir, val_dir, test_dir, predict_dir))
        self.classes = self._class_names(classes)
        # with the classes found (the CLI hands over its own copy of the arguments): a checkpoint then rebuilds
        # this datamodule for predict, without the folders
        self.save_hyperparameters()
        self.save_hyperparameters({**self.hparams, "classes": self.classes})
        self.image_size = check_positive_int(image_size, "image_size")
        self.grayscale = grayscale
        self.val_fraction = check_fraction(val_fraction, "val_fraction")
        self.augment = augment
        self.normalize = normalize
        if not isinstance(max_shift, int) or max_shift < 0 or max_shift >= image_size:
            raise ValueError(f"`max_shift` must be an integer in [0, image_size={image_size}), got {max_shift!r}")
        self.max_shift = max_shift
        self.rotation = rotation
        self.augmentation = BatchAugmentation(hflip=True, max_shift=max_shift, rotation=rotation) if augment else None
        self.cache_dir = os.path.expanduser(cache_dir) if cache_dir else None
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        self.num_classes = len(self.classes)
        self.channels = 1 if grayscale else 3
        self.input_size = self.channels * image_size * image_size

    def _class_names(self, classes: Sequence[str] | None) -> list[str]:
        """The class folders of ``train_dir``; or ``classes`` when given and ``train_dir`` is not at hand (predicting
        from a checkpoint on another machine): the folders are then read, and checked, only by a stage that needs
        them."""
        if classes is not None:
            if isinstance(classes, str) or not classes or len(set(classes)) != len(classes):
                raise ValueError(f"`classes` must be a list of distinct class names, got {classes!r}")
            if self.train_dir is None or not os.path.isdir(self.train_dir):
                return list(classes)
        if self.train_dir is None:
            raise ValueError("ImageFolderDataModule needs `train_dir` (an ImageFolder tree: its class folders name "
                             "the classes) or `classes`; to predict with a trained model pass its checkpoint: "
                             "lit-reg predict --ckpt_path CKPT --data.predict_dir IMAGES")
        found, _ = self._find_classes(check_dir(self.train_dir, "train_dir"), "train_dir")
        if classes is not None and list(classes) != found:
            raise ValueError(f"`classes` {list(classes)} differ from the class folders {found} of `train_dir` "
                             f"{self.train_dir}; leave `classes` out to use the folders")
        return found

    def _check_folders(self) -> None:
        """Before the splits are read: every folder given exists and has the training classes."""
        if self.train_dir is None:
            raise ValueError("`train_dir` is not set: fit, validate and test read the ImageFolder tree it names; "
                             "only predict works without it")
        for argument in ("train_dir", "val_dir", "test_dir"):
            folder = getattr(self, argument)
            if folder is None:
                continue
            classes, _ = self._find_classes(check_dir(folder, argument), argument)
            if classes != self.classes:
                raise ValueError(
                    f"`{argument}` {folder} has classes {classes} but "
                    + (f"`train_dir` {self.train_dir} has" if argument != "train_dir" else "`classes` are")
                    + f" {self.classes}; both need the same class folders."
                )

    # -- finding and decoding files ---------------------------------------------------------------
    @staticmethod
    def _find_classes(folder: str, argument: str) -> tuple[list[str], dict[str, int]]:
        try:
            classes, class_to_idx = find_classes(folder)
        except FileNotFoundError as err:
            raise ValueError(
                f"`{argument}` {folder} holds no class folders; expected <{argument}>/<class name>/<image files>."
            ) from err
        return classes, class_to_idx

    def samples(self, folder: str, argument: str) -> list[tuple[str, int]]:
        """``(path, target)`` for every image of an ImageFolder tree, checking that each class has some."""
        samples = make_dataset(folder, self.class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
        if not samples:
            raise ValueError(
                f"No images found in `{argument}` {folder}; allowed extensions are {', '.join(IMG_EXTENSIONS)}."
            )
        present = {target for _, target in samples}
        for name, index in self.class_to_idx.items():
            if index not in present:
                raise ValueError(
                    f"Class folder {os.path.join(folder, name)} has no images (allowed extensions: "
                    f"{', '.join(IMG_EXTENSIONS)}); add images or remove the folder."
                )
        return samples

    def _predict_paths(self) -> list[str]:
        path = self.predict_dir
        if os.path.isfile(path):
            return [path]
        paths = sorted(str(p) for p in Path(path).rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
        if not paths:
            raise ValueError(
                f"No images found in `predict_dir` {path}; allowed extensions are {', '.join(IMG_EXTENSIONS)}."
            )
        return paths

    def _cache_path(self, paths: list[str]) -> str | None:
        if self.cache_dir is None:
            return None
        listing = []
        for path in paths:
            stat = os.stat(path)
            listing.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
        key = json.dumps([CACHE_VERSION, self.image_size, self.grayscale, listing])
        return os.path.join(self.cache_dir, f"image_folder-{hashlib.sha256(key.encode()).hexdigest()[:32]}.pt")

    def decode_files(self, paths: list[str]) -> Tensor:
        """All ``paths`` decoded into one uint8 ``(N, C, image_size, image_size)`` tensor, cached on disk."""
        cache = self._cache_path(paths)
        if cache is not None and os.path.isfile(cache):
            cached = self._read_cache(cache, len(paths))
            if cached is not None:
                return cached
        images = torch.stack([decode_file(path, self.image_size, self.grayscale) for path in paths])
        if cache is not None:
            os.makedirs(self.cache_dir, exist_ok=True)
            partial = f"{cache}.{os.getpid()}.tmp"
            torch.save(images, partial)
            os.replace(partial, cache)
        return images

    def _read_cache(self, cache: str, count: int) -> Tensor | None:
        """The tensor cached in ``cache``, or None (with a one-line warning naming the file, which is then
        rewritten) when it cannot be read or does not hold ``count`` images of this size: a cache never fails a
        run."""
        expected = (count, self.channels, self.image_size, self.image_size)
        try:
            images = torch.load(cache, weights_only=True)
            problem = None if isinstance(images, Tensor) and images.dtype == torch.uint8 and tuple(
                images.shape) == expected else f"it does not hold a uint8 tensor of shape {expected}"
        except Exception as error:  # noqa: BLE001  (truncated zip, unpickling error, ...: any of them means unreadable)
            problem = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'unreadable'}"
        if problem is None:
            return images
        log.warning("Discarding the unreadable image cache %s (%s); decoding the images again.", cache, problem)
        return None

    def read_split(self, folder: str, argument: str) -> tuple[Tensor, Tensor]:
        """Images and targets of one ImageFolder tree."""
        samples = self.samples(folder, argument)
        images = self.decode_files([path for path, _ in samples])
        return images, torch.tensor([target for _, target in samples], dtype=torch.long)

    # -- the InMemoryDataModule hooks -------------------------------------------------------------
    def load_splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        self._check_folders()
        images, targets = self.read_split(self.train_dir, "train_dir")
        if self.val_dir is None:
            train_idx, val_idx = stratified_split_indices(targets, self.val_fraction, self.seed)
            splits = {"train": (images[train_idx], targets[train_idx]), "val": (images[val_idx], targets[val_idx])}
        else:
            splits = {"train": (images, targets), "val": self.read_split(self.val_dir, "val_dir")}
        if self.test_dir is not None:
            splits["test"] = self.read_split(self.test_dir, "test_dir")
        return splits

    def setup(self, stage: str | None = None) -> None:
        """Load the predict images for ``"predict"``; every other split once for any other stage.

        For ``predict`` the training split is not read: the mean/std come from the checkpoint's
        datamodule state (``lit-reg predict --ckpt_path``).
        """
        if stage == "predict":
            if "predict" not in self.datasets:
                if self.predict_dir is None:
                    raise ValueError(
                        "`predict_dir` is not set; pass a folder of images or one image file, e.g. "
                        "--data.predict_dir ../shared/data/tom-bitmoji.png"
                    )
                if not os.path.exists(self.predict_dir):
                    raise FileNotFoundError(
                        f"`predict_dir` {self.predict_dir} does not exist; give a folder of images or one image file.")
                paths = self._predict_paths()
                self.datasets["predict"] = BatchTensorDataset(self.decode_files(paths), paths)
            return
        super().setup(stage)

    def fit_normalization(self, train_inputs: Tensor) -> None:
        if self.normalize:
            self.mean, self.std = uint8_mean_std(train_inputs, per_channel=True)

    def predict_dataloader(self) -> DataLoader:
        self.setup("predict")
        return self._dataloader("predict")
