import math

import pytest
import torch

from datamodules import ToyRegressionDataModule
from lit_reg.models import DenseClassifier, DenseRegressor
from tests.conftest import EpochMetrics

LR = 0.01
EPOCHS = 6


def epoch_learning_rates(make_trainer, lr_scheduler: str, kwargs: dict, **model_kwargs) -> list[float]:
    """The ``lr`` logged in each of EPOCHS epochs (the linear set has one batch of 10 per epoch)."""
    recorder = EpochMetrics()
    model = DenseRegressor(hidden_sizes=[4], lr=LR, lr_scheduler=lr_scheduler, lr_scheduler_kwargs=kwargs,
                           **model_kwargs)
    make_trainer(max_epochs=EPOCHS, callbacks=[recorder]).fit(model, datamodule=ToyRegressionDataModule(
        "linear", batch_size=10))
    return [h["lr"] for h in recorder.history]


def triangular(s: int, low: float, high: float, half_cycle: int) -> float:
    x = abs(s / half_cycle - 2 * math.floor(1 + s / (2 * half_cycle)) + 1)
    return low + (high - low) * max(0.0, 1 - x)


@pytest.mark.parametrize(
    ("name", "kwargs", "formula"),
    [
        ("step", {"step_size": 2, "gamma": 0.5}, lambda s: LR * 0.5 ** (s // 2)),
        ("exponential", {"gamma": math.exp(-0.3)}, lambda s: LR * math.exp(-0.3 * s)),  # the lecture's η₀e^(−ks)
        ("cosine", {"T_max": 4, "eta_min": 1e-3}, lambda s: 1e-3 + (LR - 1e-3) * (1 + math.cos(math.pi * s / 4)) / 2),
        ("cosine", {}, lambda s: LR * (1 + math.cos(math.pi * s / EPOCHS)) / 2),  # T_max = max_epochs
        ("cyclic", {"max_lr": 0.05, "step_size_up": 2}, lambda s: triangular(s, LR, 0.05, 2)),  # one step an epoch
        # every epoch counts as no improvement after the first: the rate halves from the third epoch on
        ("plateau", {"factor": 0.5, "patience": 0, "threshold": 0.99}, lambda s: LR * 0.5 ** max(0, s - 1)),
    ],
)
def test_learning_rate_after_k_epochs_follows_the_formula(make_trainer, name, kwargs, formula):
    rates = epoch_learning_rates(make_trainer, name, kwargs)
    assert rates == pytest.approx([formula(s) for s in range(EPOCHS)], rel=1e-5)


def test_constant_rate_without_scheduler(make_trainer):
    model = DenseRegressor(hidden_sizes=[4], lr=LR)
    assert isinstance(model.configure_optimizers(), torch.optim.Adam)


def test_cyclic_cycles_momentum_only_when_the_optimizer_has_it(make_trainer):
    rates = epoch_learning_rates(make_trainer, "cyclic", {"max_lr": 0.05, "step_size_up": 2}, optimizer="sgd",
                                 momentum=0.9)
    assert rates == pytest.approx([triangular(s, LR, 0.05, 2) for s in range(EPOCHS)], rel=1e-5)


def test_nesterov_reaches_sgd():
    model = DenseClassifier(hidden_sizes=[8], optimizer="sgd", momentum=0.9, nesterov=True)
    optimizer = model.configure_optimizers()
    assert optimizer.defaults["nesterov"] is True and optimizer.defaults["momentum"] == 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr_scheduler": "warmup"},
         r"`lr_scheduler` must be one of \['cosine', 'cyclic', 'exponential', 'plateau', 'step'\], got 'warmup'"),
        ({"lr_scheduler": "step", "lr_scheduler_kwargs": {"step_size": 2, "decay": 0.5}},
         r"`lr_scheduler_kwargs` has \['decay'\], which lr_scheduler='step' \(StepLR\) does not take"),
        ({"lr_scheduler": "step"}, r"`lr_scheduler_kwargs` must give \['step_size'\] for lr_scheduler='step'"),
        ({"lr_scheduler": "cyclic"}, r"`lr_scheduler_kwargs` must give \['max_lr'\]"),
        ({"lr_scheduler_kwargs": {"gamma": 0.5}}, r"`lr_scheduler_kwargs` given without an `lr_scheduler`"),
        ({"nesterov": True}, r"`nesterov` needs optimizer='sgd' with momentum > 0, got optimizer='adam'"),
        ({"nesterov": True, "optimizer": "sgd"}, r"`nesterov` needs optimizer='sgd' with momentum > 0.*momentum=0"),
    ],
)
def test_invalid_scheduler_and_optimizer_options_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DenseRegressor(**kwargs)
