"""Every example runs with ``--fast`` and produces what it promises (numbers, plots, clear errors)."""

import json
from pathlib import Path

import pytest
from PIL import Image

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


def test_bitmoji_compares_both_setups(example, in_tmp_dir):
    results = example("bitmoji").main(["--fast", "--out", "out"])
    assert [r["setup"] for r in results] == ["lecture (plain)", "regularized"]
    assert all(0.0 <= r["val acc (best checkpoint)"] <= 1.0 for r in results)
    assert_png(in_tmp_dir / "out" / "bitmoji.png")


def test_bitmoji_without_data_says_so(example, in_tmp_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example("bitmoji").main(["--data-dir", "nowhere", "--out", "out"])
    assert exit_info.value.code == 1
    assert "no Bitmoji data in nowhere" in capsys.readouterr().err


def test_fashion_mnist_compares_both_nets(example, in_tmp_dir):
    results = example("fashion_mnist").main(["--fast", "--out", "out"])
    assert [r["net"] for r in results] == ["784-512-512-10", "784-265-64-32-10 BN+Dropout(0.5)"]
    assert all(0.0 <= r["test acc (best checkpoint)"] <= 1.0 for r in results)
    assert_png(in_tmp_dir / "out" / "fashion_mnist.png")


def test_fashion_mnist_without_data_says_so(example, in_tmp_dir, capsys, no_network):
    with pytest.raises(SystemExit) as exit_info:
        example("fashion_mnist").main(["--data-dir", "nowhere", "--no-download", "--out", "out"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: FashionMNIST not found in data_dir='nowhere'") and "Traceback" not in err
