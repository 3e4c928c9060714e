"""Every example runs with ``--fast`` and produces what it promises (numbers, plots, clear errors)."""

import json
import re
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
    """Lecture 000's numbers, as it prints them (4 decimals): the gradients, the weights after one SGD step
    (lr 0.1) and the hidden weight's gradient accumulated over 5 ``backward()`` calls."""
    module = example("autograd_check")
    result = module.main(["--out", "out"])
    assert result["gradients"] == {
        "net.0.weight": [-0.3480, -1.3032], "net.0.bias": [-0.3480, -1.3032],
        "net.2.weight": [-2.9191, -2.4229], "net.2.bias": [-3.3142],
    }
    assert result["after_step"] == {
        "net.0.weight": [1.0348, -0.8697], "net.0.bias": [1.0348, 2.1303],
        "net.2.weight": [1.2919, 2.2423], "net.2.bias": [-0.6686],
    }
    accumulated = result["accumulated"]
    assert len(accumulated) == 5 and accumulated[0] == [-0.1991, -0.5976] and accumulated[4] == [-0.9957, -2.9882]
    for k, values in enumerate(accumulated, start=1):  # they add up: the k-th is k times the first
        assert values == pytest.approx([k * -0.19915, k * -0.59764], abs=2e-4), k
    assert json.loads((in_tmp_dir / "out" / "gradients.json").read_text()) == result["gradients"]
    assert json.loads((in_tmp_dir / "out" / "sgd_step.json").read_text()) == {
        "lr": 0.1, "after_step": result["after_step"], "accumulated_w_hidden_grad": accumulated}
    printed = capsys.readouterr().out
    rows = {tuple(re.split(r"\s{2,}", line.strip())) for line in printed.splitlines()}  # the table's cells
    for name, values in [("b_out", "[-3.3142]"), ("w_out", "[-2.9191, -2.4229]"), ("b_hidden", "[-0.3480, -1.3032]"),
                         ("w_hidden", "[-0.3480, -1.3032]"), ("b_out", "[-0.6686]"), ("w_out", "[1.2919, 2.2423]"),
                         ("b_hidden", "[1.0348, 2.1303]"), ("w_hidden", "[1.0348, -0.8697]"),
                         ("1", "[-0.1991, -0.5976]"), ("5", "[-0.9957, -2.9882]")]:
        assert (name, values, values, "True") in rows, (name, values)  # torch, then the lecture's, then match
    assert ("2", "[-0.3983, -1.1953]") in rows and ("4", "[-0.7966, -2.3906]") in rows  # no lecture value quoted
    assert printed.count("True") == 10 and "False" not in printed
    assert "Weights after one SGD step (lr 0.1):" in printed


def test_early_stopping_reports_both_rules_far_before_the_epoch_budget(example, in_tmp_dir, capsys):
    patience, consecutive = example("early_stopping").main(["--fast", "--out", "out"])
    assert (patience["rule"], consecutive["rule"]) == ("patience", "consecutive_increase")
    for row in (patience, consecutive):
        assert 3 < row["epochs run"] < row["max epochs"] // 2
        assert row["stopped at epoch"] == row["epochs run"] - 1
        assert row["stopped at epoch"] - row["best epoch"] >= 3  # patience 3
    assert patience["best epoch"] == patience["stopped at epoch"] - 3
    # one seed, one trajectory: a rise is never a new best, so the lecture's rule stops at the same epoch or later
    assert consecutive["stopped at epoch"] >= patience["stopped at epoch"]
    assert consecutive["best epoch"] >= patience["best epoch"]
    assert (patience["lecture stop"], consecutive["lecture stop"]) == ("-", 37)
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rule "))
    assert [line.split()[:3] for line in lines[header + 2:header + 4]] == [
        ["patience", str(patience["epochs run"]), str(patience["stopped at epoch"])],
        ["consecutive_increase", str(consecutive["epochs run"]), str(consecutive["stopped at epoch"])]]
    assert_png(in_tmp_dir / "out" / "early_stopping.png")


def test_early_stopping_within_a_small_budget_reports_no_stop(example, in_tmp_dir):
    rows = example("early_stopping").main(["--out", "out", "--max-epochs", "3", "--seed", "0"])
    assert [(r["epochs run"], r["stopped at epoch"], r["max epochs"], r["seed"]) for r in rows] == [(3, "-", 3, 0)] * 2
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
