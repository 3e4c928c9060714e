import logging
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

import datamodules.image_folder as image_folder
from datamodules import ImageFolderDataModule
from tests.datamodules.image_trees import write_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "train", {"cat": 10, "dog": 20})


def make(root: Path, tmp_path: Path, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(str(root), cache_dir=str(tmp_path / "cache"), **kwargs)


def test_sizes_are_known_after_init(tree, tmp_path):
    dm = make(tree, tmp_path, image_size=8)
    assert dm.classes == ["cat", "dog"] and dm.class_to_idx == {"cat": 0, "dog": 1}
    assert (dm.num_classes, dm.input_size) == (2, 64)
    assert make(tree, tmp_path, image_size=8, grayscale=False).input_size == 3 * 64


@pytest.mark.parametrize("grayscale, channels", [(True, 1), (False, 3)])
def test_every_image_is_resized_and_center_cropped(tree, tmp_path, grayscale, channels):
    dm = make(tree, tmp_path, image_size=12, grayscale=grayscale)
    dm.setup("fit")
    images = torch.cat([dm.datasets["train"].inputs, dm.datasets["val"].inputs])
    assert images.dtype == torch.uint8 and images.shape[1:] == (channels, 12, 12)
    if not grayscale:  # the 15 grayscale files decoded as RGB have three equal channels, the others not
        equal = [torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]) for image in images]
        assert sum(equal) == 15
    assert dm.mean.shape == (channels, 1, 1)


def test_resize_keeps_the_center_square(tmp_path):
    root = tmp_path / "t"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        wide = Image.new("L", (30, 10), 0)
        wide.paste(255, (10, 0, 20, 10))  # white center square, black sides
        wide.save(root / name / "x.png")
    dm = make(root, tmp_path, image_size=10, val_dir=str(root), normalize=False)
    dm.setup("fit")
    assert dm.datasets["train"].inputs.float().mean() > 250  # only the white center survives the crop


def test_split_is_stratified_seeded_and_disjoint(tree, tmp_path):
    dm = make(tree, tmp_path, image_size=8, val_fraction=0.2, seed=3)
    dm.setup("fit")
    train, val = dm.datasets["train"], dm.datasets["val"]
    assert val.targets.bincount().tolist() == [2, 4] and train.targets.bincount().tolist() == [8, 16]
    other = make(tree, tmp_path, image_size=8, val_fraction=0.2, seed=3)
    other.setup("fit")
    assert torch.equal(other.datasets["val"].inputs, val.inputs)
    train_rows = {tuple(x.flatten().tolist()) for x in train.inputs}
    assert not any(tuple(x.flatten().tolist()) in train_rows for x in val.inputs)


def test_val_and_test_dirs(tree, tmp_path):
    val = write_tree(tmp_path / "val", {"cat": 3, "dog": 4}, seed=1)
    dm = make(tree, tmp_path, image_size=8, val_dir=str(val), test_dir=str(val))
    dm.setup("fit")
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [30, 7, 7]
    assert len(next(iter(dm.test_dataloader()))[0]) == 7


@pytest.mark.parametrize("mode", ["other_class", "shuffle"])
def test_label_noise_relabels_the_training_split_only(tree, tmp_path, mode):
    """The validation split is drawn from the clean labels; only the training labels are relabeled."""
    clean = make(tree, tmp_path, image_size=8, val_fraction=0.2, test_dir=str(tree))
    clean.setup("fit")
    dm = make(tree, tmp_path, image_size=8, val_fraction=0.2, test_dir=str(tree), label_noise=1.0,
              label_noise_mode=mode)
    dm.setup("fit")
    before, after = clean.datasets["train"].targets, dm.datasets["train"].targets
    assert torch.equal(dm.datasets["train"].inputs, clean.datasets["train"].inputs) and len(dm.relabeled_indices) == 24
    if mode == "other_class":
        assert (after == 1 - before).all()  # two classes: the other one
    else:
        assert torch.equal(after.sort().values, before.sort().values) and 0 < (after != before).sum() < 24
    for split in ("val", "test"):
        assert torch.equal(dm.datasets[split].inputs, clean.datasets[split].inputs)
        assert torch.equal(dm.datasets[split].targets, clean.datasets[split].targets)


