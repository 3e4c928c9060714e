import gzip
import hashlib
import os
import shutil
import struct
import time

import pytest
import torch
from torchvision.datasets import FashionMNIST

from datamodules import FashionMNISTDataModule
from datamodules.fakes import write_fashion_mnist
from tests.helpers.http_server import serve_directory


def test_sizes_known_after_init_without_files(tmp_path):
    dm = FashionMNISTDataModule(str(tmp_path / "nothing"), download=False)
    assert (dm.input_size, dm.num_classes, len(dm.classes)) == (784, 10, 10)
    assert dm.classes[-1] == "Ankle boot"


def test_split_sizes_dtypes_and_batch_shapes(fashion_root):
    dm = FashionMNISTDataModule(str(fashion_root), batch_size=32, val_fraction=0.1, download=False)
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 180, "val": 20, "test": 50}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (32,) and y.dtype == torch.long
    x_float, y_same = dm.on_after_batch_transfer((x, y), 0)
    assert x_float.dtype == torch.float32 and torch.equal(y_same, y)
    assert len(dm.val_dataloader()) == 1 and len(dm.test_dataloader()) == 2


def test_train_and_val_are_disjoint_and_seeded(fashion_root):
    def split(seed):
        dm = FashionMNISTDataModule(str(fashion_root), seed=seed, download=False)
        dm.setup()
        return dm.datasets["train"].inputs, dm.datasets["val"].inputs

    train_a, val_a = split(42)
    train_b, val_b = split(42)
    _, val_c = split(7)
    assert torch.equal(val_a, val_b) and torch.equal(train_a, train_b)
    assert not torch.equal(val_a, val_c)
    flat_train = {bytes(img.numpy()) for img in train_a}
    assert not any(bytes(img.numpy()) in flat_train for img in val_a)


def test_normalization_uses_training_split_statistics(fashion_root):
    dm = FashionMNISTDataModule(str(fashion_root), download=False)
    dm.setup()
    pixels = dm.datasets["train"].inputs.float() / 255
    torch.testing.assert_close(dm.mean, pixels.mean().reshape(1))
    torch.testing.assert_close(dm.std, pixels.std().reshape(1))
    x, _ = dm.on_after_batch_transfer((dm.datasets["train"].inputs, None), 0)
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-4
    restored = FashionMNISTDataModule(str(fashion_root), download=False)
    restored.load_state_dict(dm.state_dict())
    assert torch.equal(restored.mean, dm.mean)


def test_missing_files_with_download_off_names_data_dir_and_files(tmp_path, no_network):
    dm = FashionMNISTDataModule(str(tmp_path / "empty"), download=False)
    dm.prepare_data()
    with pytest.raises(RuntimeError, match=r"FashionMNIST not found in data_dir=.*empty.*download=False.*"
                                           r"train-images-idx3-ubyte.*FashionMNIST/raw/"):
        dm.setup()
    assert no_network == []


def test_download_without_network_fails_fast_and_leaves_nothing_usable(tmp_path, no_network):
    dm = FashionMNISTDataModule(str(tmp_path / "data"), download=True)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"download failed.*download=True on a machine with network access"):
        dm.prepare_data()
    assert time.monotonic() - start < 5
    assert len(no_network) >= 1
    with pytest.raises(RuntimeError, match="FashionMNIST not found"):
        FashionMNISTDataModule(str(tmp_path / "data"), download=True).setup()


def test_truncated_idx_file_names_the_file(fashion_root):
    path = fashion_root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(RuntimeError, match=r"train-images-idx3-ubyte.*truncated or corrupt"):
        FashionMNISTDataModule(str(fashion_root), download=False).setup()


