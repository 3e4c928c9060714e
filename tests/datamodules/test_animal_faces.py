import logging
import os
import time
import zipfile
from pathlib import Path

import pytest
import torch

import datamodules.animal_faces as animal_faces
from datamodules import AnimalFacesDataModule
from datamodules.fakes import AFHQ_CLASSES, make_afhq_zip, write_afhq
from lit_reg.cli import build_cli
from tests.helpers.http_server import serve_directory, serve_dropping_connection

LAYOUT = [f"{split}/{name}" for split in ("train", "val") for name in AFHQ_CLASSES]


@pytest.fixture(scope="module")
def afhq_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir holding a generated ``afhq/`` tree: 3 × 40 training and 3 × 5 test images, 32×32."""
    root = tmp_path_factory.mktemp("afhq_data")
    write_afhq(str(root), per_class=40, val_per_class=5)
    return root


def make(data_dir, **kwargs) -> AnimalFacesDataModule:
    return AnimalFacesDataModule(str(data_dir), **{"download": False, "cache_dir": None, **kwargs})


def loaded(data_dir, **kwargs) -> AnimalFacesDataModule:
    dm = make(data_dir, **kwargs)
    dm.setup("fit")
    return dm


def tree_listing(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*"))


# -- sizes, splits, normalization -------------------------------------------------------------------
def test_sizes_known_after_init_without_files(tmp_path, no_network):
    dm = AnimalFacesDataModule(str(tmp_path / "nothing"), image_size=16)
    assert (dm.classes, dm.num_classes, dm.input_size, dm.dims) == (["cat", "dog", "wild"], 3, 768, (3, 16, 16))
    assert not (tmp_path / "nothing").exists() and no_network == []


def test_subsets_are_seeded_disjoint_and_sized(afhq_root):
    dm = loaded(afhq_root, train_size=50, val_size=30, seed=5)
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 50, "val": 30, "test": 15}
    train, val = dm.datasets["train"].inputs, dm.datasets["val"].inputs
    assert train.shape == (50, 3, 32, 32) and train.dtype == torch.uint8
    as_bytes = lambda images: {bytes(image.numpy()) for image in images}  # noqa: E731
    assert not as_bytes(train) & as_bytes(val) and len(as_bytes(train) | as_bytes(val)) == 80
    again = loaded(afhq_root, train_size=50, val_size=30, seed=5)
    assert torch.equal(again.datasets["train"].inputs, train) and torch.equal(again.datasets["val"].inputs, val)
    other = loaded(afhq_root, train_size=50, val_size=30, seed=6)
    assert not torch.equal(other.datasets["train"].inputs, train)
    # the validation subset does not depend on train_size
    assert torch.equal(loaded(afhq_root, train_size=10, val_size=30, seed=5).datasets["val"].inputs, val)


def test_defaults_split_ten_percent_of_the_training_folder(afhq_root):
    dm = loaded(afhq_root)
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 108, "val": 12, "test": 15}
    assert dm.datasets["test"].targets.tolist() == [0] * 5 + [1] * 5 + [2] * 5


def test_fixed_lecture_normalization(afhq_root):
    dm = loaded(afhq_root, train_size=20, val_size=20)
    x = dm.datasets["train"].inputs[:4]
    expected = (x.float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(dm.on_after_batch_transfer((x, None), 0)[0], expected)
    assert dm.mean.flatten().tolist() == [0.5] * 3 and dm.std.flatten().tolist() == [0.5] * 3


def test_image_size_resizes(afhq_root):
    dm = loaded(afhq_root, image_size=8, train_size=10, val_size=10)
    assert dm.datasets["train"].inputs.shape == (10, 3, 8, 8) and dm.input_size == 192


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"val_size": 121}, r"`val_size`=121 is larger than the training folder .*afhq/train, which has 120 images"),
    ({"train_size": 101, "val_size": 20},
     r"`train_size`=101 is larger than the 100 images available in .*afhq/train after the 20 validation images "
     r"\(120 in all\)"),
])
def test_subsets_larger_than_the_folder(afhq_root, kwargs, message):
    with pytest.raises(ValueError, match=message):
        loaded(afhq_root, **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"label_noise": 1.5}, r"`label_noise` must be a number in \[0, 1\], got 1.5"),
    ({"label_noise": -0.1}, r"`label_noise` must be a number in \[0, 1\], got -0.1"),
    ({"label_noise_mode": "permute"},
     r"`label_noise_mode` must be one of \['other_class', 'shuffle'\], got 'permute'"),
    ({"train_size": 0}, r"`train_size` must be a positive integer, got 0"),
    ({"val_size": 2.5}, r"`val_size` must be a positive integer, got 2.5"),
    ({"image_size": 0}, r"`image_size` must be a positive integer, got 0"),
])
def test_invalid_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(tmp_path, **kwargs)


# -- label noise ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("train_size", "label_noise", "expected"), [
    (100, 0.0, 0), (100, 0.15, 15), (100, 0.5, 50), (100, 1.0, 100),
    (37, 0.15, 6),  # p·n = 5.55: round gives 6, int/floor 5
    (41, 0.2, 8),   # p·n = 8.2: round gives 8, ceil 9
])
def test_label_noise_changes_exactly_round_p_n_training_labels(afhq_root, train_size, label_noise, expected, caplog):
    assert expected == round(label_noise * train_size)  # README: "round(p·n) training images"
    clean = loaded(afhq_root, train_size=train_size, val_size=20)
    with caplog.at_level(logging.INFO, logger="datamodules.base"):
        dm = loaded(afhq_root, train_size=train_size, val_size=20, label_noise=label_noise)
    assert torch.equal(dm.datasets["train"].inputs, clean.datasets["train"].inputs)
    before, after = clean.datasets["train"].targets, dm.datasets["train"].targets
    changed = torch.nonzero(before != after).flatten()
    assert len(changed) == expected
    assert torch.equal(changed, dm.noisy_indices) and torch.equal(dm.clean_train_targets, before)
    assert torch.equal(dm.relabeled_indices, changed)  # "other_class": every picked label changes
    assert after.min() >= 0 and after.max() <= 2
    for split in ("val", "test"):
        assert torch.equal(dm.datasets[split].targets, clean.datasets[split].targets)
    again = loaded(afhq_root, train_size=train_size, val_size=20, label_noise=label_noise)
    assert torch.equal(again.datasets["train"].targets, after)
    logged = [r.getMessage() for r in caplog.records if r.name == "datamodules.base"]
    assert logged == ([f"AnimalFacesDataModule: label_noise={label_noise:g} (other_class) relabeled {expected} of "
                       f"{train_size} training samples and changed {expected} labels (seed 2021); their indices are "
                       "in `relabeled_indices` and `noisy_indices`"] if label_noise else [])


def test_random_labels_move_to_the_other_classes_uniformly(afhq_root):
    dm = loaded(afhq_root, val_size=20, label_noise=1.0)
    before, after = dm.clean_train_targets, dm.datasets["train"].targets
    assert (before != after).all()
    offsets = (after - before) % 3
    assert set(offsets.tolist()) == {1, 2} and 30 <= (offsets == 1).sum() <= 70  # 100 draws, p = 1/2
    half = loaded(afhq_root, val_size=20, label_noise=0.5).noisy_indices
    assert not torch.equal(loaded(afhq_root, val_size=20, label_noise=0.5, seed=3).noisy_indices, half)


@pytest.mark.parametrize(("train_size", "label_noise", "picked"), [
    (100, 0.15, 15),  # the lecture's partially shuffled set
    (37, 0.15, 6),    # p·n = 5.55: round gives 6, int 5
    (100, 1.0, 100),  # the lecture's "afhq_random"
])
def test_shuffle_permutes_the_labels_of_round_p_n_training_images(afhq_root, train_size, label_noise, picked):
    clean = loaded(afhq_root, train_size=train_size, val_size=20)
    dm = loaded(afhq_root, train_size=train_size, val_size=20, label_noise=label_noise, label_noise_mode="shuffle")
    before, after, chosen = clean.datasets["train"].targets, dm.datasets["train"].targets, dm.relabeled_indices
    assert len(chosen) == picked and torch.equal(chosen, chosen.unique())
    others = torch.ones(train_size, dtype=torch.bool).index_fill_(0, chosen, False)
    assert torch.equal(after[others], before[others])  # only the picked ones are touched
    assert torch.bincount(after[chosen], minlength=3).tolist() == torch.bincount(before[chosen], minlength=3).tolist()
    assert torch.equal(dm.noisy_indices, torch.nonzero(after != before).flatten())
    assert 0 < len(dm.noisy_indices) <= picked
    for split in ("val", "test"):
        assert torch.equal(dm.datasets[split].targets, clean.datasets[split].targets)
    again = loaded(afhq_root, train_size=train_size, val_size=20, label_noise=label_noise, label_noise_mode="shuffle")
    assert torch.equal(again.datasets["train"].targets, after)


def test_setup_runs_once_and_logs_once(afhq_root, caplog):
    dm = make(afhq_root, train_size=20, val_size=20, label_noise=0.5)
    with caplog.at_level(logging.INFO, logger="datamodules.base"):
        dm.setup("fit")
        dm.setup("test")
        dm.train_dataloader()
    assert len([r for r in caplog.records if r.name == "datamodules.base"]) == 1


# -- files: missing, download, extraction -----------------------------------------------------------
def test_missing_tree_with_download_off_names_the_folder_and_layout(tmp_path, no_network):
    dm = make(tmp_path / "data")
    dm.prepare_data()
    with pytest.raises(RuntimeError, match=r"Animal Faces \(AFHQ\) not found in data_dir=.*data.*download=False.*"
                                           r"data/afhq/train/\{cat,dog,wild\}/ and .*data/afhq/val/"):
        dm.setup()
    assert no_network == []


def test_incomplete_tree_is_not_taken_as_extracted(tmp_path, no_network):
    (tmp_path / "afhq" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(RuntimeError, match=r"afhq exists but is incomplete \(missing .*train/dog.*val/wild\)"):
        make(tmp_path, download=True).prepare_data()
    assert no_network == []


def test_download_without_network_fails_fast_and_leaves_nothing(tmp_path, no_network):
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"from https://osf.io/kgfvj/download .*download failed: .*network "
                                           r"disabled.*run again with download=True"):
        make(tmp_path / "data", download=True).prepare_data()
    assert time.monotonic() - start < 5 and len(no_network) >= 1
    assert tree_listing(tmp_path / "data") == []


def test_download_and_extract_from_a_local_server(tmp_path):
    served = tmp_path / "mirror"
    served.mkdir()
    md5 = make_afhq_zip(str(served / "afhq.zip"), per_class=12, val_per_class=3)
    data = tmp_path / "data"
    with serve_directory(str(served)) as (url, requests):
        dm = make(data, download=True, url=f"{url}afhq.zip", md5=md5, train_size=20, val_size=10)
        dm.prepare_data()
        # torchvision opens the URL twice: a redirect check, then the download
        assert requests == ["GET /afhq.zip", "GET /afhq.zip"]
        folders = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_dir())
        assert folders == ["afhq", "afhq/train", *(f"afhq/{d}" for d in LAYOUT[:3]), "afhq/val",
                           *(f"afhq/{d}" for d in LAYOUT[3:])]
        assert len(list((data / "afhq").rglob("*.png"))) == 45
        assert sorted(os.listdir(data)) == ["afhq"]  # the archive and the staging folder are gone
        dm.prepare_data()
        make(data, download=True, url=f"{url}afhq.zip").prepare_data()
        assert len(requests) == 2  # the tree is there: no new request
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 20, "val": 10, "test": 9}


def test_wrong_md5_is_a_clear_error_and_leaves_nothing(tmp_path):
    served = tmp_path / "mirror"
    served.mkdir()
    md5 = make_afhq_zip(str(served / "afhq.zip"), per_class=4, val_per_class=2)
    with serve_directory(str(served)) as (url, requests):
        dm = make(tmp_path / "data", download=True, url=f"{url}afhq.zip", md5="0" * 32)
        with pytest.raises(RuntimeError, match=rf"afhq.zip from {url}afhq.zip into .*data/ failed \(md5 mismatch: "
                                               rf"the file has {md5}, expected 0{{32}};.*partial file was removed"):
            dm.prepare_data()
        assert tree_listing(tmp_path / "data") == []
        make(tmp_path / "data", download=True, url=f"{url}afhq.zip", md5=md5).prepare_data()  # the next run retries
        assert requests.count("GET /afhq.zip") == 4  # two per download
    assert (tmp_path / "data" / "afhq" / "val" / "wild").is_dir()


def test_archive_without_the_afhq_layout(tmp_path):
    served = tmp_path / "mirror"
    served.mkdir()
    with zipfile.ZipFile(served / "afhq.zip", "w") as archive:
        archive.writestr("afhq/train/cat/x.txt", "not the layout")
    with serve_directory(str(served)) as (url, _):
        with pytest.raises(RuntimeError, match=r"the archive holds no afhq/ tree with train/ and val/ folders"):
            make(tmp_path / "data", download=True, url=f"{url}afhq.zip").prepare_data()
    assert tree_listing(tmp_path / "data") == []


def test_connection_dropped_mid_file_is_a_clear_error_and_leaves_nothing(tmp_path):
    make_afhq_zip(str(tmp_path / "afhq.zip"), per_class=6, val_per_class=2)
    with serve_dropping_connection((tmp_path / "afhq.zip").read_bytes()) as (base_url, requests):
        url = f"{base_url}afhq.zip"
        with pytest.raises(RuntimeError, match=rf"from {url} into .*failed \(not a complete zip archive .*the "
                                               r"connection may have dropped mid-file\).*partial file was removed"):
            make(tmp_path / "data", download=True, url=url).prepare_data()
        assert requests == ["GET /afhq.zip", "GET /afhq.zip"]
    assert tree_listing(tmp_path / "data") == []
    with pytest.raises(RuntimeError, match="Animal Faces .AFHQ. not found"):
        make(tmp_path / "data").setup()


def test_interrupted_extraction_leaves_no_tree(tmp_path, monkeypatch):
    """Ctrl-C after half the files were extracted: nothing that looks extracted stays behind."""
    extract = animal_faces.extract_archive

    def extract_then_interrupt(archive, target):
        extract(archive, target)
        assert any(Path(target).rglob("*.png"))
        raise KeyboardInterrupt

    served = tmp_path / "mirror"
    served.mkdir()
    make_afhq_zip(str(served / "afhq.zip"), per_class=4, val_per_class=2)
    monkeypatch.setattr(animal_faces, "extract_archive", extract_then_interrupt)
    with serve_directory(str(served)) as (url, _):
        with pytest.raises(KeyboardInterrupt):
            make(tmp_path / "data", download=True, url=f"{url}afhq.zip").prepare_data()
    assert tree_listing(tmp_path / "data") == []


# -- the CLI --------------------------------------------------------------------------------------
def test_memorization_config_links_sizes_into_big_animal_net(afhq_root, in_tmp_dir, repo_root):
    cli = build_cli(["--config", str(repo_root / "configs" / "memorization.yaml"),
                     "--data.data_dir", str(afhq_root), "--data.cache_dir", "null", "--data.label_noise", "0.15",
                     "--data.label_noise_mode", "shuffle"],
                    run=False)
    dm, model = cli.datamodule, cli.model
    assert isinstance(dm, AnimalFacesDataModule) and (dm.label_noise, dm.label_noise_mode) == (0.15, "shuffle")
    assert (dm.train_size, dm.val_size, dm.batch_size) == (100, 100, 128)
    sizes = [layer.out_features for layer in model.modules() if isinstance(layer, torch.nn.Linear)]
    assert model.hparams.input_size == 3072 and sizes == [124, 64, 3]
    assert model.hparams.optimizer == "sgd" and model.hparams.lr == 5e-3 and model.hparams.momentum == 0.9
    assert cli.trainer.max_epochs == 200
    assert not any(type(c).__name__ == "EarlyStopping" for c in cli.trainer.callbacks)


def test_test_rotation_adds_a_rotated_test_split_served_by_test_dataloader(afhq_root):
    dm = loaded(afhq_root, image_size=16, test_rotation=30)
    plain, rotated = dm.datasets["test"], dm.datasets["test_rotated"]
    assert rotated.inputs.shape == plain.inputs.shape and torch.equal(rotated.targets, plain.targets)
    assert not torch.equal(rotated.inputs, plain.inputs)
    assert torch.equal(next(iter(dm.test_dataloader()))[0], rotated.inputs[: dm.batch_size])
