import math
import re

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from datamodules import ToyRegressionDataModule
from lit_reg.models import DenseClassifier, DenseRegressor
from tests.conftest import EpochMetrics

LR = 0.01
EPOCHS = 6


def restarts(s: int, t_0: int, t_mult: int, eta_min: float) -> float:
    """CosineAnnealingWarmRestarts at epoch s: cosine from LR to eta_min over periods t_0, t_0·t_mult, ..."""
    period = t_0
    while s >= period:
        s, period = s - period, period * t_mult
    return eta_min + (LR - eta_min) * (1 + math.cos(math.pi * s / period)) / 2


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
        ("cosine_restarts", {"T_0": 2, "T_mult": 2, "eta_min": 1e-3}, lambda s: restarts(s, 2, 2, 1e-3)),
        ("cosine_restarts", {"T_0": 3}, lambda s: restarts(s, 3, 1, 0.0)),
        ("inverse_time", {"decay_rate": 0.5}, lambda s: LR / (1 + 0.5 * s)),  # the lecture's η₀/(1+ks), per batch
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
        ("cosine_restarts", {"T_0": 2}, lambda s: restarts(s, 2, 1, 0.0)),
        ("inverse_time", {"decay_rate": 0.5, "decay_steps": 2}, lambda s: LR / (1 + 0.5 * 2 * s / 2)),
    ],
)
def test_cyclic_onecycle_inverse_time_step_every_batch_the_others_once_per_epoch(make_trainer, name, kwargs, formula):
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


def step_momenta(make_trainer, batch_size: int = 10, max_epochs: int = EPOCHS, checkpoint_dir=None,
                 ckpt_path: str | None = None, **model_kwargs) -> list[tuple[float, float]]:
    """``(lr, momentum)`` before each training step; by default of a cyclic schedule (max_lr 0.05, step_size_up 2)
    with one step an epoch. With ``checkpoint_dir`` the fit saves ``last.ckpt`` there; ``ckpt_path`` resumes."""
    recorder = StepMomentum()
    model_kwargs.setdefault("lr_scheduler", "cyclic")
    if model_kwargs["lr_scheduler"] == "cyclic":
        model_kwargs.setdefault("lr_scheduler_kwargs", {"max_lr": 0.05, "step_size_up": 2})
    model = DenseRegressor(hidden_sizes=[4], lr=LR, **model_kwargs)
    callbacks: list[Callback] = [recorder]
    if checkpoint_dir is not None:
        callbacks.append(ModelCheckpoint(dirpath=checkpoint_dir, save_last=True, save_top_k=0))
    make_trainer(max_epochs=max_epochs, callbacks=callbacks, limit_val_batches=0,
                 enable_checkpointing=checkpoint_dir is not None).fit(
        model, datamodule=ToyRegressionDataModule("linear", batch_size=batch_size), ckpt_path=ckpt_path)
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


@pytest.mark.parametrize(("kwargs", "formula"), [
    ({"decay_rate": 0.5, "decay_steps": 3}, lambda s: LR / (1 + 0.5 * s / 3)),
    ({"decay_rate": 0.5, "decay_steps": 3, "staircase": True}, lambda s: LR / (1 + 0.5 * (s // 3))),
    ({"decay_rate": 2.0}, lambda s: LR / (1 + 2 * s)),
], ids=["continuous", "staircase", "decay_steps=1"])
def test_inverse_time_decays_per_batch_as_keras(make_trainer, kwargs, formula):
    """Keras' InverseTimeDecay: η₀/(1 + decay_rate·s/decay_steps), s the optimizer step (⌊s/decay_steps⌋ staircase)."""
    rates = [lr for lr, _ in step_momenta(make_trainer, batch_size=5, lr_scheduler="inverse_time",
                                          lr_scheduler_kwargs=kwargs)]
    assert rates == pytest.approx([formula(s) for s in range(2 * EPOCHS)], rel=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"decay_rate": -0.1}, r"`lr_scheduler_kwargs` decay_rate must be a number >= 0, got -0\.1"),
    ({"decay_rate": 0.1, "decay_steps": 0}, r"`lr_scheduler_kwargs` decay_steps must be a positive integer, got 0"),
    ({"decay_rate": 0.1, "decay_steps": 2.5}, r"decay_steps must be a positive integer, got 2\.5"),
])
def test_inverse_time_refuses_bad_values(make_trainer, kwargs, message):
    model = DenseRegressor(hidden_sizes=[4], lr_scheduler="inverse_time", lr_scheduler_kwargs=kwargs)
    model.trainer = make_trainer(max_epochs=2)
    with pytest.raises(ValueError, match=message):
        model.configure_optimizers()


def warmup(s: int, steps: int, peak: float = LR) -> float:
    """The linear warm-up: peak·(s+1)/(steps+1) for s < steps."""
    return peak * (s + 1) / (steps + 1)


