import math

import pytest
import torch
from torch import nn

from lit_reg.models import DenseClassifier, build_dense_stack

FAN_IN, FAN_OUT = 1000, 500


@pytest.mark.parametrize(
    ("init", "std"),
    [
        ("xavier_uniform", math.sqrt(2 / (FAN_IN + FAN_OUT))),  # Glorot: for tanh / sigmoid
        ("xavier_normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
        ("kaiming_uniform", math.sqrt(2 / FAN_IN)),  # He: for ReLU
        ("kaiming_normal", math.sqrt(2 / FAN_IN)),
    ],
)
def test_weight_std_matches_the_scheme_and_biases_are_zero(init, std):
    torch.manual_seed(0)
    stack = build_dense_stack(FAN_IN, [FAN_OUT], 10, init=init)
    first = stack[0]
    assert first.weight.std().item() == pytest.approx(std, rel=0.02)
    assert first.weight.mean().item() == pytest.approx(0.0, abs=std / 100)
    assert all(torch.count_nonzero(layer.bias) == 0 for layer in stack if isinstance(layer, nn.Linear))


def test_default_keeps_pytorch_init():
    torch.manual_seed(0)
    stack = build_dense_stack(FAN_IN, [FAN_OUT], 10)
    torch.manual_seed(0)
    reference = nn.Linear(FAN_IN, FAN_OUT)
    assert torch.equal(stack[0].weight, reference.weight) and torch.equal(stack[0].bias, reference.bias)


def test_models_pass_init_to_the_builder():
    model = DenseClassifier(hidden_sizes=[64], init="kaiming_normal")
    assert all(torch.count_nonzero(layer.bias) == 0 for layer in model.linear_layers)
    assert model.hparams.init == "kaiming_normal"


def test_unknown_init_raises():
    with pytest.raises(ValueError, match=r"`init` must be one of \['default', 'kaiming_normal', 'kaiming_uniform', "
                                         r"'xavier_normal', 'xavier_uniform'\], got 'orthogonal'"):
        DenseClassifier(init="orthogonal")
