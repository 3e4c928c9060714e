"""Killed runs lose nothing: SIGKILL mid-epoch, resume with ``--ckpt_path last``, same result as no kill."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fsspec.implementations.local import LocalFileOpener

from datamodules import ToyRegressionDataModule
from datamodules.fakes import write_fashion_mnist
from lit_reg import DenseRegressor, default_callbacks
from lit_reg.callbacks import DivergenceError
from lit_reg.cli import build_cli

RUN = ["fit", "--model", "DenseClassifier", "--data", "FashionMNISTDataModule", "--data.data_dir", "data",
       "--data.download", "false", "--data.batch_size", "16", "--model.hidden_sizes", "[64]",
       "--model.dropout", "0.2", "--trainer.max_epochs", "4", "--early_stopping", "null",
       "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def final_state(cli):
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("val_")}
    return cli.trainer.current_epoch, metrics, {k: v.clone() for k, v in cli.model.state_dict().items()}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(in_tmp_dir):
    write_fashion_mnist("data", num_train=1500, num_test=100)
    last = in_tmp_dir / "logs" / "DenseClassifier" / "version_0" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen([sys.executable, "-m", "lit_reg", *RUN], cwd=in_tmp_dir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # into the next epoch
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL, "the run finished before it could be killed"
    saved_epoch = torch.load(last, weights_only=False)["epoch"]
    assert saved_epoch < 3

    resumed = build_cli([*RUN, "--ckpt_path", "last"])
    assert Path(resumed.trainer.log_dir).name == "version_0"  # resumed in the same run folder
    reference = build_cli([*RUN, "--trainer.logger.init_args.save_dir", "reference"])

    epochs, metrics, weights = final_state(resumed)
    ref_epochs, ref_metrics, ref_weights = final_state(reference)
    assert epochs == ref_epochs == 4
    assert metrics == pytest.approx(ref_metrics, abs=1e-6)
    for name, tensor in weights.items():
        torch.testing.assert_close(tensor, ref_weights[name])


def test_interrupted_checkpoint_write_keeps_the_previous_last_ckpt(in_tmp_dir, make_trainer, monkeypatch):
    trainer = make_trainer(max_epochs=1)
    model = DenseRegressor(hidden_sizes=[4])
    trainer.fit(model, datamodule=ToyRegressionDataModule(batch_size=8))
    path = in_tmp_dir / "last.ckpt"
    trainer.save_checkpoint(path)
    good = path.read_bytes()

    write = LocalFileOpener.write

    def die_halfway(self, data):
        write(self, data[: len(data) // 2])
        raise OSError("killed during the write")

    monkeypatch.setattr(LocalFileOpener, "write", die_halfway)
    with pytest.raises(OSError, match="killed during the write"):
        trainer.save_checkpoint(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert DenseRegressor.load_from_checkpoint(path).hparams.hidden_sizes == [4]


def test_diverging_run_stops_with_a_clear_message_and_keeps_finite_checkpoints(in_tmp_dir, make_trainer):
    callbacks = default_callbacks()
    trainer = make_trainer(max_epochs=30, enable_checkpointing=True, callbacks=callbacks)
    model = DenseRegressor(hidden_sizes=[32], lr=0.05)
    data = ToyRegressionDataModule(batch_size=4)
    trainer.fit(model, datamodule=data)  # a first, finite run writes best and last
    checkpoint = trainer.checkpoint_callback
    best = Path(checkpoint.best_model_path)
    last = best.parent / "last.ckpt"
    before = {best: best.read_bytes(), last: last.read_bytes()}

    diverging = DenseRegressor(hidden_sizes=[32], optimizer="sgd", lr=1e6)
    trainer = make_trainer(max_epochs=30, enable_checkpointing=True, callbacks=[checkpoint, *callbacks[2:]])
    with pytest.raises(DivergenceError, match=r"Training diverged: the training loss became (nan|inf) at epoch 0.*"
                                              r"Lower the learning rate"):
        trainer.fit(diverging, datamodule=data)
    assert {p: p.read_bytes() for p in before} == before
    restored = DenseRegressor.load_from_checkpoint(last)
    assert all(torch.isfinite(p).all() for p in restored.parameters())


def test_last_ckpt_holds_the_newest_epoch_when_validation_stops_improving(in_tmp_dir, make_trainer):
    trainer = make_trainer(max_epochs=3, callbacks=default_callbacks(early_stopping=False), enable_checkpointing=True)
    model = DenseRegressor(hidden_sizes=[4], optimizer="sgd", lr=1e-30)  # weights never move: no better val_loss
    trainer.fit(model, datamodule=ToyRegressionDataModule(batch_size=8))
    best = trainer.checkpoint_callback.best_model_path
    last = Path(best).parent / "last.ckpt"
    assert torch.load(best, weights_only=False)["epoch"] == 0
    assert torch.load(last, weights_only=False)["epoch"] == 2
    assert sorted(p.name for p in last.parent.iterdir()) == sorted([Path(best).name, "last.ckpt"])
