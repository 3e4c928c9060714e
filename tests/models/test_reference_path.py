"""The optimized step (metrics updated per step, logged once per epoch; foreach optimizer; fused data path)
logs the same numbers as the plain path: per-sample torchvision data, ``self.log`` at every step."""

import pytest
import pytorch_lightning as pl
import torch

from datamodules import FashionMNISTDataModule
from lit_reg.models import DenseClassifier
from tests.helpers.reference import reference_loader


class PlainClassifier(DenseClassifier):
    """The un-optimized reference: a tensor ``self.log`` of the loss and the metrics at every step."""

    def _shared_step(self, batch, stage, batch_idx=0):
        x, target = batch
        outputs = self(x)
        loss = self.compute_loss(outputs, target)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(*self.metric_inputs(outputs.detach(), target))
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0])
        self.log_dict(metrics, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.RMSprop(self.parameters(), lr=self.hparams.lr, foreach=False)


def fit_epochs(model_cls, make_trainer, epochs: int = 2, **fit_kwargs):
    pl.seed_everything(0)
    model = model_cls(hidden_sizes=[32], optimizer="rmsprop", lr=1e-3)
    trainer = make_trainer(max_epochs=epochs)
    trainer.fit(model, **fit_kwargs)
    return {k: float(v) for k, v in trainer.logged_metrics.items()}


def test_two_epochs_give_the_same_metrics_as_the_plain_reference_path(fashion_root, make_trainer):
    """Two epochs, so the second epoch's order (set by Lightning through ``set_epoch``) counts too."""
    dm = FashionMNISTDataModule(str(fashion_root), batch_size=32, download=False)
    dm.setup()
    fast = fit_epochs(DenseClassifier, make_trainer, datamodule=dm)
    plain = fit_epochs(PlainClassifier, make_trainer, train_dataloaders=reference_loader(dm, "train", shuffle=True),
                       val_dataloaders=reference_loader(dm, "val"))
    assert set(plain) == {"train_loss", "train_acc", "val_loss", "val_acc", "lr"}
    assert set(fast) == set(plain) | {"train_data_loss"}
    assert fast["train_data_loss"] == pytest.approx(plain["train_loss"], rel=1e-4)  # no penalty: the same loss
    for key, value in plain.items():
        assert fast[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key



def test_without_penalties_train_data_loss_is_the_train_loss_metric(fashion_root, make_trainer):
    dm = FashionMNISTDataModule(str(fashion_root), batch_size=32, download=False)
    pl.seed_everything(0)
    model = DenseClassifier(hidden_sizes=[8])
    trainer = make_trainer(max_epochs=2)
    trainer.fit(model, datamodule=dm)
    logged = trainer.logged_metrics
    assert float(logged["train_data_loss"]) == float(logged["train_loss"])
    assert model.train_data_loss_mean.metric.update_count == 0 and model.train_data_loss_mean.pending == 0

