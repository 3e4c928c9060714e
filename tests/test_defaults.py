import pytest
import torch

from datamodules import FashionMNISTDataModule
from lit_reg import DenseClassifier, default_callbacks, default_logger
from lit_reg.callbacks import EarlyStopping, LearningCurves, ModelCheckpoint
from tests.conftest import EpochMetrics


def test_monitor_and_mode_reach_early_stopping_the_best_checkpoint_and_the_curves():
    callbacks = default_callbacks(monitor="val_acc", mode="max", patience=2)
    watched = [c for c in callbacks if isinstance(c, (EarlyStopping, LearningCurves))]
    watched += [c for c in callbacks if isinstance(c, ModelCheckpoint) and c.monitor is not None]
    assert len(watched) == 3 and all((c.monitor, c.mode) == ("val_acc", "max") for c in watched)
    assert next(c for c in callbacks if isinstance(c, EarlyStopping)).patience == 2
    last = [c for c in callbacks if isinstance(c, ModelCheckpoint) and c.monitor is None]
    assert len(last) == 1  # last.ckpt still written every epoch


def test_best_checkpoint_is_the_epoch_with_the_highest_val_acc(make_trainer, fashion_root, tmp_path):
    torch.manual_seed(0)
    recorder = EpochMetrics()
    callbacks = default_callbacks(early_stopping=False, monitor="val_acc", mode="max")
    trainer = make_trainer(max_epochs=4, enable_checkpointing=True, callbacks=[*callbacks, recorder],
                           logger=default_logger("acc", save_dir=str(tmp_path)))
    trainer.fit(DenseClassifier(hidden_sizes=[16], lr=0.05),
                datamodule=FashionMNISTDataModule(str(fashion_root), batch_size=32, download=False))
    accs = [h["val_acc"] for h in recorder.history]
    best = max(range(len(accs)), key=lambda e: (accs[e], -e))  # the first of equal best values
    assert trainer.checkpoint_callback.best_model_path.split("epoch=")[1].startswith(f"{best}-")
    assert trainer.checkpoint_callback.best_model_score == pytest.approx(max(accs))
    assert next(c for c in callbacks if isinstance(c, LearningCurves)).best_epoch == best
