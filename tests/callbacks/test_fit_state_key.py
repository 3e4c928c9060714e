import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning import callbacks as pl_callbacks

from datamodules import ToyRegressionDataModule
from lit_reg import DenseRegressor
from lit_reg.callbacks import EarlyStopping, LearningCurves, ModelCheckpoint

SAME_AS_LIGHTNING = [
    (EarlyStopping, pl_callbacks.EarlyStopping, {"monitor": "val_loss", "mode": "max", "patience": 2}),
    (ModelCheckpoint, pl_callbacks.ModelCheckpoint, {"monitor": "val_loss", "every_n_epochs": 2}),
    (ModelCheckpoint, pl_callbacks.ModelCheckpoint, {"monitor": None, "filename": "last"}),
]


class CountingKeys:
    """Counts how often each callback formats its state key."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *classes: type) -> None:
        self.calls: dict[str, int] = {}
        for cls in classes:
            original = cls.current_state_key

            def counted(callback, original=original):
                self.calls[type(callback).__name__] = self.calls.get(type(callback).__name__, 0) + 1
                return original(callback)

            monkeypatch.setattr(cls, "current_state_key", counted)


def fit(tmp_path, callbacks: list[pl.Callback], model: pl.LightningModule | None = None,
        max_epochs: int = 3) -> pl.Trainer:
    dm = ToyRegressionDataModule("quadratic", batch_size=4)  # 10 training batches per epoch
    model = model or DenseRegressor(input_size=dm.input_size, output_size=dm.output_size, hidden_sizes=[4])
    trainer = pl.Trainer(accelerator="cpu", max_epochs=max_epochs, default_root_dir=str(tmp_path), logger=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
    trainer.fit(model, datamodule=dm)
    return trainer


@pytest.mark.parametrize(("ours", "lightnings", "kwargs"), SAME_AS_LIGHTNING)
def test_same_key_and_class_as_lightnings(ours, lightnings, kwargs, tmp_path):
    callback = ours(**kwargs) if ours is EarlyStopping else ours(dirpath=tmp_path, **kwargs)
    reference = lightnings(**kwargs) if ours is EarlyStopping else lightnings(dirpath=tmp_path, **kwargs)
    assert isinstance(callback, lightnings)
    assert callback.state_key == reference.state_key


def test_the_key_is_formatted_a_few_times_per_fit_however_long_and_afresh_after_it(tmp_path, monkeypatch):
    counts = []
    for max_epochs in (1, 3):
        counter = CountingKeys(monkeypatch, EarlyStopping, ModelCheckpoint, LearningCurves)
        stopping = EarlyStopping(monitor="val_loss", patience=10)
        checkpoint = ModelCheckpoint(monitor="val_loss", dirpath=tmp_path / str(max_epochs))
        curves = LearningCurves()
        trainer = fit(tmp_path, [stopping, checkpoint, curves], max_epochs=max_epochs)
        assert trainer.global_step == 10 * max_epochs  # Lightning reads each key at every hook: ~70 per epoch
        counts.append(counter.calls)
        monkeypatch.undo()
    assert counts[0] == counts[1] and set(counts[0]) == {"EarlyStopping", "ModelCheckpoint", "LearningCurves"}
    assert max(counts[0].values()) <= 5  # Trainer construction and fit's start read them before `setup`
    stopping.monitor, curves.mode = "val_mse", "max"
    assert stopping.state_key == "EarlyStopping{'monitor': 'val_mse', 'mode': 'min'}"
    assert curves.state_key == "LearningCurves{'monitor': 'val_loss', 'mode': 'max'}"


def test_checkpoints_keep_lightnings_keys(tmp_path):
    stopping = EarlyStopping(monitor="val_loss", patience=10)
    checkpoint = ModelCheckpoint(monitor="val_loss")
    fit(tmp_path, [stopping, checkpoint])
    saved = torch.load(checkpoint.best_model_path, weights_only=False)["callbacks"]
    expected = {pl_callbacks.EarlyStopping(monitor="val_loss").state_key,
                pl_callbacks.ModelCheckpoint(monitor="val_loss").state_key}
    assert set(saved) == expected
    restored = pl_callbacks.EarlyStopping(monitor="val_loss", patience=10)
    restored.load_state_dict(saved[restored.state_key])
    assert restored.best_score == stopping.best_score and restored.wait_count == stopping.wait_count


class FailingRegressor(DenseRegressor):
    def training_step(self, batch, batch_idx):
        raise RuntimeError("boom")


def test_an_interrupted_fit_leaves_no_stale_key(tmp_path):
    stopping = EarlyStopping(monitor="val_loss")
    with pytest.raises(RuntimeError, match="boom"):
        fit(tmp_path, [stopping], model=FailingRegressor(input_size=1, output_size=1, hidden_sizes=[4]))
    stopping.monitor = "val_mse"
    assert stopping.state_key == "EarlyStopping{'monitor': 'val_mse', 'mode': 'min'}"


class FailingLater(DenseRegressor):
    def training_step(self, batch, batch_idx):
        if self.global_step == 3:
            raise RuntimeError("boom")
        return super().training_step(batch, batch_idx)


def test_save_on_exception_still_saves_through_the_cached_key_subclass(tmp_path):
    """The mixin's ``on_exception`` hands the trainer on to Lightning's, which writes the checkpoint."""
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "ckpts"), save_on_exception=True)
    with pytest.raises(RuntimeError, match="boom"):
        fit(tmp_path, [checkpoint], model=FailingLater(input_size=1, output_size=1, hidden_sizes=[4]))
    (saved,) = (tmp_path / "ckpts").glob("*.ckpt")
    assert torch.load(saved, weights_only=False)["global_step"] == 3
