"""Killed runs lose nothing: SIGKILL mid-epoch, resume with ``--ckpt_path last``, same result as no kill.

Every resume is checked where it STARTS (epoch and global step) and how much it trains, not only where it ends: a
"resume" that silently retrains from scratch ends with the same numbers.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from fsspec.implementations.local import LocalFileOpener
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from datamodules import ToyRegressionDataModule
from datamodules.fakes import write_fashion_mnist
from lit_reg import DenseRegressor, default_callbacks, default_logger
from lit_reg.callbacks import DivergenceError
from lit_reg.cli import build_cli
from tests.helpers.resume import TrainingProgress, progress_of

RUN = ["fit", "--model", "DenseClassifier", "--data", "FashionMNISTDataModule", "--data.data_dir", "data",
       "--data.download", "false", "--data.batch_size", "16", "--model.hidden_sizes", "[64]",
       "--model.dropout", "0.2", "--trainer.max_epochs", "3", "--early_stopping", "null",
       "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
#: records where a fit starts and how much it trains (:class:`tests.helpers.resume.TrainingProgress`)
RECORD_PROGRESS = ["--trainer.callbacks+=tests.helpers.resume.TrainingProgress"]
#: the toy regression set: 40 training points in batches of 8, so 5 optimizer steps per epoch (without the
#: figure-drawing callbacks, which resuming does not involve: half the time)
TOY = ["fit", "--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--data.batch_size", "8",
       "--model.hidden_sizes", "[4]", "--early_stopping", "null", "--learning_curves", "null", "--weight_norm", "null",
       "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *RECORD_PROGRESS]
TOY_STEPS_PER_EPOCH = 5
TOY_RUNS = Path("logs") / "DenseRegressor"


def final_state(cli):
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("val_")}
    return cli.trainer.current_epoch, metrics, {k: v.clone() for k, v in cli.model.state_dict().items()}


def saved_position(checkpoint: Path) -> tuple[int, int]:
    """``(epoch, global_step)`` stored in a checkpoint."""
    saved = torch.load(checkpoint, weights_only=False)
    return saved["epoch"], saved["global_step"]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: relative path → (size, mtime in ns)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_continued(progress: TrainingProgress, checkpoint_position: tuple[int, int], max_epochs: int) -> None:
    """The fit started right after the checkpoint's epoch, at its global step, and trained only the epochs left."""
    epoch, step = checkpoint_position
    left = max_epochs - (epoch + 1)
    assert (progress.start_epoch, progress.start_step) == (epoch + 1, step), "did not start from the checkpoint"
    assert progress.epochs == list(range(epoch + 1, max_epochs))
    assert progress.batches == progress.end_step - step == left * TOY_STEPS_PER_EPOCH


def curve(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """``(step, value)`` of every ``tag`` scalar in all event files of ``run_dir`` (duplicates kept)."""
    accumulator = EventAccumulator(str(run_dir), purge_orphaned_data=False)
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_starts_at_the_checkpoint_and_matches_an_uninterrupted_run(in_tmp_dir,
                                                                                                  repo_root):
    write_fashion_mnist("data", num_train=600, num_test=100)
    last = in_tmp_dir / "logs" / "DenseClassifier" / "version_0" / "checkpoints" / "last.ckpt"
    marker = in_tmp_dir / "blocked.json"
    block = [{"class_path": "tests.helpers.resume.BlockMidEpoch",
              "init_args": {"marker": str(marker), "epoch": 1, "batches": 10}}]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "lit_reg", *RUN, "--trainer.callbacks", json.dumps(block)],
                               cwd=in_tmp_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), f"the run never reached epoch 1, batch 10: {process.stderr.read().decode()[-2000:]}"
    os.kill(process.pid, signal.SIGKILL)  # the process is blocked after batch 10 of epoch 1: mid-epoch for sure
    assert process.wait(timeout=30) == -signal.SIGKILL
    process.stderr.close()
    killed_at = json.loads(marker.read_text())
    per_epoch = killed_at["batches_per_epoch"]
    assert (killed_at["epoch"], killed_at["batches"], killed_at["global_step"]) == (1, 10, per_epoch + 10)
    assert 10 < per_epoch
    assert saved_position(last) == (0, per_epoch)  # the end of epoch 0, not a mid-epoch save

    resumed = build_cli([*RUN, "--ckpt_path", "last", *RECORD_PROGRESS])
    assert Path(resumed.trainer.log_dir).name == "version_0"  # resumed in the same run folder
    progress = progress_of(resumed.trainer)
    assert (progress.start_epoch, progress.start_step) == (1, per_epoch)  # not from scratch, not mid-epoch 1
    assert progress.epochs == [1, 2] and progress.batches == 2 * per_epoch
    reference = build_cli([*RUN, "--trainer.logger.init_args.save_dir", "reference"])

    epochs, metrics, weights = final_state(resumed)
    ref_epochs, ref_metrics, ref_weights = final_state(reference)
    assert epochs == ref_epochs == 3
    assert metrics == pytest.approx(ref_metrics, abs=1e-6)
    for name, tensor in weights.items():
        torch.testing.assert_close(tensor, ref_weights[name])


