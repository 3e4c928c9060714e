"""``compile=True``: the dense stack runs through ``torch.compile``; checkpoints stay those of the uncompiled model."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from datamodules import FashionMNISTDataModule
from lit_reg.models import BitmojiClassifier, DenseClassifier, DenseRegressor
from lit_reg.models.base import COMPILE_MODES


@pytest.mark.parametrize("cls", [DenseClassifier, DenseRegressor, BitmojiClassifier])
def test_every_model_takes_compile_and_compile_mode(cls):
    assert {"compile", "compile_mode"} <= set(cls.accepted_arguments())
    kwargs = {"num_classes": 3} if cls is DenseClassifier else {}
    model = cls(input_size=4, hidden_sizes=[3], compile=True, compile_mode="reduce-overhead", **kwargs)
    assert model.hparams.compile is True and model.hparams.compile_mode == "reduce-overhead"
    assert model.net._compiled_call_impl is not None
    assert cls(input_size=4, hidden_sizes=[3], **kwargs).net._compiled_call_impl is None  # off by default


def test_compile_mode_is_checked():
    with pytest.raises(ValueError, match=r"`compile_mode` must be None or one of \['default', 'reduce-overhead'.*"
                                         r"got 'fast'"):
        DenseRegressor(hidden_sizes=[2], compile=True, compile_mode="fast")
    with pytest.raises(ValueError, match=r"`compile_mode`='default' applies only with `compile`=True"):
        DenseRegressor(hidden_sizes=[2], compile_mode="default")
    assert "max-autotune" in COMPILE_MODES


def test_compiled_model_keeps_the_uncompiled_parameter_names():
    torch.manual_seed(0)
    compiled = DenseClassifier(input_size=6, num_classes=3, hidden_sizes=[5], batchnorm=True, compile=True)
    plain = DenseClassifier(input_size=6, num_classes=3, hidden_sizes=[5], batchnorm=True)
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert not any("_orig_mod" in name for name in compiled.state_dict())
    plain.load_state_dict(compiled.state_dict())  # strict: the same keys both ways
    compiled.load_state_dict(plain.state_dict())
    assert isinstance(compiled.net, torch.nn.Sequential)


@pytest.mark.slow  # torch.compile's first steps build C++ kernels: tens of seconds on one CPU core
def test_one_compiled_fit_matches_the_uncompiled_one_and_its_checkpoint_loads_uncompiled(tmp_path, fashion_root):
    def fit(compile: bool) -> tuple[DenseClassifier, pl.Trainer]:
        pl.seed_everything(0, verbose=False)
        model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[16], batchnorm=True, compile=compile)
        trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=str(tmp_path / str(compile)),
                             deterministic=True)
        trainer.fit(model, datamodule=FashionMNISTDataModule(str(fashion_root), batch_size=64))
        return model, trainer

    compiled, trainer = fit(True)
    plain, plain_trainer = fit(False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    plain_metrics = {k: float(v) for k, v in plain_trainer.callback_metrics.items()}
    assert metrics.keys() == plain_metrics.keys()
    for key, value in metrics.items():  # the same computation; only the kernels' rounding may differ
        assert value == pytest.approx(plain_metrics[key], rel=1e-3, abs=1e-4), key
    path = trainer.checkpoint_callback.best_model_path
    checkpoint = torch.load(path, weights_only=True)
    assert list(checkpoint["state_dict"]) == list(plain.state_dict())
    assert checkpoint["hyper_parameters"]["compile"] is True
    loaded = DenseClassifier.load_from_checkpoint(path, compile=False).eval()
    assert loaded.net._compiled_call_impl is None
    x = torch.randn(8, 784)
    with torch.no_grad():
        assert torch.allclose(loaded(x), compiled.eval()(x), atol=1e-5)
