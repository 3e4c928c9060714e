import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from datamodules.augment import BatchAugmentation, rotate_batch, seeded_rotation, shift_batch


def test_nearest_rotation_equals_torchvisions_rotate_image_by_image():
    torch.manual_seed(0)
    images = (torch.rand(6, 1, 28, 28) * 255).round()
    angles = torch.tensor([0.0, 10.0, -25.0, 25.0, 90.0, 3.3])
    rotated = rotate_batch(images, angles, mode="nearest")
    for image, angle, ours in zip(images, angles, rotated, strict=True):
        expected = TF.rotate(image, float(angle), interpolation=InterpolationMode.NEAREST, fill=0)
        assert torch.equal(ours, expected), float(angle)


def test_rotation_keeps_three_dimensional_batches_and_moves_pixels_counter_clockwise():
    image = torch.zeros(1, 5, 5)
    image[0, 0, 2] = 1.0  # top middle
    assert torch.nonzero(rotate_batch(image, torch.tensor([90.0]), mode="nearest")[0]).tolist() == [[2, 0]]
    assert rotate_batch(torch.rand(3, 7, 9), torch.zeros(3)).shape == (3, 7, 9)


def test_shift_moves_each_image_by_its_own_offset_with_edges_replicated():
    images = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    shifted = shift_batch(images, dy=torch.tensor([1, 0]), dx=torch.tensor([0, -1]))
    assert torch.equal(shifted[0, 0, 1:], images[0, 0, :3]) and torch.equal(shifted[0, 0, 0], images[0, 0, 0])
    assert torch.equal(shifted[1, 0, :, :3], images[1, 0, :, 1:])
    assert torch.equal(shifted[1, 0, :, 3], images[1, 0, :, 3])


def test_seeded_rotation_gives_the_same_angles_every_time_and_keeps_uint8():
    images = torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8)
    first, again, other = seeded_rotation(images, 25, seed=1), seeded_rotation(images, 25, seed=1), seeded_rotation(
        images, 25, seed=2)
    assert first.dtype == torch.uint8 and torch.equal(first, again) and not torch.equal(first, other)
    assert set(first.unique().tolist()) <= set(images.unique().tolist()) | {0}  # nearest: no new pixel values


def test_augmentation_draws_from_the_global_generator_per_sample():
    augment = BatchAugmentation(hflip=True, max_shift=2, rotation=15)
    x = torch.rand(64, 28, 28)
    torch.manual_seed(3)
    a = augment(x)
    torch.manual_seed(3)
    assert torch.equal(a, augment(x))  # seeded by torch.manual_seed / seed_everything
    changed = [not torch.equal(out, image) for out, image in zip(a, x, strict=True)]
    assert sum(changed) >= 60


def test_flip_only_flips_about_half():
    x = torch.rand(400, 1, 6, 6)
    out = BatchAugmentation(hflip=True)(x)
    flipped = sum(torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True))
    kept = sum(torch.equal(o, i) for o, i in zip(out, x, strict=True))
    assert flipped + kept == 400 and 150 < flipped < 250


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_shift": -1}, r"`max_shift` must be an integer >= 0, got -1"),
    ({"rotation": 181}, r"`rotation` must be a number of degrees in \[0, 180\], got 181"),
    ({"rotation": -5}, r"`rotation` must be a number of degrees in \[0, 180\], got -5"),
])
def test_bad_ranges_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchAugmentation(**kwargs)