def test_no_test_dir_means_a_clear_error_for_test(tree, tmp_path):
    dm = make(tree, tmp_path, image_size=8)
    with pytest.raises(ValueError, match="has no 'test' split"):
        dm.test_dataloader()


def count_decodes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = image_folder.decode_file

    def counting(path, *args):
        calls.append(path)
        return real(path, *args)

    monkeypatch.setattr(image_folder, "decode_file", counting)
    return calls


def test_second_setup_reads_the_cache_and_a_touched_file_invalidates_it(tree, tmp_path, monkeypatch):
    calls = count_decodes(monkeypatch)
    first = make(tree, tmp_path, image_size=8)
    first.setup("fit")
    assert len(calls) == 30 and len(os.listdir(tmp_path / "cache")) == 1
    second = make(tree, tmp_path, image_size=8)
    second.setup("fit")
    assert len(calls) == 30  # nothing decoded: read from the cache
    assert torch.equal(second.datasets["train"].inputs, first.datasets["train"].inputs)
    make(tree, tmp_path, image_size=10).setup("fit")  # other settings, other cache entry
    assert len(calls) == 60
    victim = tree / "dog" / "3.png"
    Image.new("RGB", (20, 20), (255, 255, 255)).save(victim)
    os.utime(victim, ns=(10**18, 10**18))
    third = make(tree, tmp_path, image_size=8)
    third.setup("fit")
    assert len(calls) == 90
    assert not torch.equal(third.datasets["train"].inputs, first.datasets["train"].inputs) or not torch.equal(
        third.datasets["val"].inputs, first.datasets["val"].inputs)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "another tensor"])
def test_a_damaged_cache_file_is_discarded_with_a_warning_and_rewritten(tree, tmp_path, monkeypatch, caplog, damage):
    calls = count_decodes(monkeypatch)
    first = make(tree, tmp_path, image_size=8)
    first.setup("fit")
    (cache,) = (tmp_path / "cache").iterdir()
    if damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:100])
    elif damage == "garbage":
        cache.write_bytes(b"not a torch file")
    else:
        torch.save(torch.zeros(2, 2), cache)
    with caplog.at_level(logging.WARNING, logger="datamodules.image_folder"):
        second = make(tree, tmp_path, image_size=8)
        second.setup("fit")
    assert len(calls) == 60  # decoded again
    assert torch.equal(second.datasets["train"].inputs, first.datasets["train"].inputs)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"Discarding the unreadable image cache {cache}" in warning and "\n" not in warning
    third = make(tree, tmp_path, image_size=8)
    third.setup("fit")
    assert len(calls) == 60  # the rewritten cache is read


def test_cache_off_never_writes(tree, tmp_path, monkeypatch):
    calls = count_decodes(monkeypatch)
    for _ in range(2):
        ImageFolderDataModule(str(tree), image_size=8, cache_dir=None).setup("fit")
    assert len(calls) == 60 and not (tmp_path / "cache").exists()


# -- bad input --------------------------------------------------------------------------------------
def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`train_dir` directory .*nowhere does not exist"):
        ImageFolderDataModule(str(tmp_path / "nowhere"))
    (tmp_path / "train" / "cat").mkdir(parents=True)
    data = ImageFolderDataModule(str(tmp_path / "train"), val_dir=str(tmp_path / "gone"))  # read by fit, not here
    with pytest.raises(FileNotFoundError, match=r"`val_dir` directory .*gone does not exist"):
        data.setup("fit")


def test_no_class_folders(tmp_path):
    with pytest.raises(ValueError, match="holds no class folders"):
        ImageFolderDataModule(str(tmp_path))


