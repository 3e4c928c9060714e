"""Lightning DDP on CPU (2 processes, gloo): disjoint shards per rank, validation equal to one process.

The workers are forked (``ddp_fork``), not spawned: a spawned worker that has finished its work still aborts now and
then while the interpreter shuts down torch's gloo state ("terminate called without an active exception", SIGABRT;
about 1 run in 15 on a busy 2-core machine), which fails the run after the fact; forked workers leave with
``os._exit``. Forked workers share the parent's objects, so each Trainer gets a model of its own.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.plugins import TorchCheckpointIO

from lit_reg import DenseClassifier, DenseRegressor, default_callbacks, default_logger
from tests.helpers.index_data import IndexData


class RecordIndices(Callback):
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen += batch[0].view(-1).long().tolist()

    def on_train_epoch_end(self, trainer, pl_module):
        torch.save(self.seen, Path(self.folder) / f"rank{trainer.global_rank}.pt")


class RankRecordingCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer that also appends the name of every file it writes to
    ``<folder>/saved_by_rank<R>.txt``, R being the rank of the process that wrote it."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        super().save_checkpoint(checkpoint, path, storage_options)
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        with open(Path(self.folder) / f"saved_by_rank{rank}.txt", "a") as record:
            record.write(f"{Path(path).name}\n")


class RecordRanks(Callback):
    """Writes ``<folder>/trained_rank<R>`` at the end of fit in every rank (proof that each rank trained)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer, pl_module):
        (Path(self.folder) / f"trained_rank{trainer.global_rank}").touch()


def trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kwargs)


@pytest.mark.slow
def test_ranks_read_disjoint_shards_and_validation_matches_one_process(tmp_path):
    pl.seed_everything(0)
    model = DenseClassifier(input_size=1, num_classes=3, hidden_sizes=[8])
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    ddp = trainer(strategy="ddp_fork", devices=2, max_epochs=1, callbacks=[RecordIndices(str(tmp_path))],
                  num_sanity_val_steps=0, limit_val_batches=0)
    ddp.fit(model, datamodule=IndexData(batch_size=8))
    shards = [set(torch.load(tmp_path / f"rank{r}.pt")) for r in (0, 1)]
    assert shards[0].isdisjoint(shards[1])
    assert shards[0] | shards[1] == set(range(64))

    def fresh() -> DenseClassifier:
        model = DenseClassifier(input_size=1, num_classes=3, hidden_sizes=[8])
        model.load_state_dict(torch.load(tmp_path / "weights.pt"))
        return model

    (single,) = trainer(devices=1).validate(fresh(), datamodule=IndexData(batch_size=8), verbose=False)
    ddp = trainer(strategy="ddp_fork", devices=2)
    (multi,) = ddp.validate(fresh(), datamodule=IndexData(batch_size=8), verbose=False)
    assert multi["val_acc"] == pytest.approx(single["val_acc"], abs=1e-6)
    assert multi["val_loss"] == pytest.approx(single["val_loss"], abs=1e-5)


