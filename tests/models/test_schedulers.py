import math
import re

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from datamodules import ToyRegressionDataModule
from lit_reg.models import DenseClassifier, DenseRegressor
from tests.conftest import EpochMetrics

LR = 0.01
EPOCHS = 6


def epoch_learning_rates(make_trainer, lr_scheduler: str | None, kwargs: dict | None, batch_size: int = 10,
                         **model_kwargs) -> list[float]:
    """The ``lr`` logged in each of EPOCHS epochs (the linear set has 10 samples: one batch of 10 per epoch)."""
    recorder = EpochMetrics()
    model = DenseRegressor(hidden_sizes=[4], lr=LR, lr_scheduler=lr_scheduler, lr_scheduler_kwargs=kwargs,
                           **model_kwargs)
    make_trainer(max_epochs=EPOCHS, callbacks=[recorder]).fit(model, datamodule=ToyRegressionDataModule(
        "linear", batch_size=batch_size))
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


@pytest.mark.parametrize(
    ("name", "kwargs", "formula"),
    [
        ("step", {"step_size": 2, "gamma": 0.5}, lambda s: LR * 0.5 ** (s // 2)),
        ("exponential", {"gamma": 0.5}, lambda s: LR * 0.5**s),
        ("cosine", {"T_max": 4}, lambda s: LR * (1 + math.cos(math.pi * s / 4)) / 2),
        ("cyclic", {"max_lr": 0.05, "step_size_up": 4}, lambda s: triangular(2 * s, LR, 0.05, 4)),  # 2 steps an epoch
    ],
)
def test_only_cyclic_steps_every_batch_the_others_once_per_epoch(make_trainer, name, kwargs, formula):
    rates = epoch_learning_rates(make_trainer, name, kwargs, batch_size=5)  # two batches per epoch
    assert rates == pytest.approx([formula(s) for s in range(EPOCHS)], rel=1e-5)


def test_constant_rate_without_scheduler(make_trainer):
    model = DenseRegressor(hidden_sizes=[4], lr=LR)
    assert isinstance(model.configure_optimizers(), torch.optim.Adam)
    assert epoch_learning_rates(make_trainer, None, None) == pytest.approx([LR] * EPOCHS, rel=1e-6)  # logged as float32


class StepMomentum(Callback):
    """Records ``(lr, momentum)`` of the first parameter group before every training step.

    The momentum is ``momentum`` where the optimizer has one, else Adam's ``betas[0]``.
    """

    def __init__(self) -> None:
        self.steps: list[tuple[float, float]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx) -> None:
        group = trainer.optimizers[0].param_groups[0]
        momentum = group["momentum"] if "momentum" in group else group["betas"][0]
        self.steps.append((group["lr"], momentum))


def step_momenta(make_trainer, **model_kwargs) -> list[tuple[float, float]]:
    """``(lr, momentum)`` before each of EPOCHS steps of a cyclic schedule (max_lr 0.05, step_size_up 2)."""
    recorder = StepMomentum()
    model = DenseRegressor(hidden_sizes=[4], lr=LR, lr_scheduler="cyclic",
                           lr_scheduler_kwargs={"max_lr": 0.05, "step_size_up": 2}, **model_kwargs)
    make_trainer(max_epochs=EPOCHS, callbacks=[recorder], limit_val_batches=0).fit(
        model, datamodule=ToyRegressionDataModule("linear", batch_size=10))
    return recorder.steps


def test_cyclic_cycles_momentum_inversely_to_the_rate_when_momentum_is_positive(make_trainer):
    steps = step_momenta(make_trainer, optimizer="sgd", momentum=0.9)
    rates, momenta = zip(*steps, strict=True)
    assert rates == pytest.approx([triangular(s, LR, 0.05, 2) for s in range(EPOCHS)], rel=1e-5)
    # CyclicLR's defaults: momentum from max_momentum 0.9 at base_lr down to base_momentum 0.8 at max_lr
    expected = [0.9 - 0.1 * (lr - LR) / (0.05 - LR) for lr in rates]
    assert momenta == pytest.approx(expected, rel=1e-6)
    assert min(momenta) == pytest.approx(0.8) and max(momenta) == pytest.approx(0.9)


@pytest.mark.parametrize(("model_kwargs", "momentum"), [
    ({"optimizer": "sgd"}, 0.0),
    ({"optimizer": "rmsprop"}, 0.0),
    ({"optimizer": "adam"}, 0.9),  # Adam's betas[0], which CyclicLR would cycle too
], ids=["sgd", "rmsprop", "adam"])
def test_cyclic_keeps_momentum_constant_without_momentum(make_trainer, model_kwargs, momentum):
    steps = step_momenta(make_trainer, **model_kwargs)
    assert [m for _, m in steps] == [momentum] * EPOCHS
    assert len({lr for lr, _ in steps}) > 1  # while the rate does cycle


def one_cycle(step: int, total: int, peak: float, pct_start: float = 0.3, div: float = 25.0,
              final_div: float = 1e4) -> float:
    """OneCycleLR's cosine schedule with its defaults: peak/div up to peak, then down to peak/div/final_div."""
    start, end, turn = peak / div, peak / div / final_div, pct_start * total - 1

    def cosine(high: float, low: float, fraction: float) -> float:
        return low + (high - low) * (1 + math.cos(math.pi * fraction)) / 2

    if step <= turn:
        return cosine(start, peak, step / turn)
    return cosine(peak, end, (step - turn) / (total - 1 - turn))


def test_onecycle_spans_the_whole_fit_and_peaks_at_lr(make_trainer):
    """total_steps defaults to every batch of the fit (EPOCHS × 2 batches), max_lr to ``lr``; stepped per batch."""
    recorder = StepMomentum()
    model = DenseRegressor(hidden_sizes=[4], lr=LR, lr_scheduler="onecycle")
    make_trainer(max_epochs=EPOCHS, callbacks=[recorder], limit_val_batches=0).fit(
        model, datamodule=ToyRegressionDataModule("linear", batch_size=5))
    rates = [lr for lr, _ in recorder.steps]
    total = 2 * EPOCHS
    assert rates == pytest.approx([one_cycle(s, total, LR) for s in range(total)], rel=1e-5)
    assert rates[0] == pytest.approx(LR / 25) and 0.99 * LR < max(rates) <= LR  # the peak falls between two steps
    assert [m for _, m in recorder.steps] == [0.9] * total  # Adam's betas[0] is not cycled without momentum


def test_onecycle_needs_total_steps_when_the_fit_is_unbounded(make_trainer):
    model = DenseRegressor(hidden_sizes=[4], lr_scheduler="onecycle")
    model.trainer = make_trainer(max_epochs=-1)
    with pytest.raises(ValueError, match="lr_scheduler='onecycle' needs `lr_scheduler_kwargs` total_steps"):
        model.configure_optimizers()


def test_nesterov_reaches_sgd():
    model = DenseClassifier(hidden_sizes=[8], optimizer="sgd", momentum=0.9, nesterov=True)
    optimizer = model.configure_optimizers()
    assert optimizer.defaults["nesterov"] is True and optimizer.defaults["momentum"] == 0.9


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop"])
def test_momentum_reaches_the_optimizers_that_take_it(optimizer):
    model = DenseClassifier(hidden_sizes=[8], optimizer=optimizer, momentum=0.7)
    assert model.configure_optimizers().defaults["momentum"] == 0.7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr_scheduler": "warmup"},
         r"`lr_scheduler` must be one of \['cosine', 'cyclic', 'exponential', 'onecycle', 'plateau', 'step'\], "
         r"got 'warmup'"),
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


@pytest.mark.parametrize("max_epochs", [-1, None])
def test_cosine_needs_t_max_when_the_epochs_are_unbounded(make_trainer, max_epochs):
    model = DenseRegressor(hidden_sizes=[4], lr_scheduler="cosine")
    trainer = make_trainer(max_epochs=max_epochs, max_steps=3)
    model.trainer = trainer
    message = "lr_scheduler='cosine' needs `lr_scheduler_kwargs` T_max when max_epochs is not set"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model.configure_optimizers()
    with_t_max = DenseRegressor(hidden_sizes=[4], lr_scheduler="cosine", lr_scheduler_kwargs={"T_max": 7})
    with_t_max.trainer = trainer
    assert with_t_max.configure_optimizers()["lr_scheduler"]["scheduler"].T_max == 7


def test_cosine_t_max_is_max_epochs_even_for_one_epoch(make_trainer):
    model = DenseRegressor(hidden_sizes=[4], lr_scheduler="cosine")
    model.trainer = make_trainer(max_epochs=1)
    assert model.configure_optimizers()["lr_scheduler"]["scheduler"].T_max == 1
