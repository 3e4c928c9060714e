"""Every example runs with ``--fast`` and produces what it promises (numbers, plots, clear errors)."""

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
from PIL import Image

from datamodules import FashionMNISTDataModule, ImageFolderDataModule
from lit_reg import BitmojiClassifier, DenseClassifier

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def assert_png(path: Path, min_size: tuple[int, int] = (300, 200)) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        image.verify()


def test_autograd_check_reproduces_the_lecture_gradients(example, in_tmp_dir, capsys):
    module = example("autograd_check")
    grads = module.main(["--out", "out"])
    assert grads == {
        "net.0.weight": [-0.3480, -1.3032], "net.0.bias": [-0.3480, -1.3032],
        "net.2.weight": [-2.9191, -2.4229], "net.2.bias": [-3.3142],
    }
    assert json.loads((in_tmp_dir / "out" / "gradients.json").read_text()) == grads
    printed = capsys.readouterr().out
    assert printed.count("True") == 4 and "False" not in printed


def test_early_stopping_stops_far_before_the_epoch_budget(example, in_tmp_dir):
    result = example("early_stopping").main(["--fast", "--out", "out"])
    assert 3 < result["epochs run"] < result["max epochs"] // 2
    assert result["stopped at epoch"] == result["epochs run"] - 1
    assert result["best epoch"] == result["stopped at epoch"] - 3  # patience 3
    assert_png(in_tmp_dir / "out" / "early_stopping.png")


def test_weight_norm_grows_and_weight_decay_keeps_it_lower(example, in_tmp_dir):
    plain, decayed = example("weight_norm").main(["--fast", "--out", "out"])
    assert plain["norm at start"] == pytest.approx(decayed["norm at start"])  # same seed, same start
    assert plain["norm at end"] > plain["norm at start"]
    assert decayed["norm at end"] < plain["norm at end"]
    assert plain["train loss at end"] < plain["train loss at start"]
    assert_png(in_tmp_dir / "out" / "weight_norm.png", min_size=(1000, 300))


def best_checkpoint(run: Path) -> Path:
    """The one best-``val_loss`` checkpoint a run with ``default_callbacks`` kept beside ``last.ckpt``."""
    (best,) = [p for p in (run / "version_0" / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt"]
    return best


def evaluate(stage: str, checkpoint: Path, model_cls: type[pl.LightningModule],
             datamodule: pl.LightningDataModule) -> dict[str, float]:
    """``validate`` or ``test`` of the model in ``checkpoint`` on ``datamodule``, by a fresh plain Trainer."""
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    (metrics,) = getattr(trainer, stage)(model_cls.load_from_checkpoint(checkpoint), datamodule=datamodule,
                                         verbose=False)
    return metrics


def test_bitmoji_reports_each_setups_best_checkpoint_accuracy(example, in_tmp_dir):
    module = example("bitmoji")
    results = module.main(["--fast", "--out", "out"])
    assert [r["setup"] for r in results] == ["lecture (plain)", "regularized"]
    data = in_tmp_dir / "out" / "fake_bitmoji"
    for result, run in zip(results, ("lecture", "regularized"), strict=True):
        best = best_checkpoint(in_tmp_dir / "out" / run)
        assert result["epochs"] == 2 and best.name.startswith(f"epoch={result['best epoch']}-")
        datamodule = ImageFolderDataModule(str(data / "train"), val_dir=str(data / "valid"), image_size=50,
                                           batch_size=32, cache_dir=None, **module.SETUPS[result["setup"]]["data"])
        assert result["val acc (best checkpoint)"] == evaluate("validate", best, BitmojiClassifier,
                                                               datamodule)["val_acc"]
    assert_png(in_tmp_dir / "out" / "bitmoji.png")


@pytest.mark.slow
def test_bitmoji_plot_history_holds_exactly_the_trained_epochs(example, in_tmp_dir):
    for result in example("bitmoji").main(["--fast", "--out", "out"]):
        assert sorted(result["curves"].history) == list(range(result["epochs"])), result["setup"]


def test_bitmoji_without_data_says_so(example, in_tmp_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example("bitmoji").main(["--data-dir", "nowhere", "--out", "out"])
    assert exit_info.value.code == 1
    assert "no Bitmoji data in nowhere" in capsys.readouterr().err


def test_fashion_mnist_reports_each_nets_best_checkpoint_test_accuracy(example, in_tmp_dir):
    results = example("fashion_mnist").main(["--fast", "--out", "out"])
    assert [r["net"] for r in results] == ["784-512-512-10", "784-265-64-32-10 BN+Dropout(0.5)"]
    datamodule = FashionMNISTDataModule(str(in_tmp_dir / "out" / "fake_fashion_mnist"), batch_size=64, download=False)
    for result, run in zip(results, ("784-512-512-10", "784-265-64-32-10"), strict=True):
        best = best_checkpoint(in_tmp_dir / "out" / run)
        assert result["epochs"] == 2 and best.name.startswith(f"epoch={result['best epoch']}-")
        accuracy = result["test acc (best checkpoint)"]
        assert accuracy == evaluate("test", best, DenseClassifier, datamodule)["test_acc"]
        assert accuracy > 0.15  # 10 classes: chance is 0.1; the generated images' brightness gives the class away
    assert_png(in_tmp_dir / "out" / "fashion_mnist.png")


def test_fashion_mnist_without_data_says_so(example, in_tmp_dir, capsys, no_network):
    with pytest.raises(SystemExit) as exit_info:
        example("fashion_mnist").main(["--data-dir", "nowhere", "--no-download", "--out", "out"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: FashionMNIST not found in data_dir='nowhere'") and "Traceback" not in err


def test_rotated_test_reports_both_test_sets_of_each_best_checkpoint(example, in_tmp_dir):
    results = example("rotated_test").main(["--fast", "--out", "out"])
    assert [r["net"] for r in results] == ["plain", "regularized", "regularized + rotation ±25°"]
    root = str(in_tmp_dir / "out" / "fake_fashion_mnist")
    for result, run in zip(results, ("plain", "regularized", "rotation"), strict=True):
        best = best_checkpoint(in_tmp_dir / "out" / run)
        for split in ("test", "test_rotated"):
            data = FashionMNISTDataModule(root, download=False, test_rotation=25)
            data.test_split = split
            assert result[f"{split} acc"] == evaluate("test", best, DenseClassifier, data)["test_acc"], (run, split)
        assert result["drop"] == result["test acc"] - result["test_rotated acc"]
    assert_png(in_tmp_dir / "out" / "rotated_test.png")


def test_data_size_trains_on_each_balanced_subset_and_reports_train_and_test_accuracy(example, in_tmp_dir):
    results = example("data_size").main(["--fast", "--out", "out"])
    assert [r["train size"] for r in results] == [30, 100]
    root = str(in_tmp_dir / "out" / "fake_fashion_mnist")
    for result in results:
        best = best_checkpoint(in_tmp_dir / "out" / f"train_size_{result['train size']}")
        data = FashionMNISTDataModule(root, download=False, train_size=result["train size"])
        data.test_split = "train"
        assert result["train acc"] == evaluate("test", best, DenseClassifier, data)["test_acc"]
        data.test_split = "test"
        assert result["test acc"] == evaluate("test", best, DenseClassifier, data)["test_acc"]
        assert result["gap"] == result["train acc"] - result["test acc"]
    assert_png(in_tmp_dir / "out" / "data_size.png")
