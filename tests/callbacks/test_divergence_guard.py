"""``DivergenceGuard``: a non-finite training loss stops the fit with one message that says what was kept."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lit_reg.callbacks import DivergenceError, DivergenceGuard


def diverged(checkpoint_callback) -> str:
    trainer = SimpleNamespace(checkpoint_callback=checkpoint_callback, current_epoch=2, global_step=7,
                              optimizers=[torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)])
    with pytest.raises(DivergenceError) as raised:
        DivergenceGuard().on_train_batch_end(trainer, None, {"loss": torch.tensor(float("nan"))}, None, 0)
    return str(raised.value)


def test_the_message_names_the_step_the_rate_and_the_best_checkpoint_kept():
    message = diverged(SimpleNamespace(best_model_path="logs/run/version_0/checkpoints/best.ckpt"))
    assert message.startswith("Training diverged: the training loss became nan at epoch 2, step 7 (learning rate 0.5). "
                              "The checkpoints written so far are finite and kept "
                              "(best: logs/run/version_0/checkpoints/best.ckpt). Lower the learning rate")


@pytest.mark.parametrize("checkpoint_callback", [None, SimpleNamespace(best_model_path="")])
def test_without_a_checkpoint_written_the_message_promises_none(checkpoint_callback):
    message = diverged(checkpoint_callback)
    assert "kept" not in message and "(learning rate 0.5). Lower the learning rate" in message


def test_a_finite_loss_passes():
    trainer = SimpleNamespace(checkpoint_callback=None, current_epoch=0, global_step=1, optimizers=[])
    assert DivergenceGuard().on_train_batch_end(trainer, None, torch.tensor(0.5), None, 0) is None


@pytest.mark.parametrize("every", [0, -1, 1.5])
def test_check_every_n_steps_must_be_a_positive_integer(every):
    with pytest.raises(ValueError, match="^`check_every_n_steps` must be a positive integer"):
        DivergenceGuard(check_every_n_steps=every)