def test_download_from_a_local_mirror_through_torchvision(tmp_path, monkeypatch):
    """The real download path: gzipped IDX files with md5s, served over HTTP on 127.0.0.1."""
    served = tmp_path / "mirror"
    raw = write_fashion_mnist(str(served), num_train=30, num_test=10, compress=True)
    resources = [(name, hashlib.md5(open(os.path.join(raw, name), "rb").read()).hexdigest())
                 for name in sorted(os.listdir(raw))]
    with serve_directory(raw) as (url, requests):
        monkeypatch.setattr(FashionMNIST, "mirrors", [url])
        monkeypatch.setattr(FashionMNIST, "resources", resources)
        dm = FashionMNISTDataModule(str(tmp_path / "data"), val_fraction=0.2, download=True)
        dm.prepare_data()
        # torchvision opens each URL twice (redirect check, then the download)
        assert sorted(set(requests)) == [f"GET /{name}" for name, _ in resources]
        before = len(requests)
        dm.prepare_data()  # files present: no new request
        assert len(requests) == before
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 24, "val": 6, "test": 10}


def test_download_with_wrong_md5_fails_and_next_run_retries(tmp_path, monkeypatch):
    raw = write_fashion_mnist(str(tmp_path / "mirror"), num_train=10, num_test=10, compress=True)
    resources = [(name, "0" * 32) for name in sorted(os.listdir(raw))]
    with serve_directory(raw) as (url, _):
        monkeypatch.setattr(FashionMNIST, "mirrors", [url])
        monkeypatch.setattr(FashionMNIST, "resources", resources)
        with pytest.raises(RuntimeError, match="download failed"):
            FashionMNISTDataModule(str(tmp_path / "data"), download=True).prepare_data()
    with pytest.raises(RuntimeError, match="FashionMNIST not found"):
        FashionMNISTDataModule(str(tmp_path / "data"), download=False).setup()
    shutil.rmtree(tmp_path / "mirror")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"val_fraction": 0.0}, r"`val_fraction` must be in \(0, 1\), got 0.0"),
    ({"val_fraction": 1.0}, r"`val_fraction` must be in \(0, 1\)"),
    ({"batch_size": 0}, r"`batch_size` must be a positive integer, got 0"),
])
def test_invalid_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        FashionMNISTDataModule(str(tmp_path), **kwargs)


def test_val_fraction_leaving_no_validation_sample(fashion_root):
    with pytest.raises(ValueError, match=r"`val_fraction`=0.001 of 200 samples leaves 0 for validation"):
        FashionMNISTDataModule(str(fashion_root), val_fraction=0.001, download=False).setup()


# -- the distribution's files, where they lie --------------------------------------------------------
REAL = os.environ.get("LIT_REG_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def flat_gz_dir(tmp_path, **kwargs):
    """The four .gz files directly in one folder, as Debian's package and a manual download leave them."""
    raw = write_fashion_mnist(str(tmp_path / "written"), compress=True, **kwargs)
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in os.listdir(raw):
        shutil.move(os.path.join(raw, name), flat / name)
    return flat


def test_gzipped_files_directly_in_data_dir_read_as_the_unpacked_layout(tmp_path, fashion_root, no_network):
    flat = flat_gz_dir(tmp_path, num_train=200, num_test=50)
    before = sorted(os.listdir(flat))
    gz = FashionMNISTDataModule(str(flat), download=True)  # files found: no download is tried
    gz.prepare_data()
    gz.setup()
    unpacked = FashionMNISTDataModule(str(fashion_root), download=False)
    unpacked.setup()
    for split in ("train", "val", "test"):
        assert torch.equal(gz.datasets[split].inputs, unpacked.datasets[split].inputs)
        assert torch.equal(gz.datasets[split].targets, unpacked.datasets[split].targets)
    assert sorted(os.listdir(flat)) == before and no_network == []  # nothing unpacked, copied or downloaded


@pytest.mark.parametrize(("break_file", "message"), [
    (lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:3000])),
     r"t10k-images-idx3-ubyte\.gz is truncated or corrupt: it has 2984 bytes of data where its header announces "
     r"\(50, 28, 28\)"),
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), r"t10k-images-idx3-ubyte\.gz is truncated or corrupt: it cannot "
     r"be unpacked"),
    (lambda p: p.write_bytes(gzip.compress(struct.pack(">BBBBIII", 0, 0, 8, 3, 50, 27, 27) + bytes(50 * 27 * 27))),
     r"t10k-images-idx3-ubyte\.gz is truncated or corrupt: it holds items of shape \(27, 27\), expected \(28, 28\)"),
    (lambda p: p.write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 50) + bytes(50))),
     r"t10k-images-idx3-ubyte\.gz is truncated or corrupt: it does not start with the header of a uint8 IDX file "
     r"of 3 dimensions"),
], ids=["truncated data", "truncated gzip", "wrong image size", "a labels file in its place"])
def test_a_broken_gz_file_gets_one_error_naming_it(tmp_path, break_file, message):
    flat = flat_gz_dir(tmp_path, num_train=200, num_test=50)
    break_file(flat / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(RuntimeError, match=message):
        FashionMNISTDataModule(str(flat), download=False).setup()


def test_labels_that_do_not_match_the_images_name_both_files(tmp_path):
    flat = flat_gz_dir(tmp_path, num_train=200, num_test=50)
    (flat / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 40) + bytes(40)))
    with pytest.raises(RuntimeError, match=r"t10k-labels-idx1-ubyte\.gz does not match .*t10k-images-idx3-ubyte\.gz "
                                           r"\(40 labels for 50 images"):
        FashionMNISTDataModule(str(flat), download=False).setup()