def test_no_images_names_the_extensions(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text("hi")
    dm = make(tmp_path, tmp_path)
    with pytest.raises(ValueError, match=r"No images found in `train_dir` .*allowed extensions are .*\.png"):
        dm.setup("fit")


def test_empty_class_folder(tree, tmp_path):
    (tree / "emu").mkdir()
    dm = make(tree, tmp_path)
    with pytest.raises(ValueError, match=r"Class folder .*emu has no images"):
        dm.setup("fit")


def test_unreadable_image_is_named(tree, tmp_path):
    (tree / "dog" / "broken.png").write_bytes(b"not a png at all")
    dm = make(tree, tmp_path)
    with pytest.raises(RuntimeError, match=r"Cannot read image file .*dog/broken\.png"):
        dm.setup("fit")


def test_validation_classes_must_match(tree, tmp_path):
    val = write_tree(tmp_path / "val", {"cat": 2, "cow": 2})
    data = make(tree, tmp_path, val_dir=str(val))
    with pytest.raises(ValueError, match=r"`val_dir` .* has classes \['cat', 'cow'\] but `train_dir` .* has"):
        data.setup("fit")


@pytest.mark.parametrize("kwargs, match", [
    ({"image_size": 0}, "`image_size` must be a positive integer, got 0"),
    ({"val_fraction": 1.5}, r"`val_fraction` must be in \(0, 1\), got 1.5"),
    ({"max_shift": -1}, r"`max_shift` must be an integer in \[0, image_size=50\), got -1"),
    ({"batch_size": 0}, "`batch_size` must be a positive integer"),
    ({"label_noise": 2}, r"`label_noise` must be a number in \[0, 1\], got 2"),
])
def test_bad_arguments(tree, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(tree, tmp_path, **kwargs)


# -- augmentation -----------------------------------------------------------------------------------
def test_flip_flips_about_half_and_shift_moves_pixels(tree, tmp_path):
    dm = make(tree, tmp_path, image_size=8, augment=True, max_shift=0)
    torch.manual_seed(0)
    x = torch.rand(400, 1, 8, 8)
    out = dm.augment_batch(x)
    flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x, strict=True)])
    assert bool((flipped | kept).all()) and 150 < int(flipped.sum()) < 250
    shifting = make(tree, tmp_path, image_size=8, augment=True, max_shift=2)
    shifted = shifting.augment_batch(x)
    assert shifted.shape == x.shape
    moved = sum(not torch.equal(s, xi) and not torch.equal(s, xi.flip(-1)) for s, xi in zip(shifted, x, strict=True))
    assert moved > 300  # 24 of 25 shifts move the image


class FakeTrainer:
    def __init__(self, training: bool) -> None:
        self.training = training


def test_only_training_batches_are_augmented(tree, tmp_path):
    dm = make(tree, tmp_path, image_size=8, augment=True, normalize=False)
    dm.setup("fit")
    batch = dm.datasets["train"].__getitems__(list(range(6)))
    expected = batch[0].float() / 255
    dm.trainer = FakeTrainer(training=False)
    for _ in range(5):
        assert torch.equal(dm.on_after_batch_transfer(batch, 0)[0], expected)
    dm.trainer = FakeTrainer(training=True)
    assert any(not torch.equal(dm.on_after_batch_transfer(batch, 0)[0], expected) for _ in range(5))


