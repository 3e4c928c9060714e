"""The real FashionMNIST end to end, through the ``lit-reg`` CLI (skipped where the files are absent)."""

import os

import pytest

from lit_reg.cli import build_cli

REAL = os.environ.get("LIT_REG_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")

pytestmark = pytest.mark.skipif(
    not os.path.isdir(REAL),
    reason=f"real FashionMNIST not in {REAL}: apt-get install dataset-fashion-mnist, or set LIT_REG_FASHION_MNIST",
)


@pytest.mark.slow
def test_lecture_004_net_reaches_080_test_accuracy_after_two_epochs(tmp_path):
    cli = build_cli(["fit", "--config", "configs/fashion_mnist_004.yaml", "--data.data_dir", REAL,
                     "--trainer.max_epochs", "2", "--trainer.logger.init_args.save_dir", str(tmp_path),
                     "--trainer.enable_progress_bar", "false", "--seed_everything", "0"])
    assert cli.trainer.current_epoch == 2 and len(cli.datamodule.datasets["train"]) == 54000
    (metrics,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    assert metrics["test_acc"] >= 0.80  # chance is 0.10; softmax regression reaches about 0.84
