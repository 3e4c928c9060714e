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
    message = r"`dataset` must be one of \['quadratic', 'linear', 'lecture000'\], got 'cubic'"
    with pytest.raises(ValueError, match=message):
        ToyRegressionDataModule("cubic")


def test_lecture000_set_is_the_lectures_exact_numbers_whatever_the_seed():
    torch.manual_seed(0)  # the lecture's cell, verbatim
    x = torch.arange(-3, 3, 0.15)
    y = x**2 + x * torch.randn(len(x))
    for seed in (2021, 7):
        dm = ToyRegressionDataModule("lecture000", seed=seed)
        dm.setup()
        train, val, test = (dm.datasets[s] for s in ("train", "val", "test"))
        assert train.inputs.shape == train.targets.shape == (40, 1)
        assert torch.equal(train.inputs[:, 0], x) and torch.equal(train.targets[:, 0], y)
        assert val.inputs.shape == val.targets.shape == (6, 1) and val.inputs.dtype == torch.float32
        assert val.inputs[:, 0].tolist() == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0]
        assert val.targets[:, 0].tolist() == [9.0, 4.0, 1.0, 0.0, 1.0, 4.0]
        assert torch.equal(test.inputs, val.inputs) and torch.equal(test.targets, val.targets)
    torch.testing.assert_close(y[:3], torch.tensor([12.3775, 11.4067, 7.9666]), atol=1e-4, rtol=0)


def test_lecture000_set_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ToyRegressionDataModule("lecture000").setup()
    assert torch.equal(torch.rand(3), expected)


def test_lecture000_set_seed_orders_the_batches():
    def first_batch(seed):
        dm = ToyRegressionDataModule("lecture000", batch_size=8, seed=seed)
        dm.setup()
        return next(iter(dm.train_dataloader()))[0]

    assert torch.equal(first_batch(1), first_batch(1)) and not torch.equal(first_batch(1), first_batch(2))


def test_demo_config_stops_early(in_tmp_dir, repo_root):
    cli = build_cli(["fit", "--config", str(repo_root / "configs" / "toy_regression.yaml"),
                     "--trainer.enable_progress_bar", "false"])
    trainer = cli.trainer
    assert trainer.early_stopping_callback is not None and trainer.early_stopping_callback.patience == 3
    assert trainer.early_stopping_callback.stopped_epoch > 0
    assert trainer.current_epoch < 201 // 2
