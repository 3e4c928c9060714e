"""Animal Faces (AFHQ: cat, dog, wild) at 32×32, with seeded subsets and label noise for the memorization
experiment of the regularization lecture."""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import urllib.error
import zipfile

import torch
from torch import Tensor
from torchvision.datasets.utils import calculate_md5, download_url, extract_archive

from datamodules.base import InMemoryDataModule, check_positive_int
from datamodules.fashion_mnist import network_timeout
from datamodules.image_folder import DEFAULT_CACHE_DIR, ImageFolderDataModule

#: what a failed download or extraction can raise (http.client.IncompleteRead is no OSError)
DOWNLOAD_ERRORS = (OSError, RuntimeError, ValueError, EOFError, http.client.HTTPException, zipfile.BadZipFile)


def check_optional_size(value: int | None, argument: str) -> int | None:
    return None if value is None else check_positive_int(value, argument)


class AnimalFacesDataModule(InMemoryDataModule):
    """Animal Faces (AFHQ) images held in memory: seeded train/validation subsets, optional label noise.

    The archive (the lecture's ``afhq.zip``, 32×32 images: 14,630 in ``train/``, 1,500 in ``val/``) is
    downloaded by ``prepare_data`` with torchvision's ``download_url`` (progress bar included), checked (md5
    if given, then every member's CRC) and extracted with ``extract_archive`` into a hidden staging folder
    in ``data_dir``; only a complete tree is then renamed to ``<data_dir>/afhq``, so an interrupted or failed
    download never leaves a tree that looks extracted, and the staging folder (archive included) is removed
    whatever happens. A tree already in place (``train/{cat,dog,wild}`` and ``val/{cat,dog,wild}``) is used
    as is, without any request.

    Images are decoded once by :class:`~datamodules.ImageFolderDataModule` (RGB, shorter side resized to
    ``image_size``, center crop, uint8 tensors cached in ``cache_dir``) and normalized as in the lecture
    (``ToTensor`` + ``Normalize((0.5,)*3, (0.5,)*3)``): fixed statistics, not the training split's.

    Splits: a seeded permutation of the training folder gives the validation subset (its first
    ``val_size`` images) and then the training subset (the next ``train_size``); the rest of the folder
    is unused (the lecture: 100 / 100 / 14,430). ``val_size=None`` takes 10 % of the folder
    (:attr:`default_val_fraction`), ``train_size=None`` all the images left. ``val/`` is the test split.
    Only the files of the chosen subsets are decoded.

    Label noise (:class:`~datamodules.base.InMemoryDataModule`): ``round(label_noise * len(train))`` training
    samples, picked with ``seed``, are relabeled. ``label_noise_mode="shuffle"`` permutes their labels among
    themselves, as the lecture's archives do (``label_noise=1.0``: "afhq_random", every label shuffled; ``0.15``:
    its partially shuffled set); ``"other_class"`` (the default) gives each a label drawn uniformly from the
    *other* classes, so every picked label is wrong. Validation and test labels never change.

    Specs: ``classes`` ``["cat", "dog", "wild"]``, ``num_classes`` 3, ``input_size`` ``3 * image_size**2``,
    known right after ``__init__`` (no file is read).

    Args:
        data_dir: folder holding (or receiving) ``afhq/``.
        image_size: side of the square images, > 0 (the archive's images are 32×32).
        train_size: training images drawn from ``train/``; None: all not drawn for validation.
        val_size: validation images drawn from ``train/``; None: 10 % of the folder.
        label_noise: share of the training subset to relabel, in [0, 1].
        label_noise_mode: ``"other_class"`` (a label of another class) or ``"shuffle"`` (the picked samples' labels
            permuted among themselves, the lecture's).
        seed: seed of the subsets and of the label noise.
        batch_size: samples per batch.
        download: download and extract the archive in ``prepare_data`` when the tree is missing.
        url: where the archive is (a mirror may be given).
        md5: md5 of the archive, checked after the download; None checks only that it is a valid zip.
        num_workers: ``DataLoader`` workers.
        cache_dir: folder for the decoded-tensor cache; None or ``""`` turns caching off.
        download_timeout: seconds a download may wait on the network before giving up.
        pin_memory, device_cache: see :class:`~datamodules.base.InMemoryDataModule`.
        test_rotation: also hold the test images rotated by seeded angles within this many degrees and test on
            them (see :class:`~datamodules.base.InMemoryDataModule`).

    Attributes:
        root: ``<data_dir>/afhq``.
        noisy_indices: indices into the training subset whose label was changed (sorted), after ``setup``.
        relabeled_indices: indices into the training subset picked for relabeling (sorted), after ``setup``.
        clean_train_targets: the training subset's labels before the noise, after ``setup``.

    Raises:
        ValueError: an argument is out of range (at ``__init__``), or ``train_size``/``val_size`` ask for more
            images than the training folder has (at ``setup``, naming the count available).
        RuntimeError: the download or the archive fails (naming the URL, what went wrong and what to do; the
            partial file is removed so the next run downloads again), or the tree is missing at ``setup``
            (naming ``<data_dir>/afhq`` and the expected layout).

    Example:
        >>> dm = AnimalFacesDataModule(data_dir="data", train_size=100, val_size=100, download=False)
        >>> dm.classes, dm.num_classes, dm.input_size
        (['cat', 'dog', 'wild'], 3, 3072)
    """

    classes: list[str] = ["cat", "dog", "wild"]
    num_classes = 3
    folder_name = "afhq"
    archive_name = "afhq.zip"
    #: validation share of the training folder when ``val_size`` is None
    default_val_fraction = 0.1
    #: the lecture's normalization: ``Normalize((0.5,)*3, (0.5,)*3)``
    mean_std = (0.5, 0.5)

    def __init__(
        self,
        data_dir: str = "data",
        image_size: int = 32,
        train_size: int | None = None,
        val_size: int | None = None,
        label_noise: float = 0.0,
        label_noise_mode: str = "other_class",
        seed: int = 2021,
        batch_size: int = 128,
        download: bool = True,
        url: str = "https://osf.io/kgfvj/download",
        md5: str | None = None,
        num_workers: int = 0,
        cache_dir: str | None = DEFAULT_CACHE_DIR,
        download_timeout: float = 10.0,
        pin_memory: bool | None = None,
        device_cache: bool = False,
        test_rotation: float = 0.0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, pin_memory=pin_memory,
                         device_cache=device_cache, test_rotation=test_rotation, label_noise=label_noise,
                         label_noise_mode=label_noise_mode)
        self.save_hyperparameters()  # checkpoints and TensorBoard's HPARAMS carry the arguments
        self.data_dir = str(data_dir)
        self.image_size = check_positive_int(image_size, "image_size")
        self.train_size = check_optional_size(train_size, "train_size")
        self.val_size = check_optional_size(val_size, "val_size")
        self.download = download
        self.url = url
        self.md5 = md5
        self.cache_dir = cache_dir
        self.download_timeout = download_timeout
        self.dims = (3, image_size, image_size)
        self.input_size = 3 * image_size * image_size
        self.fit_normalization(None)

    # -- files ------------------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return os.path.join(self.data_dir, self.folder_name)

    def _class_dirs(self, root: str) -> list[str]:
        return [os.path.join(root, split, name) for split in ("train", "val") for name in self.classes]

    def _check_exists(self, root: str | None = None) -> bool:
        """Whether ``root`` (default :attr:`root`) has every ``{train,val}/{cat,dog,wild}`` folder."""
        return all(os.path.isdir(path) for path in self._class_dirs(root or self.root))

    def _layout(self) -> str:
        return f"{self.root}/train/{{{','.join(self.classes)}}}/ and {self.root}/val/{{{','.join(self.classes)}}}/"

    def _missing_message(self, reason: str) -> str:
        return (
            f"Animal Faces (AFHQ) not found in data_dir={self.data_dir!r} ({reason}). Expected the image folders "
            f"{self._layout()}. Either run with download=True on a machine with network access (prepare_data(), "
            f"which Trainer.fit calls, downloads it), or download {self.archive_name} from {self.url} and extract "
            f"it into {self.data_dir}/."
        )

    def prepare_data(self) -> None:
        """Download and extract the archive if asked and the tree is missing; assigns nothing."""
        if self.download:
            self.download_and_extract()

    def download_and_extract(self) -> None:
        """Download, check and extract the archive into :attr:`root` unless the tree is there (idempotent).

        Raises:
            RuntimeError: if :attr:`root` exists but is incomplete, or the download or archive fails.
        """
        if self._check_exists():
            return
        if os.path.exists(self.root):
            missing = [path for path in self._class_dirs(self.root) if not os.path.isdir(path)]
            raise RuntimeError(
                f"{self.root} exists but is incomplete (missing {', '.join(missing)}); remove it to download "
                f"the archive again, or complete it to the layout {self._layout()}."
            )
        os.makedirs(self.data_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{self.folder_name}-download-", dir=self.data_dir)
        try:
            archive = os.path.join(staging, self.archive_name)
            try:
                with network_timeout(self.download_timeout):
                    download_url(self.url, staging, filename=self.archive_name)
            except (urllib.error.URLError, *DOWNLOAD_ERRORS) as err:
                raise self._download_error(f"download failed: {' '.join(str(err).split())}") from err
            self._check_archive(archive)
            extracted = os.path.join(staging, "extracted")
            try:
                extract_archive(archive, extracted)
            except DOWNLOAD_ERRORS as err:
                raise self._download_error(f"extraction failed: {' '.join(str(err).split())}") from err
            tree = next((path for path in (os.path.join(extracted, self.folder_name), extracted)
                         if self._check_exists(path)), None)
            if tree is None:
                raise self._download_error(f"the archive holds no {self.folder_name}/ tree with train/ and val/ "
                                           f"folders for {self.classes}")
            try:
                os.rename(tree, self.root)
            except OSError:
                if not self._check_exists():  # another process may have put the tree in place meanwhile
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _check_archive(self, archive: str) -> None:
        if self.md5 is not None:
            actual = calculate_md5(archive)
            if actual != self.md5:
                raise self._download_error(f"md5 mismatch: the file has {actual}, expected {self.md5}; the "
                                           "download was incomplete or the file changed")
        try:
            with zipfile.ZipFile(archive) as zipped:
                bad = zipped.testzip()
        except DOWNLOAD_ERRORS as err:
            raise self._download_error(f"not a complete zip archive ({' '.join(str(err).split())}); the "
                                       "connection may have dropped mid-file") from err
        if bad is not None:
            raise self._download_error(f"the archive member {bad} is corrupt")

    def _download_error(self, reason: str) -> RuntimeError:
        return RuntimeError(
            f"Downloading the Animal Faces archive {self.archive_name} from {self.url} into {self.data_dir}/ failed "
            f"({reason}). The partial file was removed and no {self.root} tree was written: run again with "
            f"download=True to download it again, pass url= a mirror (and md5=), or download and extract it "
            f"yourself so that {self._layout()} exist."
        )

    # -- splits -----------------------------------------------------------------------------------
    def _folder(self) -> ImageFolderDataModule:
        """The ImageFolder reader (decoding and cache) for the extracted tree."""
        if not self._check_exists():
            reason = "download=False" if not self.download else "the download did not run or did not complete"
            raise RuntimeError(self._missing_message(reason))
        folder = ImageFolderDataModule(
            os.path.join(self.root, "train"), val_dir=os.path.join(self.root, "val"), image_size=self.image_size,
            grayscale=False, normalize=False, seed=self.seed, cache_dir=self.cache_dir,
        )
        if folder.classes != self.classes:
            raise RuntimeError(f"{self.root} has the classes {folder.classes}, expected {self.classes}; "
                               f"remove extra folders so that only {self._layout()} remain.")
        return folder

    def subset_indices(self, num_images: int) -> tuple[Tensor, Tensor]:
        """Seeded ``(train_idx, val_idx)`` into a training folder of ``num_images`` images (disjoint).

        Raises:
            ValueError: if ``val_size`` or ``train_size`` asks for more images than there are.
        """
        num_val = self.val_size if self.val_size is not None else max(1, round(self.default_val_fraction * num_images))
        if num_val > num_images:
            raise ValueError(f"`val_size`={num_val} is larger than the training folder {self.root}/train, "
                             f"which has {num_images} images")
        left = num_images - num_val
        num_train = self.train_size if self.train_size is not None else left
        if num_train > left or num_train < 1:
            raise ValueError(f"`train_size`={num_train} is larger than the {left} images available in "
                             f"{self.root}/train after the {num_val} validation images ({num_images} in all)")
        order = torch.randperm(num_images, generator=torch.Generator().manual_seed(self.seed))
        return order[num_val:num_val + num_train], order[:num_val]

    def load_splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        folder = self._folder()
        samples = folder.samples(folder.train_dir, "train_dir")
        train_idx, val_idx = self.subset_indices(len(samples))

        def decode(indices: Tensor) -> tuple[Tensor, Tensor]:
            chosen = [samples[i] for i in indices.tolist()]
            targets = torch.tensor([target for _, target in chosen], dtype=torch.long)
            return folder.decode_files([path for path, _ in chosen]), targets

        return {
            "train": decode(train_idx),
            "val": decode(val_idx),
            "test": folder.read_split(folder.val_dir, "val_dir"),
        }

    def fit_normalization(self, train_inputs: Tensor | None) -> None:
        """The lecture's fixed statistics (0.5 per channel), whatever the images."""
        mean, std = self.mean_std
        self.mean, self.std = torch.full((3, 1, 1), mean), torch.full((3, 1, 1), std)
