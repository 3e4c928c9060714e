"""Small data sets written in the real on-disk formats, for tests, benchmarks and offline demos."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import zipfile

import torch
from torch import Tensor
from torchvision.io import write_png

#: IDX type codes by torch dtype (the MNIST file format)
_IDX_TYPES = {torch.uint8: 0x08}


def write_idx(path: str, tensor: Tensor, compress: bool = False) -> str:
    """Write a uint8 ``tensor`` as an IDX file (the MNIST/FashionMNIST format); returns the path."""
    if tensor.dtype not in _IDX_TYPES:
        raise ValueError(f"only uint8 tensors are written, got {tensor.dtype}")
    header = struct.pack(">BBBB", 0, 0, _IDX_TYPES[tensor.dtype], tensor.dim())
    header += struct.pack(f">{tensor.dim()}I", *tensor.shape)
    payload = header + tensor.contiguous().numpy().tobytes()
    if compress:
        path += ".gz"
        payload = gzip.compress(payload)
    with open(path, "wb") as f:
        f.write(payload)
    return path


def write_fashion_mnist(root: str, num_train: int = 200, num_test: int = 50, seed: int = 0,
                        compress: bool = False) -> str:
    """Write random FashionMNIST-format IDX files to ``<root>/FashionMNIST/raw/``; returns that folder.

    Labels cycle through the 10 classes; each image's brightness depends on its label, so a model can
    learn something from them.
    """
    raw = os.path.join(root, "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for prefix, count in (("train", num_train), ("t10k", num_test)):
        labels = torch.arange(count, dtype=torch.uint8) % 10
        noise = torch.randint(0, 100, (count, 28, 28), generator=generator)
        images = (noise + labels.view(-1, 1, 1).long() * 15).clamp(0, 255).to(torch.uint8)
        write_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), images, compress)
        write_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), labels, compress)
    return raw


def write_image_folder(root: str | os.PathLike, per_class: dict[str, int], seed: int = 0,
                       sizes: tuple[tuple[int, int], ...] = ((40, 30), (64, 64), (30, 50))) -> str:
    """Write an ImageFolder tree ``root/<class>/<i>.png`` of small RGB and grayscale PNGs; returns ``root``.

    Images cycle through ``sizes`` (width, height) and alternate RGB / grayscale; class ``k`` (sorted) is
    brighter by ``60·k``, so a model can tell the classes apart.
    """
    from PIL import Image  # torchvision's dependency; only needed here

    generator = torch.Generator().manual_seed(seed)
    for k, (name, count) in enumerate(sorted(per_class.items())):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(count):
            width, height = sizes[i % len(sizes)]
            pixels = (torch.randint(0, 60, (height, width, 3), generator=generator) + 60 * k).to(torch.uint8)
            image = Image.fromarray(pixels.numpy(), "RGB")
            (image.convert("L") if i % 2 else image).save(os.path.join(folder, f"{i}.png"))
    return str(root)


#: the AFHQ class folders, in ImageFolder (sorted) order
AFHQ_CLASSES = ("cat", "dog", "wild")
#: a colour per AFHQ class that :func:`write_afhq` mixes into its noise
_AFHQ_TINTS = ((230, 140, 40), (60, 120, 230), (60, 200, 80))


def write_afhq(root: str, per_class: int = 40, val_per_class: int = 10, image_size: int = 32, signal: float = 0.06,
               seed: int = 0) -> str:
    """Write random PNGs in the AFHQ layout ``<root>/afhq/{train,val}/{cat,dog,wild}/<i>.png``; returns the
    ``afhq`` folder.

    Every image is uniform RGB noise mixed with its class's colour (``signal`` of it: 0 gives pure noise, which
    only memorization can fit; the default 0.06 lets BigAnimalNet reach about 55 % validation accuracy from 100
    images, 1.0 gives flat class colours).
    """
    if not 0.0 <= signal <= 1.0:
        raise ValueError(f"`signal` must be in [0, 1], got {signal!r}")
    afhq = os.path.join(root, "afhq")
    generator = torch.Generator().manual_seed(seed)
    for split, count in (("train", per_class), ("val", val_per_class)):
        for name, tint in zip(AFHQ_CLASSES, _AFHQ_TINTS, strict=True):
            folder = os.path.join(afhq, split, name)
            os.makedirs(folder, exist_ok=True)
            noise = torch.randint(0, 256, (count, 3, image_size, image_size), generator=generator).float()
            colour = torch.tensor(tint, dtype=torch.float32).view(1, 3, 1, 1)
            images = ((1 - signal) * noise + signal * colour).round().to(torch.uint8)
            for i, image in enumerate(images):
                write_png(image, os.path.join(folder, f"{name}_{i:05d}.png"))
    return afhq


def make_afhq_zip(path: str, per_class: int = 40, val_per_class: int = 10, image_size: int = 32,
                  signal: float = 0.06, seed: int = 0) -> str:
    """Write :func:`write_afhq`'s tree as a zip archive holding ``afhq/...`` (the layout of the lecture's
    ``afhq.zip``) at ``path``; returns the archive's md5."""
    with tempfile.TemporaryDirectory() as tmp:
        afhq = write_afhq(tmp, per_class, val_per_class, image_size, signal, seed)
        with zipfile.ZipFile(path, "w") as archive:
            for folder, _, files in sorted(os.walk(afhq)):
                for name in sorted(files):
                    file = os.path.join(folder, name)
                    archive.write(file, os.path.relpath(file, tmp))
    with open(path, "rb") as f:
        return hashlib.md5(f.read(), usedforsecurity=False).hexdigest()