@pytest.mark.parametrize("grayscale, channels", [(True, 1), (False, 3)])
def test_normalization_uses_training_mean_and_std_per_channel(tree, tmp_path, grayscale, channels):
    """mean and std are the training split's, per channel, of the decoded pixels in [0, 1] (std: the unbiased
    sample std, as ``Tensor.std``); normalized training data has mean 0 and std 1 in every channel."""
    dm = make(tree, tmp_path, image_size=8, grayscale=grayscale)
    dm.setup("fit")
    train = dm.datasets["train"].inputs
    pixels = (train.double() / 255).transpose(0, 1).reshape(channels, -1)  # one row per channel
    assert dm.mean.shape == dm.std.shape == (channels, 1, 1)
    torch.testing.assert_close(dm.mean.flatten().double(), pixels.mean(dim=1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dm.std.flatten().double(), pixels.std(dim=1), rtol=1e-6, atol=1e-6)
    everything = torch.cat([train, dm.datasets["val"].inputs]).double().div(255).transpose(0, 1).reshape(channels, -1)
    assert not torch.allclose(everything.std(dim=1), pixels.std(dim=1), rtol=1e-4)  # the training split's only
    x = dm.on_after_batch_transfer((train, dm.datasets["train"].targets), 0)[0]
    per_channel = x.double().transpose(0, 1).reshape(channels, -1)
    torch.testing.assert_close(per_channel.mean(dim=1), torch.zeros(channels, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_channel.std(dim=1), torch.ones(channels, dtype=torch.float64), atol=1e-4, rtol=0)


def test_normalization_statistics_travel_in_the_state(tree, tmp_path):
    dm = make(tree, tmp_path, image_size=8, grayscale=False)
    dm.setup("fit")
    fresh = make(tree, tmp_path, image_size=8, grayscale=False, predict_dir=str(tree / "cat" / "0.png"))
    fresh.load_state_dict(dm.state_dict())
    assert torch.equal(fresh.mean, dm.mean) and torch.equal(fresh.std, dm.std) and fresh.std.shape == (3, 1, 1)
    fresh.setup("predict")  # reads only the predict image: the statistics come from the state
    image = fresh.datasets["predict"]
    expected = (image.inputs.float() / 255 - dm.mean) / dm.std
    torch.testing.assert_close(fresh.on_after_batch_transfer(image.__getitems__([0]), 0)[0], expected)


def test_predict_batches_carry_paths(tree, tmp_path):
    dm = make(tree, tmp_path, image_size=8, predict_dir=str(tree / "dog"))
    images, paths = next(iter(dm.predict_dataloader()))
    assert images.shape == (20, 1, 8, 8) and len(paths) == 20
    assert paths == sorted(str(p) for p in (tree / "dog").glob("*.png"))
    assert "train" not in dm.datasets  # predict does not read the training images
    single = make(tree, tmp_path, image_size=8, predict_dir=str(tree / "cat" / "1.png"))
    assert next(iter(single.predict_dataloader()))[1] == [str(tree / "cat" / "1.png")]


def test_predict_without_predict_dir(tree, tmp_path):
    with pytest.raises(ValueError, match="`predict_dir` is not set"):
        make(tree, tmp_path).predict_dataloader()
    data = make(tree, tmp_path, predict_dir=str(tmp_path / "missing.png"))  # only predict reads it
    with pytest.raises(FileNotFoundError, match="`predict_dir` .*missing.png does not exist"):
        data.setup("predict")


def test_rotation_augments_and_test_rotation_rotates_the_test_folder(tree, tmp_path):
    test_dir = write_tree(tmp_path / "test", {"cat": 3, "dog": 3})
    dm = make(tree, tmp_path, image_size=16, augment=True, max_shift=0, rotation=30, test_dir=str(test_dir),
              test_rotation=20)
    dm.setup("fit")
    assert repr(dm.augmentation) == "BatchAugmentation(hflip=True, max_shift=0, rotation=30.0)"
    x = dm.datasets["train"].inputs.float() / 255
    out = dm.augment_batch(x)
    neither = [not torch.equal(o, xi) and not torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)]
    assert sum(neither) >= len(x) - 2  # rotated, not only flipped
    plain, rotated = dm.datasets["test"], dm.datasets["test_rotated"]
    assert dm.test_split == "test_rotated" and not torch.equal(plain.inputs, rotated.inputs)
    assert make(tree, tmp_path, image_size=16).augmentation is None
