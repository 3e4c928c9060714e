"""Small data sets written in the real on-disk formats, for tests, benchmarks and offline demos."""

from __future__ import annotations

import gzip
import os
import struct

import torch
from torch import Tensor

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
