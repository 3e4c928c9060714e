from collections.abc import Callable

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from datamodules import ToyRegressionDataModule
from lit_reg.callbacks import frobenius_norm
from lit_reg.models import DenseClassifier, DenseRegressor


def known_weights_model(input_size: int = 2, **kwargs) -> DenseRegressor:
    """input_size → 3 → 1 with weights 0.5 (first layer), -2.0 (output layer) and every bias 1.0."""
    model = DenseRegressor(input_size=input_size, hidden_sizes=[3], **kwargs)
    with torch.no_grad():
        model.net[0].weight.fill_(0.5)
        model.net[-1].weight.fill_(-2.0)
        model.net[0].bias.fill_(1.0)
        model.net[-1].bias.fill_(1.0)
    return model


def test_penalty_equals_the_hand_formula_on_weight_matrices():
    model = known_weights_model(l1_penalty=0.1, l2_penalty=0.01)
    # 6 weights of 0.5 and 3 of -2.0: Σ|w| = 9, Σw² = 13.5; the 4 biases are left out
    assert model.penalty().item() == pytest.approx(0.1 * 9 + 0.01 * 13.5)


def test_penalize_all_parameters_adds_biases_and_batchnorm():
    model = known_weights_model(l1_penalty=0.1, l2_penalty=0.01, penalize_all_parameters=True)
    assert model.penalty().item() == pytest.approx(0.1 * (9 + 4) + 0.01 * (13.5 + 4))
    with_bn = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[5], batchnorm=True, l1_penalty=1.0)
    assert len(with_bn.penalized_parameters()) == 2  # the two weight matrices, no bias, no BN scale/shift
    with_bn.hparams.penalize_all_parameters = True
    assert len(with_bn.penalized_parameters()) == len(list(with_bn.parameters()))


def test_no_penalty_is_zero():
    assert known_weights_model().penalty().item() == 0.0


def test_train_loss_includes_the_penalty_and_train_data_loss_does_not(make_trainer):
    model = known_weights_model(input_size=1, l2_penalty=0.5, lr=1e-12)  # the weights stay put
    make_trainer(max_epochs=1, limit_val_batches=0).fit(model, datamodule=ToyRegressionDataModule("linear",
                                                                                                  batch_size=10))
    logged = model.trainer.logged_metrics
    assert float(logged["train_loss"] - logged["train_data_loss"]) == pytest.approx(0.5 * (3 * 0.25 + 3 * 4), rel=1e-5)


def train_weights(make_trainer, epochs: int = 100, **kwargs) -> DenseRegressor:
    """SGD on the lectures' 10-point linear set, one batch per epoch, same seed every time."""
    pl.seed_everything(0, verbose=False)
    model = DenseRegressor(hidden_sizes=[32], optimizer="sgd", lr=0.05, **kwargs)
    make_trainer(max_epochs=epochs, limit_val_batches=0).fit(model, datamodule=ToyRegressionDataModule("linear",
                                                                                                      batch_size=10))
    return model


def near_zero_fraction(model: DenseRegressor) -> float:
    weights = torch.cat([p.detach().flatten() for p in model.penalized_parameters()])
    return (weights.abs() < 1e-2).float().mean().item()


def test_large_l1_penalty_drives_many_weights_to_zero(make_trainer):
    plain = train_weights(make_trainer)
    sparse = train_weights(make_trainer, l1_penalty=0.1)
    assert near_zero_fraction(plain) < 0.2
    assert near_zero_fraction(sparse) > 0.5


def test_l2_penalty_and_weight_decay_both_shrink_the_norm(make_trainer):
    plain = frobenius_norm(train_weights(make_trainer).penalized_parameters())
    penalized = frobenius_norm(train_weights(make_trainer, l2_penalty=0.1).penalized_parameters())
    decayed = frobenius_norm(train_weights(make_trainer, weight_decay=0.2).penalized_parameters())
    assert penalized < 0.6 * plain
    assert decayed < 0.6 * plain


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"l1_penalty": -0.1}, r"`l1_penalty` must be in \[0.0, inf\), got -0.1"),
        ({"l2_penalty": -1}, r"`l2_penalty` must be in \[0.0, inf\), got -1"),
    ],
)
def test_negative_penalties_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DenseRegressor(**kwargs)


def loader(x: torch.Tensor, y: torch.Tensor) -> DataLoader:
    """Plain float tensors in batches of 8: no datamodule transform between the data and the model."""
    return DataLoader(TensorDataset(x, y), batch_size=8)


def regression_case(**penalties: float) -> tuple[DenseRegressor, torch.Tensor, torch.Tensor, Callable]:
    """The known-weights regressor (Σ|w| = 9, Σw² = 13.5), 20 samples, and its data loss (MSE)."""
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    return known_weights_model(**penalties), x, x.sum(dim=1, keepdim=True), F.mse_loss


