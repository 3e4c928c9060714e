"""Lightning DDP on CPU (2 processes, gloo): disjoint shards per rank, validation equal to one process.

The workers are forked (``ddp_fork``), not spawned: a spawned worker that has finished its work still aborts now and
then while the interpreter shuts down torch's gloo state ("terminate called without an active exception", SIGABRT;
about 1 run in 15 on a busy 2-core machine), which fails the run after the fact; forked workers leave with
``os._exit``. Forked workers share the parent's objects, so each Trainer gets a model of its own.
"""

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from datamodules.base import InMemoryDataModule
from lit_reg import DenseClassifier


class IndexData(InMemoryDataModule):
    """Inputs are the sample indices (so ranks can report what they saw); labels are index % 3."""

    input_size = 1
    num_classes = 3

    def __init__(self, size: int = 64, batch_size: int = 8) -> None:
        super().__init__(batch_size=batch_size)
        self.size = size

    def load_splits(self):
        x = torch.arange(self.size, dtype=torch.float32).unsqueeze(1)
        y = torch.arange(self.size) % 3
        return {"train": (x, y), "val": (x, y), "test": (x, y)}


class RecordIndices(Callback):
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen += batch[0].view(-1).long().tolist()

    def on_train_epoch_end(self, trainer, pl_module):
        torch.save(self.seen, Path(self.folder) / f"rank{trainer.global_rank}.pt")


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
    ddp.fit(model, datamodule=IndexData())
    shards = [set(torch.load(tmp_path / f"rank{r}.pt")) for r in (0, 1)]
    assert shards[0].isdisjoint(shards[1])
    assert shards[0] | shards[1] == set(range(64))

    def fresh() -> DenseClassifier:
        model = DenseClassifier(input_size=1, num_classes=3, hidden_sizes=[8])
        model.load_state_dict(torch.load(tmp_path / "weights.pt"))
        return model

    (single,) = trainer(devices=1).validate(fresh(), datamodule=IndexData(), verbose=False)
    (multi,) = trainer(strategy="ddp_fork", devices=2).validate(fresh(), datamodule=IndexData(), verbose=False)
    assert multi["val_acc"] == pytest.approx(single["val_acc"], abs=1e-6)
    assert multi["val_loss"] == pytest.approx(single["val_loss"], abs=1e-5)
