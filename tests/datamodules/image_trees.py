"""Tiny generated ImageFolder trees for the image-folder tests (see :func:`datamodules.fakes.write_image_folder`)."""

from __future__ import annotations

from pathlib import Path

from datamodules.fakes import write_image_folder

SIZES = ((40, 30), (64, 64), (30, 50))


def write_tree(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: RGB and grayscale PNGs of different sizes; class ``k`` is brighter with k."""
    write_image_folder(root, per_class, seed=seed, sizes=SIZES)
    return root