def classification_case(**penalties: float) -> tuple[DenseClassifier, torch.Tensor, torch.Tensor, Callable]:
    """A 3-class classifier with large first-layer weights, 20 samples, and its data loss (cross-entropy)."""
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 4, generator=generator), torch.randint(0, 3, (20,), generator=generator)
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[5], **penalties)
    with torch.no_grad():
        model.net[0].weight.fill_(1.0)  # Σ|w| = 20, Σw² = 20 plus the output layer's
    return model, x, y, F.cross_entropy


@pytest.mark.parametrize("case", [regression_case, classification_case], ids=["mse", "cross_entropy"])
@pytest.mark.parametrize("penalties", [{"l2_penalty": 0.5}, {"l1_penalty": 0.3},
                                       {"l1_penalty": 0.2, "l2_penalty": 0.1}], ids=["l2", "l1", "l1_and_l2"])
def test_penalty_stays_out_of_val_and_test_loss(make_trainer, case, penalties):
    model, x, y, data_loss_fn = case(**penalties, lr=1e-4)
    data = loader(x, y)
    trainer = make_trainer(max_epochs=1)
    trainer.fit(model, train_dataloaders=data, val_dataloaders=data)
    fit_val_loss = float(trainer.logged_metrics["val_loss"])  # validated after the epoch's last step
    (validated,) = trainer.validate(model, dataloaders=data, verbose=False)
    (tested,) = trainer.test(model, dataloaders=data, verbose=False)
    model.eval()
    with torch.no_grad():
        data_loss = data_loss_fn(model(x), y).item()
        penalty = model.penalty().item()
    assert penalty > 1.0  # far above the tolerance of the comparisons below
    for logged in (fit_val_loss, validated["val_loss"], tested["test_loss"]):
        assert logged == pytest.approx(data_loss, rel=1e-5)
        assert data_loss + penalty - logged == pytest.approx(penalty, rel=1e-4)


def step_with_zero_gradients(optimizer: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Every parameter before and after one optimizer step whose data gradient is zero (lr 0.1, weight_decay 0.5)."""
    torch.manual_seed(0)
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[5], batchnorm=True, optimizer=optimizer,
                            lr=0.1, weight_decay=0.5)
    with torch.no_grad():
        for module in model.net:
            if isinstance(module, torch.nn.BatchNorm1d):
                module.weight.fill_(1.5)
                module.bias.fill_(-0.5)  # batch-norm parameters away from their 1 and 0 start
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt = model.configure_optimizers()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return before, {name: p.detach() for name, p in model.named_parameters()}


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_weight_decay_is_a_gradient_term_with_sgd_and_adam_decoupled_with_adamw_on_every_parameter(optimizer):
    before, after = step_with_zero_gradients(optimizer)
    assert {"net.0.bias", "net.1.weight", "net.1.bias"} <= set(after)  # a bias and the batch norm's scale and shift
    for name, p in before.items():
        if optimizer == "adam":  # gradient wd·w, rescaled by Adam's first step to lr·g/(|g| + eps)
            gradient = 0.5 * p
            expected = p - 0.1 * gradient / (gradient.abs() + 1e-8)
        else:  # w ← w − lr·wd·w: SGD's gradient term and AdamW's decoupled decay agree when the data gradient is 0
            expected = p * (1 - 0.1 * 0.5)
        torch.testing.assert_close(after[name], expected, msg=f"{optimizer}: {name}")


def one_sgd_step(make_trainer, **kwargs: float) -> DenseRegressor:
    """The known-weights regressor after one plain SGD training step (lr 0.1) on a fixed batch of 8."""
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    model = known_weights_model(optimizer="sgd", lr=0.1, **kwargs)
    make_trainer(max_steps=1, limit_val_batches=0).fit(model, train_dataloaders=loader(x, x.sum(dim=1, keepdim=True)))
    return model


def test_l2_penalty_is_sgd_weight_decay_of_twice_lambda_on_the_weight_matrices_only(make_trainer):
    plain, penalized, decayed = (one_sgd_step(make_trainer, **kwargs)
                                 for kwargs in ({}, {"l2_penalty": 0.25}, {"weight_decay": 0.5}))
    for layer in (0, -1):
        torch.testing.assert_close(penalized.net[layer].weight, decayed.net[layer].weight)
        assert not torch.allclose(penalized.net[layer].weight, plain.net[layer].weight, atol=1e-3)
        # the penalty leaves the biases (1.0 before the step) to the data gradient; the decay takes lr·wd·1.0 more
        torch.testing.assert_close(penalized.net[layer].bias, plain.net[layer].bias)
        torch.testing.assert_close(decayed.net[layer].bias, plain.net[layer].bias - 0.1 * 0.5)
