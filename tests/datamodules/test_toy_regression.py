import pytest
import torch

from datamodules import ToyRegressionDataModule
from lit_reg.cli import build_cli


def test_quadratic_set_matches_the_lecture():
    dm = ToyRegressionDataModule("quadratic", seed=3)
    dm.setup()
    x, y = dm.datasets["train"].inputs, dm.datasets["train"].targets
    assert x.shape == y.shape == (40, 1)
    torch.testing.assert_close(x[:, 0], torch.arange(-3, 3, 0.15))
    noise = torch.randn(40, 1, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(y, x**2 + x * noise)
    torch.testing.assert_close(dm.datasets["val"].targets, x**2)


def test_linear_set_matches_the_lecture():
    dm = ToyRegressionDataModule("linear", seed=5)
    dm.setup()
    x, y = dm.datasets["train"].inputs, dm.datasets["train"].targets
    assert x.shape == (10, 1) and float(x.min()) >= 0 and float(x.max()) < 1
    grid = dm.datasets["val"].inputs
    assert grid.shape == (40, 1)
    torch.testing.assert_close(dm.datasets["test"].targets, 2 * grid)
    assert not torch.allclose(y, 2 * x)


def test_same_seed_same_data_other_seed_other_data():
    def train_targets(seed):
        dm = ToyRegressionDataModule("quadratic", seed=seed)
        dm.setup()
        return dm.datasets["train"].targets

    assert torch.equal(train_targets(1), train_targets(1))
    assert not torch.equal(train_targets(1), train_targets(2))


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match=r"`dataset` must be one of \['quadratic', 'linear'\], got 'cubic'"):
        ToyRegressionDataModule("cubic")


def test_demo_config_stops_early(in_tmp_dir, repo_root):
    cli = build_cli(["fit", "--config", str(repo_root / "configs" / "toy_regression.yaml"),
                     "--trainer.enable_progress_bar", "false"])
    trainer = cli.trainer
    assert trainer.early_stopping_callback is not None and trainer.early_stopping_callback.patience == 3
    assert trainer.early_stopping_callback.stopped_epoch > 0
    assert trainer.current_epoch < 201 // 2
