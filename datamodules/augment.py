"""Per-sample random flips, shifts and rotations of an image batch, on the batch's own device."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def rotate_batch(images: Tensor, degrees: Tensor, mode: str = "bilinear") -> Tensor:
    """Rotate each image of ``images`` about its centre by its own angle, counter-clockwise, corners filled with 0.

    One ``affine_grid``/``grid_sample`` for the whole batch: what torchvision's ``rotate(img, angle, fill=0)``
    does image by image.

    Args:
        images: float ``(N, C, H, W)`` or ``(N, H, W)`` batch.
        degrees: ``(N,)`` angles in degrees.
        mode: ``bilinear`` or ``nearest`` (the lecture's ``RandomRotation`` default; keeps pixel values).

    Example:
        >>> image = torch.zeros(1, 3, 3); image[0, 0, 1] = 1.0  # top middle
        >>> rotate_batch(image, torch.tensor([90.0]), mode="nearest")[0]  # now middle left
        tensor([[0., 0., 0.],
                [1., 0., 0.],
                [0., 0., 0.]])
    """
    batch = images if images.dim() == 4 else images.unsqueeze(1)
    n, _, height, width = batch.shape
    radians = degrees.to(device=batch.device, dtype=torch.float32) * (math.pi / 180.0)
    cos, sin = radians.cos(), radians.sin()
    zero = torch.zeros_like(cos)
    # output pixel (x, y) samples the input at R(-angle)·(x, y), in normalized coordinates (aspect-corrected)
    theta = torch.stack([
        torch.stack([cos, -sin * height / width, zero], dim=1),
        torch.stack([sin * width / height, cos, zero], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta.to(batch.dtype), [n, 1, height, width], align_corners=False)
    rotated = F.grid_sample(batch, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return rotated if images.dim() == 4 else rotated.squeeze(1)


def shift_batch(images: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """Translate each image of an ``(N, C, H, W)`` batch by whole pixels ``(dy, dx)``, edges replicated."""
    n, channels, height, width = images.shape
    shift = int(max(dy.abs().max(), dx.abs().max())) if n else 0
    if shift == 0:
        return images
    padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
    rows = (shift - dy.view(n, 1) + torch.arange(height, device=images.device)).view(n, 1, height, 1)
    cols = (shift - dx.view(n, 1) + torch.arange(width, device=images.device)).view(n, 1, 1, width)
    samples = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channel = torch.arange(channels, device=images.device).view(1, -1, 1, 1)
    return padded[samples, channel, rows, cols]


class BatchAugmentation:
    """Random horizontal flip, whole-pixel translation and rotation, drawn per sample, on a float batch.

    Draws come from torch's global generator on the batch's device, so ``seed_everything`` seeds them and a
    checkpoint (which stores the RNG state) resumes them. Each sample is flipped with probability 1/2 (with
    ``hflip``), shifted by ``dy, dx`` uniform in ``[-max_shift, max_shift]`` (edges replicated) and rotated by
    an angle uniform in ``[-rotation, rotation]`` degrees (bilinear, corners filled with 0).

    Args:
        hflip: flip half of the samples left to right.
        max_shift: largest translation in pixels, >= 0.
        rotation: largest rotation in degrees, in [0, 180].

    Raises:
        ValueError: naming ``max_shift`` or ``rotation`` when out of range.

    Example:
        >>> augment = BatchAugmentation(hflip=True, max_shift=2, rotation=10)
        >>> augment(torch.rand(8, 28, 28)).shape
        torch.Size([8, 28, 28])
    """

    def __init__(self, hflip: bool = False, max_shift: int = 0, rotation: float = 0.0) -> None:
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise ValueError(f"`max_shift` must be an integer >= 0, got {max_shift!r}")
        check_rotation(rotation, "rotation")
        self.hflip = hflip
        self.max_shift = max_shift
        self.rotation = float(rotation)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hflip={self.hflip}, max_shift={self.max_shift}, rotation={self.rotation})"

    def __call__(self, images: Tensor) -> Tensor:
        x = images if images.dim() == 4 else images.unsqueeze(1)
        n, device = x.shape[0], x.device
        if self.hflip:
            flip = torch.rand(n, device=device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.max_shift:
            dy, dx = torch.randint(-self.max_shift, self.max_shift + 1, (2, n), device=device)
            x = shift_batch(x, dy, dx)
        if self.rotation:
            x = rotate_batch(x, (torch.rand(n, device=device) * 2 - 1) * self.rotation)
        return x if images.dim() == 4 else x.squeeze(1)


def check_rotation(value: float, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 180:
        raise ValueError(f"`{argument}` must be a number of degrees in [0, 180], got {value!r}")
    return float(value)


def seeded_rotation(images: Tensor, max_degrees: float, seed: int) -> Tensor:
    """``images`` (uint8 or float, ``(N, [C,] H, W)``) each rotated by a seeded angle in [-max_degrees, max_degrees].

    Nearest-neighbour, corners 0, as the lecture's ``RandomRotation(max_degrees, fill=0)``; the same seed gives
    the same angles on every run and machine (drawn on the CPU).
    """
    angles = (torch.rand(len(images), generator=torch.Generator().manual_seed(seed)) * 2 - 1) * max_degrees
    rotated = rotate_batch(images.float(), angles, mode="nearest")
    return rotated.round().to(images.dtype) if not images.is_floating_point() else rotated