@pytest.mark.slow
def test_only_rank_0_writes_checkpoints(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    model = DenseClassifier(input_size=1, num_classes=3, hidden_sizes=[8])
    ddp = pl.Trainer(accelerator="cpu", strategy="ddp_fork", devices=2, max_epochs=3, enable_progress_bar=False,
                     enable_model_summary=False, logger=default_logger("DenseClassifier", save_dir=str(tmp_path)),
                     callbacks=[*default_callbacks(), RecordRanks(str(records))],
                     plugins=[RankRecordingCheckpointIO(str(records))])
    ddp.fit(model, datamodule=IndexData(batch_size=8))
    assert sorted(p.name for p in records.iterdir()) == ["saved_by_rank0.txt", "trained_rank0", "trained_rank1"]
    saved = (records / "saved_by_rank0.txt").read_text().split()
    assert saved.count("last.ckpt") == 3  # every epoch, by rank 0 only

    best = Path(ddp.checkpoint_callback.best_model_path)  # handed back to the main process by rank 0
    folder = tmp_path / "DenseClassifier" / "version_0" / "checkpoints"
    assert best.parent == folder and best.name in saved
    assert sorted(p.name for p in folder.iterdir()) == sorted([best.name, "last.ckpt"])
    assert torch.load(folder / "last.ckpt", weights_only=False)["epoch"] == 2
    assert DenseClassifier.load_from_checkpoint(best).hparams.hidden_sizes == [8]


@pytest.mark.slow
def test_readme_ddp_fork_command_trains_and_prints_where_the_run_went(tmp_path, repo_root):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "lit_reg", "fit", "--config", str(repo_root / "configs" / "toy_regression.yaml"),
               "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp_fork",
               "--trainer.max_epochs", "3"]  # the command in README and docs/reliability.md, made short
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    checkpoints = tmp_path / "logs" / "DenseRegressor" / "version_0" / "checkpoints"
    names = sorted(p.name for p in checkpoints.iterdir())
    assert len(names) == 2 and "last.ckpt" in names
    (best,) = [name for name in names if name != "last.ckpt"]
    assert re.fullmatch(r"epoch=[0-2]-step=\d+\.ckpt", best)
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["epoch"] == 2
    assert DenseRegressor.load_from_checkpoint(checkpoints / best).hparams.hidden_sizes == [6]
    assert re.search(r"^Final metrics: .*val_loss=\d+\.\d{4}", result.stdout, re.M)
    assert re.search(r"^TensorBoard logs:  logs/DenseRegressor/version_0$", result.stdout, re.M)
    # the main process of ddp_fork gets the best path back from rank 0, not its score
    printed = re.search(r"^Best checkpoint:   (\S+)( \(val_loss=\d+\.\d{4}\))?$", result.stdout, re.M)
    assert printed and tmp_path / printed.group(1) == checkpoints / best


class RankRecordingPlots:
    """Mixin for a figure callback: appends the rank that draws to ``<folder>/plotted_by_rank<R>.txt``."""

    folder = ""

    def plot(self, *args, **kwargs):
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        with open(Path(self.folder) / f"plotted_by_rank{rank}.txt", "a") as record:
            record.write(f"{type(self).__name__}\n")
        return super().plot(*args, **kwargs)


@pytest.mark.slow
def test_figures_are_drawn_by_rank_0_only_and_written_once(tmp_path, fashion_root):
    from datamodules import FashionMNISTDataModule
    from lit_reg.callbacks import ConfusionMatrix, Mistakes, SampleGrid

    records = tmp_path / "records"
    records.mkdir()
    callbacks = []
    for base in (SampleGrid, ConfusionMatrix, Mistakes):
        recording = type(f"Recording{base.__name__}", (RankRecordingPlots, base), {"folder": str(records)})
        callbacks.append(recording(stages=("val",)) if base is not SampleGrid else recording())
    model = DenseClassifier(hidden_sizes=[8])
    ddp = pl.Trainer(accelerator="cpu", strategy="ddp_fork", devices=2, max_epochs=1, enable_progress_bar=False,
                     enable_model_summary=False, logger=default_logger("DenseClassifier", save_dir=str(tmp_path)),
                     callbacks=[*default_callbacks(figures=False), *callbacks, RecordRanks(str(records))])
    ddp.fit(model, datamodule=FashionMNISTDataModule(data_dir=str(fashion_root), batch_size=32, download=False))
    assert sorted(p.name for p in records.iterdir()) == ["plotted_by_rank0.txt", "trained_rank0", "trained_rank1"]
    assert sorted((records / "plotted_by_rank0.txt").read_text().split()) == [
        "RecordingConfusionMatrix", "RecordingMistakes", "RecordingSampleGrid"]
    run = tmp_path / "DenseClassifier" / "version_0"
    assert {"samples.png", "confusion_matrix_val.png", "mistakes_val.png"} <= {p.name for p in run.iterdir()}