@pytest.mark.parametrize(("name", "kwargs", "steps", "formula"), [
    (None, None, 3, lambda s: LR),  # constant after the warm-up
    ("step", {"step_size": 2, "gamma": 0.5}, 2, lambda s: LR * 0.5 ** (s // 2)),
    ("exponential", {"gamma": 0.5}, 1, lambda s: LR * 0.5**s),
    ("cosine", {}, 2, lambda s: LR * (1 + math.cos(math.pi * s / (EPOCHS - 2))) / 2),  # T_max: the epochs left
    ("cosine", {"T_max": 2}, 3, lambda s: LR * (1 + math.cos(math.pi * s / 2)) / 2),
    ("cosine_restarts", {"T_0": 2}, 2, lambda s: restarts(s, 2, 1, 0.0)),
], ids=["no scheduler", "step", "exponential", "cosine", "cosine T_max", "cosine_restarts"])
def test_warmup_in_epochs_before_an_epoch_schedule(make_trainer, name, kwargs, steps, formula):
    """lr_warmup=W epochs at η₀·(s+1)/(W+1), then the schedule from its start (s counted from the end of warm-up)."""
    rates = epoch_learning_rates(make_trainer, name, kwargs, lr_warmup=steps)
    expected = [warmup(s, steps) if s < steps else formula(s - steps) for s in range(EPOCHS)]
    assert rates == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("name", "kwargs", "steps", "formula"), [
    ("inverse_time", {"decay_rate": 1.0}, 3, lambda s: LR / (1 + s)),
    ("cyclic", {"max_lr": 0.05, "step_size_up": 2}, 4, lambda s: triangular(s, LR, 0.05, 2)),
], ids=["inverse_time", "cyclic"])
def test_warmup_in_batches_before_a_batch_schedule(make_trainer, name, kwargs, steps, formula):
    rates = [lr for lr, _ in step_momenta(make_trainer, batch_size=5, lr_scheduler=name, lr_scheduler_kwargs=kwargs,
                                          lr_warmup=steps)]
    expected = [warmup(s, steps) if s < steps else formula(s - steps) for s in range(2 * EPOCHS)]
    assert rates == pytest.approx(expected, rel=1e-5)


def test_warmup_before_onecycle_rises_to_its_first_rate_and_leaves_it_the_other_batches(make_trainer):
    """total_steps defaults to the batches after the warm-up, so the fit ends exactly at the end of the cycle."""
    steps, total = 3, 2 * EPOCHS
    rates = [lr for lr, _ in step_momenta(make_trainer, batch_size=5, lr_scheduler="onecycle", lr_warmup=steps)]
    expected = [warmup(s, steps, LR / 25) if s < steps else one_cycle(s - steps, total - steps, LR)
                for s in range(total)]
    assert rates == pytest.approx(expected, rel=1e-5)


def test_warmup_scheduler_state_resumes(make_trainer, tmp_path):
    """A fit resumed from a checkpoint in the middle of the warm-up goes on with the same rates as one fit."""
    kwargs = {"lr_scheduler": "inverse_time", "lr_scheduler_kwargs": {"decay_rate": 1.0}, "lr_warmup": 3,
              "batch_size": 5}
    straight = [lr for lr, _ in step_momenta(make_trainer, **kwargs)]
    first = step_momenta(make_trainer, max_epochs=1, checkpoint_dir=tmp_path, **kwargs)
    resumed = step_momenta(make_trainer, checkpoint_dir=tmp_path / "resumed", ckpt_path=str(tmp_path / "last.ckpt"),
                           **kwargs)
    assert [lr for lr, _ in first + resumed] == pytest.approx(straight, rel=1e-6)
    assert len(first) == 2 and len(straight) == 2 * EPOCHS


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_warmup_must_be_a_non_negative_integer(value):
    with pytest.raises(ValueError, match=rf"^`lr_warmup` must be an integer >= 0 \(the scheduler steps of linear "
                                         rf"warm-up\), got {re.escape(repr(value))}$"):
        DenseRegressor(lr_warmup=value)


def test_warmup_before_plateau_is_refused():
    with pytest.raises(ValueError, match=r"^`lr_warmup`=2 cannot come before lr_scheduler='plateau': "
                                         r"ReduceLROnPlateau steps on val_loss.*set lr_warmup=0"):
        DenseRegressor(lr_scheduler="plateau", lr_warmup=2)


@pytest.mark.parametrize(("name", "max_epochs", "message"), [
    ("cosine", 3, r"lr_scheduler='cosine' after `lr_warmup`=3 epochs needs max_epochs > 3 \(got 3\) or "
                  r"`lr_scheduler_kwargs` T_max"),
    ("onecycle", 1, r"lr_scheduler='onecycle' after `lr_warmup`=3 batches needs a longer fit \(it has 2 batches\)"),
])
def test_warmup_longer_than_the_fit_needs_the_schedule_length(make_trainer, name, max_epochs, message):
    from datamodules.toy_regression import ToyRegressionDataModule as Toy

    model = DenseRegressor(hidden_sizes=[4], lr_scheduler=name, lr_warmup=3)
    trainer = make_trainer(max_epochs=max_epochs, limit_val_batches=0)
    with pytest.raises(ValueError, match=message):
        trainer.fit(model, datamodule=Toy("linear", batch_size=5))


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
         r"`lr_scheduler` must be one of \['cosine', 'cosine_restarts', 'cyclic', 'exponential', 'inverse_time', "
         r"'onecycle', 'plateau', 'step'\], got 'warmup'"),
        ({"lr_scheduler": "cosine_restarts"}, r"`lr_scheduler_kwargs` must give \['T_0'\] for "
                                              r"lr_scheduler='cosine_restarts' \(CosineAnnealingWarmRestarts\)"),
        ({"lr_scheduler": "inverse_time"}, r"`lr_scheduler_kwargs` must give \['decay_rate'\] for "
                                           r"lr_scheduler='inverse_time' \(InverseTimeDecay\)"),
        ({"lr_scheduler": "inverse_time", "lr_scheduler_kwargs": {"decay_rate": 1, "gamma": 0.5}},
         r"`lr_scheduler_kwargs` has \['gamma'\], which lr_scheduler='inverse_time' \(InverseTimeDecay\) does not "
         r"take; it takes \['decay_rate', 'decay_steps', 'staircase', 'last_epoch'\]"),
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
