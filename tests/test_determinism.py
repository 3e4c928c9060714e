"""Two runs of the same config give identical metrics and identical weights (the CLI's deterministic default)."""

import pytest
import torch

from datamodules.fakes import write_image_folder
from lit_reg.cli import build_cli

QUIET = ["--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
         "--trainer.enable_checkpointing", "false"]
MODELS = {
    "DenseClassifier": ["--model", "DenseClassifier", "--data", "FashionMNISTDataModule", "--data.data_dir", "data",
                        "--data.download", "false", "--model.hidden_sizes", "[32, 16]", "--model.dropout", "0.3",
                        "--model.batchnorm", "true"],
    "BitmojiClassifier": ["--model", "BitmojiClassifier", "--data", "ImageFolderDataModule", "--data.train_dir",
                          "images", "--data.val_fraction", "0.5", "--data.image_size", "12", "--data.augment", "true",
                          "--data.cache_dir", "null", "--data.batch_size", "4", "--model.hidden_sizes", "[8]"],
    "DenseRegressor": ["--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--data.batch_size", "4",
                       "--model.hidden_sizes", "[16]", "--model.dropout", "0.2"],
}


@pytest.fixture
def nondeterministic_start():
    """Deterministic algorithms off before the test (an earlier test may have left them on), restored after."""
    enabled = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    yield
    torch.use_deterministic_algorithms(enabled)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_same_config_same_metrics_and_weights(in_tmp_dir, fashion_root, nondeterministic_start, model):
    write_image_folder(in_tmp_dir / "images", {"not_tom": 6, "tom": 6})
    runs = [build_cli(["fit", *MODELS[model], *QUIET]) for _ in range(2)]
    assert torch.are_deterministic_algorithms_enabled()  # the CLI's default trainer.deterministic: true
    assert runs[0].config["fit"]["trainer"]["deterministic"] is True
    first, second = ({k: float(v) for k, v in r.trainer.callback_metrics.items()} for r in runs)
    assert first == second and "val_loss" in first
    for (name, a), (_, b) in zip(runs[0].model.state_dict().items(), runs[1].model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    other = build_cli(["fit", *MODELS[model], *QUIET, "--seed_everything", "3"])
    assert not torch.equal(next(iter(other.model.parameters())), next(iter(runs[0].model.parameters())))
