"""Bad input on the command line: one clear error naming the culprit, fast, with every existing file untouched.

Each case runs ``lit-reg`` in-process (``cli_main``) from a folder holding tiny FashionMNIST files and an
earlier run; the README's "When something is wrong" table lists the same cases.
"""

import re
import time
from pathlib import Path

import pytest
import yaml

from datamodules.fakes import write_fashion_mnist
from lit_reg.cli import build_cli, cli_main
from tests.datamodules.image_trees import write_tree

FASHION = ["--model", "DenseClassifier", "--data", "FashionMNISTDataModule", "--data.data_dir", "data",
           "--data.download", "false", "--model.hidden_sizes", "[8]", "--trainer.max_epochs", "1",
           "--trainer.enable_progress_bar", "false"]
IMAGES = ["--model", "BitmojiClassifier", "--data", "ImageFolderDataModule", "--data.image_size", "8",
          "--data.cache_dir", "cache", "--model.hidden_sizes", "[8]", "--trainer.max_epochs", "1",
          "--trainer.enable_progress_bar", "false"]
TOY = ["--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--trainer.max_epochs", "1",
       "--trainer.enable_progress_bar", "false"]


@pytest.fixture
def workspace(in_tmp_dir):
    """tiny FashionMNIST in data/, a finished classifier run in logs/, and a few damaged files."""
    write_fashion_mnist("data", num_train=200, num_test=50)
    write_fashion_mnist("truncated", num_train=200, num_test=50)
    images = Path("truncated/FashionMNIST/raw/train-images-idx3-ubyte")
    images.write_bytes(images.read_bytes()[:3000])
    cli = build_cli(["fit", *FASHION])
    good = Path(cli.trainer.checkpoint_callback.best_model_path)
    Path("truncated.ckpt").write_bytes(good.read_bytes()[:2000])
    write_tree(Path("images/train"), {"not_tom": 4, "tom": 4})
    write_tree(Path("images/other_classes"), {"cat": 2, "tom": 2})
    write_tree(Path("images/empty_class"), {"not_tom": 2, "tom": 0})
    write_tree(Path("images/corrupt"), {"not_tom": 3, "tom": 3})
    Path("images/corrupt/tom/1.png").write_bytes(b"not a png at all")
    Path("unknown_key.yaml").write_text(yaml.safe_dump({"model": {"class_path": "DenseClassifier",
                                                                  "init_args": {"dropoutt": 0.3}}}))
    return {"good_ckpt": str(good)}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