def test_missing_file_message_names_what_is_missing_and_the_three_ways_to_get_it(tmp_path):
    flat = flat_gz_dir(tmp_path, num_train=20, num_test=10)
    (flat / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(RuntimeError) as error:
        FashionMNISTDataModule(str(flat), download=False).setup()
    message = str(error.value)
    assert "(download=False): no t10k-labels-idx1-ubyte (nor .gz) in" in message and "train-images" not in message
    assert all(way in message for way in ("download=True", "dataset-fashion-mnist", "fashion-mnist.s3"))


@pytest.mark.skipif(not os.path.isdir(REAL), reason=f"real FashionMNIST not in {REAL} (apt-get install "
                    "dataset-fashion-mnist, or set LIT_REG_FASHION_MNIST)")
def test_the_real_distribution_reads_as_the_standard_set():
    dm = FashionMNISTDataModule(REAL, download=False, val_fraction=0.1)
    dm.setup()
    sizes = {split: len(ds) for split, ds in dm.datasets.items()}
    assert sizes == {"train": 54000, "val": 6000, "test": 10000}
    train = torch.cat([dm.datasets["train"].inputs, dm.datasets["val"].inputs])
    labels = torch.cat([dm.datasets["train"].targets, dm.datasets["val"].targets])
    assert torch.bincount(labels).tolist() == [6000] * 10
    assert torch.bincount(dm.datasets["test"].targets).tolist() == [1000] * 10
    pixels = train.double() / 255
    assert round(pixels.mean().item(), 4) == 0.2860 and round(pixels.std().item(), 4) == 0.3530


# -- train_size, augmentation, the rotated test set ------------------------------------------------------
def test_train_size_is_a_seeded_class_balanced_subset_of_the_training_split(fashion_root):
    full = FashionMNISTDataModule(str(fashion_root), download=False)
    full.setup()
    small = FashionMNISTDataModule(str(fashion_root), download=False, train_size=45)
    small.setup()
    assert torch.bincount(small.datasets["train"].targets).tolist() == [5] * 5 + [4] * 5  # 45 = 4 each + 5 extra
    full_rows = {bytes(x.numpy()) for x in full.datasets["train"].inputs}
    assert all(bytes(x.numpy()) in full_rows for x in small.datasets["train"].inputs)
    assert torch.equal(small.datasets["val"].inputs, full.datasets["val"].inputs)  # validation and test stay whole
    assert len(small.datasets["test"]) == len(full.datasets["test"])
    again = FashionMNISTDataModule(str(fashion_root), download=False, train_size=45)
    again.setup()
    assert torch.equal(again.datasets["train"].inputs, small.datasets["train"].inputs)
    with pytest.raises(ValueError, match=r"`train_size`=500 is larger than the training split, which has 180"):
        FashionMNISTDataModule(str(fashion_root), download=False, train_size=500).setup()


@pytest.mark.parametrize("mode", ["other_class", "shuffle"])
def test_label_noise_relabels_the_training_subset_only(fashion_root, mode):
    """``train_size`` picks the images first; ``round(p·n)`` of them are relabeled, the same on every run."""
    clean = FashionMNISTDataModule(str(fashion_root), download=False, train_size=45)
    clean.setup()
    dm = FashionMNISTDataModule(str(fashion_root), download=False, train_size=45, label_noise=0.3,
                                label_noise_mode=mode)
    dm.setup()
    before, after = clean.datasets["train"].targets, dm.datasets["train"].targets
    assert torch.equal(dm.datasets["train"].inputs, clean.datasets["train"].inputs)
    assert len(dm.relabeled_indices) == 14  # round(13.5), half to even; int() would give 13
    changed = torch.nonzero(after != before).flatten()
    assert torch.equal(dm.noisy_indices, changed) and set(changed.tolist()) <= set(dm.relabeled_indices.tolist())
    if mode == "other_class":
        assert len(changed) == 14
    else:
        assert torch.equal(after.sort().values, before.sort().values) and len(changed) > 7
    for split in ("val", "test"):
        assert torch.equal(dm.datasets[split].targets, clean.datasets[split].targets)
    again = FashionMNISTDataModule(str(fashion_root), download=False, train_size=45, label_noise=0.3,
                                   label_noise_mode=mode)
    again.setup()
    assert torch.equal(again.datasets["train"].targets, after)


def test_invalid_label_noise_mode(tmp_path):
    with pytest.raises(ValueError,
                       match=r"`label_noise_mode` must be one of \['other_class', 'shuffle'\], got 'Shuffle'"):
        FashionMNISTDataModule(str(tmp_path), label_noise_mode="Shuffle")


def test_rotated_test_split_is_served_by_test_dataloader_and_the_plain_one_stays(fashion_root):
    dm = FashionMNISTDataModule(str(fashion_root), download=False, test_rotation=25, batch_size=50)
    dm.setup()
    plain, rotated = dm.datasets["test"], dm.datasets["test_rotated"]
    assert torch.equal(rotated.targets, plain.targets) and not torch.equal(rotated.inputs, plain.inputs)
    assert torch.equal(next(iter(dm.test_dataloader()))[0], rotated.inputs)
    dm.test_split = "test"
    assert torch.equal(next(iter(dm.test_dataloader()))[0], plain.inputs)
    again = FashionMNISTDataModule(str(fashion_root), download=False, test_rotation=25)
    again.setup()
    assert torch.equal(again.datasets["test_rotated"].inputs, rotated.inputs)  # the same angles every run
    unrotated = FashionMNISTDataModule(str(fashion_root), download=False)
    unrotated.setup()
    assert "test_rotated" not in unrotated.datasets and unrotated.test_split == "test"


def test_augment_changes_training_batches_only(fashion_root):
    class FakeTrainer:
        training = True

    dm = FashionMNISTDataModule(str(fashion_root), download=False, augment=True, rotation=20, max_shift=2)
    dm.setup()
    batch = dm.datasets["train"].__getitems__(list(range(32)))
    dm.trainer = FakeTrainer()
    augmented = dm.on_after_batch_transfer(batch, 0)[0]
    FakeTrainer.training = False
    plain = dm.on_after_batch_transfer(batch, 0)[0]
    assert augmented.shape == plain.shape == (32, 28, 28)
    assert sum(not torch.equal(a, p) for a, p in zip(augmented, plain, strict=True)) >= 30
    assert torch.equal(plain, dm.on_after_batch_transfer(batch, 0)[0])
    assert FashionMNISTDataModule(str(fashion_root), download=False).augmentation is None
