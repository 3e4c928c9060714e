"""``lit_reg.notebook.lecture_setup``: the lecture notebooks' first cell."""

from pathlib import Path

import pytest

from datamodules import FashionMNISTDataModule
from datamodules.fakes import write_fashion_mnist
from lit_reg.notebook import example, lecture_setup, project_root


def test_fast_mode_runs_in_a_new_temporary_folder_on_generated_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    setup = lecture_setup("lecture_xyz", fashion_mnist=True, environ={"LIT_REG_FAST": "1"})
    assert setup.fast
    assert setup.logs.parent == tmp_path and setup.logs.name.startswith("lit_reg_lecture_xyz_")
    assert setup.data_dir == str(setup.logs / "fake_fashion_mnist")
    data = FashionMNISTDataModule(setup.data_dir, download=False, val_fraction=0.1)
    data.setup("fit")
    assert len(data.datasets["train"]) + len(data.datasets["val"]) == 300 and len(data.datasets["test"]) == 100


def test_without_fast_runs_go_to_the_projects_logs_and_the_real_set_is_used(tmp_path, monkeypatch, capsys):
    real = tmp_path / "real"
    write_fashion_mnist(str(real), num_train=20, num_test=10, compress=True)
    (tmp_path / "project" / "notebooks").mkdir(parents=True)
    (tmp_path / "project" / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path / "project" / "notebooks")
    setup = lecture_setup("lecture_004", fashion_mnist=True, environ={"LIT_REG_FASHION_MNIST": str(real)})
    assert not setup.fast
    assert setup.logs == tmp_path / "project" / "logs" / "notebooks" / "lecture_004"
    assert setup.data_dir == str(real)
    assert capsys.readouterr().out == f"FAST=False, data in {real}, runs in {setup.logs}\n"


def test_a_missing_real_set_is_replaced_by_generated_files_and_said_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    setup = lecture_setup("lecture_001", fashion_mnist=True, environ={"LIT_REG_FASHION_MNIST": str(tmp_path / "no")})
    assert setup.data_dir == str(tmp_path / "logs" / "notebooks" / "lecture_001" / "fake_fashion_mnist")
    assert any(Path(setup.data_dir).glob("**/train-images-idx3-ubyte"))
    assert "not the real set" in capsys.readouterr().out


def test_no_data_is_prepared_unless_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    setup = lecture_setup("lecture_000", environ={})
    assert setup.data_dir is None and not setup.logs.exists()


@pytest.mark.parametrize("depth", [0, 2])
def test_project_root_is_the_nearest_folder_with_pyproject(tmp_path, depth):
    (tmp_path / "pyproject.toml").write_text("")
    start = tmp_path.joinpath(*["sub"] * depth)
    assert project_root(start) == tmp_path


def test_example_imports_an_example_script_of_the_checkout_and_names_a_missing_one():
    weight_norm = example("weight_norm")
    assert callable(weight_norm.train) and callable(weight_norm.plot)
    with pytest.raises(FileNotFoundError, match="no example 'nope' in .*examples: the notebooks need a checkout"):
        example("nope")
