import hashlib
import os
import shutil
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
