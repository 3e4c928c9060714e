"""Tiny generated ImageFolder trees for the image-folder tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZES = ((40, 30), (64, 64), (30, 50))


def write_tree(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: RGB and grayscale PNGs of different sizes; class ``k`` is brighter with k."""
    rng = np.random.default_rng(seed)
    for k, (name, count) in enumerate(sorted(per_class.items())):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            width, height = SIZES[i % len(SIZES)]
            pixels = rng.integers(0, 60, (height, width, 3)) + 60 * k
            image = Image.fromarray(pixels.astype(np.uint8), "RGB")
            (image.convert("L") if i % 2 else image).save(folder / f"{i}.png")
    return root