@pytest.fixture(scope="module")
def resumed_in_place(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A toy run fit for 2 epochs, then ``fit --ckpt_path last --trainer.max_epochs 4`` (in its own folder)."""
    root = tmp_path_factory.mktemp("resumed_in_place")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        build_cli([*TOY, "--trainer.max_epochs", "2"])
        run_dir = root / TOY_RUNS / "version_0"
        saved = saved_position(run_dir / "checkpoints" / "last.ckpt")
        resumed = build_cli([*TOY, "--trainer.max_epochs", "4", "--ckpt_path", "last"])
    return SimpleNamespace(root=root, run_dir=run_dir, saved=saved, log_dir=root / resumed.trainer.log_dir,
                           progress=progress_of(resumed.trainer))


def test_fit_ckpt_path_last_continues_from_the_checkpoint_instead_of_restarting(resumed_in_place):
    assert resumed_in_place.saved == (1, 2 * TOY_STEPS_PER_EPOCH)
    assert resumed_in_place.log_dir == resumed_in_place.run_dir
    assert_continued(resumed_in_place.progress, resumed_in_place.saved, max_epochs=4)
    assert sorted(p.name for p in (resumed_in_place.root / TOY_RUNS).iterdir()) == ["version_0"]
    assert saved_position(resumed_in_place.run_dir / "checkpoints" / "last.ckpt") == (3, 4 * TOY_STEPS_PER_EPOCH)


def test_resume_in_the_same_folder_continues_its_tensorboard_curves(resumed_in_place, in_tmp_dir):
    build_cli([*TOY, "--trainer.max_epochs", "4"])  # the same 4 epochs without a break
    reference = in_tmp_dir / TOY_RUNS / "version_0"
    for tag in ("train_loss", "val_loss"):
        resumed, uninterrupted = curve(resumed_in_place.run_dir, tag), curve(reference, tag)
        steps = [step for step, _ in resumed]
        assert steps == [step for step, _ in uninterrupted], f"{tag}: a restart, a gap or a repeated step"
        assert len(set(steps)) == len(steps) == 4
        assert [value for _, value in resumed] == pytest.approx([value for _, value in uninterrupted], abs=1e-6)
    epoch_at = dict(curve(resumed_in_place.run_dir, "epoch"))
    assert [epoch_at[step] for step, _ in curve(resumed_in_place.run_dir, "val_loss")] == [0, 1, 2, 3]


def test_ckpt_path_last_resumes_the_newest_run_folder_that_has_a_last_ckpt(in_tmp_dir):
    """version_10 is newer than version_9 by number (not by name); version_11 has checkpoints but no last.ckpt."""
    version = "--trainer.logger.init_args.version"
    build_cli([*TOY, "--trainer.max_epochs", "1", version, "version_9"])
    build_cli([*TOY, "--trainer.max_epochs", "2", version, "version_10"])
    build_cli([*TOY, "--trainer.max_epochs", "1", "--last_checkpoint", "null"])
    runs = in_tmp_dir / TOY_RUNS
    assert sorted(p.name for p in (runs / "version_11" / "checkpoints").iterdir()) == ["epoch=0-step=5.ckpt"]
    others = {name: snapshot(runs / name) for name in ("version_9", "version_11")}
    saved = saved_position(runs / "version_10" / "checkpoints" / "last.ckpt")

    resumed = build_cli([*TOY, "--trainer.max_epochs", "3", "--ckpt_path", "last"])
    assert in_tmp_dir / resumed.trainer.log_dir == runs / "version_10"
    assert_continued(progress_of(resumed.trainer), saved, max_epochs=3)  # from version_10's epoch 1, not 9's 0
    assert saved_position(runs / "version_10" / "checkpoints" / "last.ckpt") == (2, 3 * TOY_STEPS_PER_EPOCH)
    assert {name: snapshot(runs / name) for name in others} == others
    assert sorted(p.name for p in runs.iterdir()) == ["version_10", "version_11", "version_9"]


def test_ckpt_path_to_a_file_resumes_from_it_into_a_new_run_folder(in_tmp_dir):
    build_cli([*TOY, "--trainer.max_epochs", "2"])
    first = in_tmp_dir / TOY_RUNS / "version_0"
    before = snapshot(first)
    last = TOY_RUNS / "version_0" / "checkpoints" / "last.ckpt"  # relative, as README writes it

    resumed = build_cli([*TOY, "--trainer.max_epochs", "3", "--ckpt_path", str(last)])
    new = in_tmp_dir / TOY_RUNS / "version_1"
    assert in_tmp_dir / resumed.trainer.log_dir == new
    assert_continued(progress_of(resumed.trainer), saved_position(last), max_epochs=3)
    assert saved_position(new / "checkpoints" / "last.ckpt") == (2, 3 * TOY_STEPS_PER_EPOCH)
    assert snapshot(first) == before


def test_script_fit_ckpt_path_last_with_the_same_logger_version_resumes(in_tmp_dir):
    def fit(max_epochs: int, **kwargs) -> tuple[pl.Trainer, TrainingProgress]:
        pl.seed_everything(0)
        progress = TrainingProgress()
        logger = default_logger("DenseRegressor", **({"version": 0} if "ckpt_path" in kwargs else {}))
        trainer = pl.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=logger,
                             callbacks=[*default_callbacks(), progress], enable_progress_bar=False,
                             enable_model_summary=False)
        trainer.fit(DenseRegressor(hidden_sizes=[4]), datamodule=ToyRegressionDataModule(batch_size=8), **kwargs)
        return trainer, progress

    first, _ = fit(2)
    assert Path(first.log_dir).name == "version_0"
    last = TOY_RUNS / "version_0" / "checkpoints" / "last.ckpt"
    saved = saved_position(last)
    resumed, progress = fit(4, ckpt_path="last")
    assert Path(resumed.log_dir) == TOY_RUNS / "version_0"
    assert_continued(progress, saved, max_epochs=4)
    assert saved_position(last) == (3, 4 * TOY_STEPS_PER_EPOCH)


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
