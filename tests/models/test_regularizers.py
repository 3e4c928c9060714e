"""Each regularizer of issue 18 pinned on a tiny net: its effect, its formula, and that it stays out of evaluation."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_reg.models import BitmojiClassifier, DenseClassifier, DenseRegressor
from lit_reg.models.layers import DropConnectLinear, GaussianDropout, GaussianNoise
from lit_reg.models.regularizers import activity_penalty, apply_max_norm, orthogonality_penalty

X = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(1))


def loader(batch_size: int = 8) -> DataLoader:
    return DataLoader(TensorDataset(X, Y), batch_size=batch_size)


def fit(model: pl.LightningModule, make_trainer, **trainer_kwargs) -> pl.Trainer:
    trainer = make_trainer(**{"max_epochs": 1, "limit_val_batches": 0, **trainer_kwargs})
    trainer.fit(model, train_dataloaders=loader())
    return trainer


def step_loss(model: pl.LightningModule, stage: str = "train") -> torch.Tensor:
    """The loss ``_shared_step`` returns for (X, Y); batch_idx 1 so nothing is logged outside a Trainer."""
    model.train(stage == "train")
    return model._shared_step((X, Y), stage, batch_idx=1)


# -- input noise ---------------------------------------------------------------------------------------------------
def test_input_noise_is_the_first_layer_adds_noise_of_that_std_in_training_and_nothing_in_eval():
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[8], input_noise=0.5)
    assert isinstance(model.net[0], GaussianNoise) and model.net[0].std == 0.5
    noise = GaussianNoise(0.5)
    x = torch.zeros(20000, 5)
    torch.manual_seed(0)
    assert noise(x).std().item() == pytest.approx(0.5, rel=0.02)
    assert torch.equal(noise.eval()(x), x)
    plain = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[8])
    with torch.no_grad():
        for mine, theirs in zip(plain.parameters(), model.parameters(), strict=True):
            mine.copy_(theirs)
    assert torch.equal(model.eval()(X), plain.eval()(X))  # eval: the noise layer is the identity
    model.train()
    assert not torch.equal(model(X), plain.train()(X))


# -- dropout modes -------------------------------------------------------------------------------------------------
def test_gaussian_dropout_multiplies_by_noise_of_mean_one_and_variance_p_over_one_minus_p():
    layer = GaussianDropout(0.2)
    torch.manual_seed(0)
    out = layer(torch.ones(200000))
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    assert out.var().item() == pytest.approx(0.2 / 0.8, rel=0.02)
    assert torch.equal(layer.eval()(torch.ones(3)), torch.ones(3))


def test_dropout_modes_put_their_layer_after_each_activation():
    layers = {mode: [type(m).__name__ for m in DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[8, 6],
                                                               dropout=[0.5, 0.25], dropout_mode=mode).net]
              for mode in ("bernoulli", "gaussian", "alpha", "dropconnect")}
    assert layers["bernoulli"] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert layers["gaussian"] == ["Linear", "ReLU", "GaussianDropout", "Linear", "ReLU", "GaussianDropout", "Linear"]
    assert layers["alpha"] == ["Linear", "ReLU", "AlphaDropout", "Linear", "ReLU", "AlphaDropout", "Linear"]
    # DropConnect: hidden layer i's rate drops the weights of the Linear after it
    net = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[8, 6], dropout=[0.5, 0.25],
                          dropout_mode="dropconnect").net
    assert layers["dropconnect"] == ["Linear", "ReLU", "DropConnectLinear", "ReLU", "DropConnectLinear"]
    assert [net[2].p, net[4].p] == [0.5, 0.25]


def test_dropconnect_drops_weights_not_biases_rescales_the_kept_ones_and_is_plain_linear_in_eval():
    layer = DropConnectLinear(6, 4, p=0.5)
    x = torch.randn(3, 6)
    assert torch.equal(layer.eval()(x), F.linear(x, layer.weight, layer.bias))
    layer.train()
    torch.manual_seed(3)
    out = layer(x)
    torch.manual_seed(3)
    mask = F.dropout(torch.ones_like(layer.weight), 0.5, training=True)  # the same draw: 0 or 1/(1-p)
    assert set(mask.unique().tolist()) == {0.0, 2.0}
    assert torch.allclose(out, F.linear(x, layer.weight * mask, layer.bias))
    assert torch.equal(layer(torch.zeros(2, 6)), layer.bias.expand(2, 4))  # the biases are never dropped
    assert set(layer.state_dict()) == {"weight", "bias"}  # checkpoints load into a plain Linear


def test_dropconnect_without_bias_and_a_bad_rate_named_in_the_error():
    layer = DropConnectLinear(6, 4, p=0.5, bias=False)
    assert layer.bias is None and set(layer.state_dict()) == {"weight"}
    with pytest.raises(ValueError, match="`dropout`"):
        DropConnectLinear(6, 4, p=1.5)


# -- max-norm ------------------------------------------------------------------------------------------------------
def test_apply_max_norm_shortens_only_the_rows_longer_than_c():
    w = torch.tensor([[3.0, 4.0], [0.6, 0.0]])
    apply_max_norm([w], 2.0)
    assert torch.allclose(w, torch.tensor([[1.2, 1.6], [0.6, 0.0]]))


@pytest.mark.parametrize("max_norm", [None, 0.5])
def test_max_norm_holds_every_hidden_units_incoming_weights_to_c_after_each_step(make_trainer, max_norm):
    torch.manual_seed(0)
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[8, 8], lr=0.5, optimizer="sgd",
                            max_norm=max_norm)
    with torch.no_grad():
        for layer in model.linear_layers:
            layer.weight.mul_(5.0)  # rows far longer than 0.5 to start with
    fit(model, make_trainer)
    hidden_rows = torch.cat([m.weight.norm(dim=1) for m in model.linear_layers[:-1]])
    if max_norm is None:
        assert hidden_rows.max() > 1.0  # without the constraint they stay long: the check below can fail
    else:
        assert hidden_rows.max() <= max_norm + 1e-6
        assert model.linear_layers[-1].weight.norm(dim=1).max() > max_norm  # the output layer is not constrained


# -- activity penalty ----------------------------------------------------------------------------------------------
def test_activity_penalty_is_lambda_times_the_mean_over_all_hidden_activations():
    h = [torch.tensor([[1.0, -2.0, 0.0]]), torch.tensor([[4.0]])]
    assert activity_penalty(h, l1=0.1).item() == pytest.approx(0.1 * 7 / 4)
    assert activity_penalty(h, l2=0.1).item() == pytest.approx(0.1 * 21 / 4)


def test_activity_penalty_enters_the_training_loss_with_the_gradient_of_the_activations_and_not_val_loss():
    torch.manual_seed(0)
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[5, 3], activity_l1=0.3, activity_l2=0.2)
    plain = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[5, 3])
    plain.load_state_dict(model.state_dict())

    def by_hand(net: nn.Sequential) -> torch.Tensor:
        h1 = torch.relu(net[0](X))
        h2 = torch.relu(net[2](h1))
        count = h1.numel() + h2.numel()
        return 0.3 * (h1.abs().sum() + h2.abs().sum()) / count + 0.2 * (h1.square().sum() + h2.square().sum()) / count

    loss = step_loss(model)
    reference = step_loss(plain) + by_hand(plain.net)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    assert by_hand(plain.net).item() > 0.01 * loss.item()
    loss.backward()
    reference.backward()
    for mine, theirs in zip(model.parameters(), plain.parameters(), strict=True):
        assert torch.allclose(mine.grad, theirs.grad, atol=1e-6)  # the penalty's gradient reaches the weights
    assert step_loss(model, "val").item() == pytest.approx(step_loss(plain, "val").item())
    assert model._hidden_activations == []  # nothing kept between steps


def test_activations_of_a_no_grad_pass_in_train_mode_are_not_recorded():
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[5], activity_l2=1.0).train()
    with torch.no_grad():
        model(X)  # e.g. the batch-norm statistics pass of weight averaging
    assert model._hidden_activations == []


# -- orthogonality -------------------------------------------------------------------------------------------------
def test_orthogonality_penalty_is_the_squared_frobenius_distance_of_w_w_transposed_to_the_identity():
    w = torch.tensor([[1.0, 2.0], [0.0, 1.0], [1.0, 0.0]])
    gram = w @ w.T
    assert orthogonality_penalty([w]).item() == pytest.approx(((gram - torch.eye(3)) ** 2).sum().item())
    assert orthogonality_penalty([torch.eye(3)[:2]]).item() == 0.0  # orthonormal rows cost nothing
    low = orthogonality_penalty([w.bfloat16()])
    assert low.dtype == torch.bfloat16  # the identity takes the weights' dtype: the term stays in bf16 under bf16


def test_orthogonal_penalty_is_in_train_loss_only():
    torch.manual_seed(0)
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[5], orthogonal_penalty=0.01)
    plain = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[5])
    plain.load_state_dict(model.state_dict())
    by_hand = 0.01 * sum(((m.weight @ m.weight.T - torch.eye(m.weight.shape[0])) ** 2).sum()
                         for m in model.linear_layers)
    assert step_loss(model).item() == pytest.approx((step_loss(plain) + by_hand).item(), rel=1e-6)
    assert step_loss(model, "val").item() == step_loss(plain, "val").item()


# -- mixup ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_mixup_loss_is_the_cross_entropy_against_the_mixed_targets(label_smoothing):
    torch.manual_seed(0)
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[5], mixup_alpha=0.4,
                            label_smoothing=label_smoothing)
    torch.manual_seed(7)
    loss = step_loss(model)
    torch.manual_seed(7)  # the same draws, by hand
    lam = torch.distributions.Beta(0.4, 0.4).sample()
    perm = torch.randperm(len(X))
    mixed = lam * X + (1 - lam) * X[perm]
    one_hot = lam * F.one_hot(Y, 3) + (1 - lam) * F.one_hot(Y[perm], 3)
    soft = one_hot * (1 - label_smoothing) + label_smoothing / 3
    by_hand = -(soft * model.eval()(mixed).log_softmax(-1)).sum(-1).mean()
    assert 0 < lam < 1 and not torch.equal(perm, torch.arange(len(X)))
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_mixup_on_the_binary_model_mixes_the_binary_cross_entropy_and_leaves_validation_alone():
    torch.manual_seed(0)
    model = BitmojiClassifier(input_size=4, hidden_sizes=[5], dropout=0.0, mixup_alpha=1.0)
    target = (Y > 0).long()
    torch.manual_seed(2)
    model.train()
    loss = model._shared_step((X, target), "train", batch_idx=1)
    torch.manual_seed(2)
    lam = torch.distributions.Beta(1.0, 1.0).sample()
    perm = torch.randperm(len(X))
    logits = model.eval()(lam * X + (1 - lam) * X[perm])
    by_hand = F.binary_cross_entropy_with_logits(logits, lam * target + (1 - lam) * target[perm].float())
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    val = model._shared_step((X, target), "val", batch_idx=1)
    assert val.item() == pytest.approx(F.binary_cross_entropy_with_logits(model(X), target.float()).item())


def test_mixup_trains_a_classifier_end_to_end(make_trainer):
    torch.manual_seed(0)
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[8], mixup_alpha=0.2)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = fit(model, make_trainer, max_epochs=2)
    assert trainer.global_step == 8
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert 0.0 <= float(trainer.callback_metrics["train_acc"]) <= 1.0


def test_bad_values_name_the_argument():
    with pytest.raises(ValueError, match=r"`max_norm` must be in \(0\.0, inf\), got -1"):
        DenseClassifier(max_norm=-1)
    with pytest.raises(ValueError, match=r"`mixup_alpha` must be in \(0\.0, inf\), got 0"):
        DenseClassifier(mixup_alpha=0)
    with pytest.raises(ValueError, match="`mixup_alpha` mixes class targets, but DenseRegressor is a regressor"):
        DenseRegressor(mixup_alpha=0.2)
    with pytest.raises(ValueError, match=r"`input_noise` must be in \[0\.0, inf\)"):
        DenseClassifier(input_noise=-0.5)
    for name in ("activity_l1", "activity_l2", "orthogonal_penalty"):
        with pytest.raises(ValueError, match=rf"`{name}` must be in \[0\.0, inf\), got -0\.1"):
            DenseClassifier(**{name: -0.1})
    with pytest.raises(ValueError, match=r"`dropout_mode` must be one of \['alpha', 'bernoulli', 'dropconnect', "):
        DenseClassifier(dropout_mode="spatial")


# -- gradient clipping (Lightning's) -------------------------------------------------------------------------------
@pytest.mark.parametrize("lr_scheduler", [None, "cyclic"])
def test_lightnings_gradient_clipping_bounds_each_update_of_our_models(make_trainer, lr_scheduler):
    """SGD with lr=1 and no momentum moves the weights by exactly the (clipped) gradient: its norm is <= the bound."""
    scheduler_kwargs = {"max_lr": 1.0, "step_size_up": 2} if lr_scheduler else None
    moves = {}
    for clip in (None, 1e-3):
        torch.manual_seed(0)
        model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[8], optimizer="sgd", lr=1.0,
                                lr_scheduler=lr_scheduler, lr_scheduler_kwargs=scheduler_kwargs)
        before = nn.utils.parameters_to_vector(model.parameters()).detach().clone()
        fit(model, make_trainer, max_steps=1, gradient_clip_val=clip)
        moves[clip] = (nn.utils.parameters_to_vector(model.parameters()) - before).norm().item()
    assert moves[None] > 1e-2
    assert 0 < moves[1e-3] <= 1e-3 * (1 + 1e-4)
