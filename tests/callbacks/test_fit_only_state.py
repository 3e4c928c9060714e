"""Evaluating a checkpoint after a fit leaves the callbacks' run history alone; resuming a fit restores it."""

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from datamodules import ToyRegressionDataModule
from lit_reg import DenseRegressor
from lit_reg.callbacks import FitOnlyState, LearningCurves, WeightNormMonitor


def fit_run(make_trainer, tmp_path, name: str, epochs: int, seed: int = 0, ckpt_path: str | None = None):
    """Fit a small regressor for ``epochs``, a checkpoint after every epoch in ``tmp_path/name``."""
    torch.manual_seed(seed)
    curves, norms = LearningCurves(log_hp_metric=False), WeightNormMonitor()
    checkpoints = ModelCheckpoint(dirpath=tmp_path / name, filename="{epoch}", save_top_k=-1, save_last=True)
    trainer = make_trainer(max_epochs=epochs, enable_checkpointing=True, callbacks=[curves, norms, checkpoints])
    model = DenseRegressor(hidden_sizes=[8], lr=0.05)
    data = ToyRegressionDataModule("linear", batch_size=5)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer, model, data, curves, norms


@pytest.mark.parametrize("evaluate", ["test", "validate"])
def test_evaluating_an_earlier_checkpoint_keeps_every_epoch_of_the_history(make_trainer, tmp_path, evaluate):
    trainer, model, data, curves, norms = fit_run(make_trainer, tmp_path, "run", epochs=4)
    history = {epoch: dict(values) for epoch, values in curves.history.items()}
    norm_history, initial = list(norms.history), dict(norms.initial_norms)
    assert sorted(history) == [0, 1, 2, 3]
    getattr(trainer, evaluate)(model, datamodule=data, ckpt_path=str(tmp_path / "run" / "epoch=0.ckpt"), verbose=False)
    assert curves.history == history  # neither cut back to epoch 0 nor extended by the evaluation
    assert norms.history == norm_history and norms.initial_norms == initial


def test_evaluating_another_runs_checkpoint_keeps_this_runs_initial_norms(make_trainer, tmp_path):
    trainer, model, data, _, norms = fit_run(make_trainer, tmp_path, "a", epochs=2, seed=0)
    _, _, _, _, other = fit_run(make_trainer, tmp_path, "b", epochs=2, seed=1)
    assert other.initial_norms != norms.initial_norms
    initial = dict(norms.initial_norms)
    trainer.test(model, datamodule=data, ckpt_path=str(tmp_path / "b" / "last.ckpt"), verbose=False)
    assert norms.initial_norms == initial


def test_resuming_a_fit_restores_the_history(make_trainer, tmp_path):
    _, _, _, first, first_norms = fit_run(make_trainer, tmp_path, "run", epochs=2)
    _, _, _, resumed, resumed_norms = fit_run(make_trainer, tmp_path, "resumed", epochs=4,
                                              ckpt_path=str(tmp_path / "run" / "last.ckpt"))
    assert sorted(resumed.history) == [0, 1, 2, 3]
    assert {e: resumed.history[e] for e in (0, 1)} == first.history
    assert resumed_norms.initial_norms == first_norms.initial_norms


def test_outside_a_run_load_state_dict_restores():
    curves = LearningCurves()
    curves.load_state_dict({"history": {"0": {"val_loss": 1.5}}})
    assert curves.history == {0: {"val_loss": 1.5}}
    assert isinstance(curves, FitOnlyState) and isinstance(WeightNormMonitor(), FitOnlyState)