CASES = [
    ("missing data dir, download off", ["fit", *FASHION, "--data.data_dir", "nowhere"], 1,
     r"FashionMNIST not found in data_dir='nowhere' \(download=False\)\. Expected the IDX files"),
    ("missing data dir, download on, no network", ["fit", *FASHION, "--data.data_dir", "nowhere",
                                                   "--data.download", "true"], 1,
     r"FashionMNIST not found in data_dir='nowhere' \(download failed: .*network"),
    ("truncated IDX file", ["fit", *FASHION, "--data.data_dir", "truncated"], 1,
     r"truncated/FashionMNIST/raw/train-images-idx3-ubyte .*is truncated or corrupt\. Delete"),
    ("dropout outside [0, 1)", ["fit", *FASHION, "--model.dropout", "1.5"], 1,
     r"`dropout` must be in \[0\.0, 1\.0\), got 1\.5"),
    ("negative learning rate", ["fit", *FASHION, "--model.lr", "-0.1"], 1, r"`lr` must be in \(0\.0, inf\), got -0\.1"),
    ("negative weight decay", ["fit", *FASHION, "--model.weight_decay=-0.0001"], 1,
     r"`weight_decay` must be in \[0\.0, inf\), got -0\.0001"),
    ("unknown activation", ["fit", *FASHION, "--model.activation", "swish"], 1,
     r"`activation` must be one of \['elu', 'leaky_relu', 'relu', 'sigmoid', 'tanh'\], got 'swish'"),
    ("unknown optimizer", ["fit", *FASHION, "--model.optimizer", "lbfgs"], 1,
     r"`optimizer` must be one of \['adagrad', 'adam', 'adamw', 'rmsprop', 'sgd'\], got 'lbfgs'"),
    ("momentum with an optimizer without it", ["fit", *FASHION, "--model.momentum", "0.9"], 1,
     r"`momentum` applies only to optimizer \['sgd', 'rmsprop'\]"),
    ("empty hidden_sizes", ["fit", *FASHION, "--model.hidden_sizes", "[]"], 1,
     r"`hidden_sizes` must be a non-empty list of positive integers, got \[\]"),
    ("a zero in hidden_sizes", ["fit", *FASHION, "--model.hidden_sizes", "[8, 0]"], 1,
     r"`hidden_sizes` must be a non-empty list of positive integers, got \[8, 0\]"),
    ("batch_size <= 0", ["fit", *FASHION, "--data.batch_size", "0"], 1,
     r"`batch_size` must be a positive integer, got 0"),
    ("val_fraction leaving no training sample", ["fit", *FASHION, "--data.val_fraction", "0.999"], 1,
     r"`val_fraction`=0\.999 of 200 samples leaves 200 for validation and 0 for training"),
    ("val_fraction leaving no validation sample", ["fit", *FASHION, "--data.val_fraction", "0.001"], 1,
     r"`val_fraction`=0\.001 of 200 samples leaves 0 for validation"),
    ("unknown learning-rate scheduler", ["fit", *FASHION, "--model.lr_scheduler", "warp"], 1,
     r"`lr_scheduler` must be one of \[.*'cosine'.*\], got 'warp'"),
    ("image folder missing", ["fit", *IMAGES, "--data.train_dir", "images/nowhere"], 1,
     r"`train_dir` directory images/nowhere does not exist"),
    ("corrupt image file", ["fit", *IMAGES, "--data.train_dir", "images/corrupt"], 1,
     r"Cannot read image file images/corrupt/tom/1\.png .*fix or remove the file"),
    ("empty class folder", ["fit", *IMAGES, "--data.train_dir", "images/empty_class"], 1,
     r"Class folder images/empty_class/tom has no images"),
    ("validation classes differ from training classes", ["fit", *IMAGES, "--data.train_dir", "images/train",
                                                         "--data.val_dir", "images/other_classes"], 1,
     r"`val_dir` images/other_classes has classes \['cat', 'tom'\] but `train_dir` images/train has "
     r"\['not_tom', 'tom'\]"),
    ("unknown toy data set", ["fit", *TOY, "--data.dataset", "cubic"], 2, r"dataset.*cubic"),
    ("truncated checkpoint", ["test", *FASHION, "--ckpt_path", "truncated.ckpt"], 1,
     r"checkpoint truncated\.ckpt cannot be read .*truncated or not a Lightning checkpoint"),
    ("checkpoint of another model class", ["test", *TOY, "--ckpt_path", "GOOD"], 1,
     r"checkpoint .*was saved by lit_reg(\.models)?\.DenseClassifier, but the model is .*DenseRegressor: pass "
     r"--model DenseClassifier"),
    ("unknown key in a config file", ["fit", "--config", "unknown_key.yaml", *FASHION[2:]], 2, r"dropoutt"),
    ("unknown option on the command line", ["fit", *FASHION, "--model.dropoutt", "0.3"], 2, r"dropoutt"),
]


@pytest.mark.parametrize(("case", "args", "status", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error(workspace, no_network, capsys, case, args, status, message):
    args = [workspace["good_ckpt"] if a == "GOOD" else a for a in args]
    before = snapshot(Path.cwd())
    start = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert exit_info.value.code == status
    assert "Traceback" not in err
    assert re.search(message, err), err[-2000:]
    assert elapsed < 2.0
    after = snapshot(Path.cwd())
    assert {k: v for k, v in after.items() if k in before} == before  # nothing existing was touched
    assert not [k for k in after if k not in before and not k.startswith("logs/")]  # nothing new outside logs/


def test_table_has_at_least_fifteen_cases():
    assert len(CASES) >= 15


def test_input_size_that_does_not_match_the_data_in_a_script(workspace, make_trainer):
    from datamodules import ImageFolderDataModule
    from lit_reg.models import BitmojiClassifier

    data = ImageFolderDataModule("images/train", image_size=16, val_fraction=0.5, cache_dir=None)
    with pytest.raises(ValueError, match=r"ImageFolderDataModule gives 256 input features per sample but "
                                         r"BitmojiClassifier has input_size=2500"):
        make_trainer(max_epochs=1).fit(BitmojiClassifier(), datamodule=data)


def test_resuming_from_a_checkpoint_of_another_class_in_a_script(workspace, make_trainer):
    from datamodules import ToyRegressionDataModule
    from lit_reg.models import DenseRegressor

    trainer = make_trainer(max_epochs=2)
    with pytest.raises(ValueError, match=r"the checkpoint was saved by DenseClassifier, not DenseRegressor"):
        trainer.fit(DenseRegressor(), datamodule=ToyRegressionDataModule(), ckpt_path=workspace["good_ckpt"])
