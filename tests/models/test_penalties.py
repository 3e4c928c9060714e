import pytest
import pytorch_lightning as pl
import torch

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
