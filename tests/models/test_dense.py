import pytest
import torch
from torch import nn

from lit_reg.models import BitmojiClassifier, DenseClassifier, DenseRegressor
from lit_reg.models.dense import build_dense_stack


def layer_types(stack: nn.Sequential) -> list[str]:
    return [type(m).__name__ for m in stack]


def test_plain_stack_order_and_sizes():
    stack = build_dense_stack(784, [512, 256], 10)
    assert layer_types(stack) == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    linears = [m for m in stack if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 512), (512, 256), (256, 10)]


def test_batchnorm_sits_between_linear_and_activation_and_dropout_after():
    stack = build_dense_stack(4, [8, 6], 2, activation="leaky_relu", dropout=0.3, batchnorm=True)
    assert layer_types(stack) == [
        "Linear", "BatchNorm1d", "LeakyReLU", "Dropout",
        "Linear", "BatchNorm1d", "LeakyReLU", "Dropout",
        "Linear",
    ]
    assert [m.num_features for m in stack if isinstance(m, nn.BatchNorm1d)] == [8, 6]


def test_dropout_per_layer_only_where_positive():
    stack = build_dense_stack(4, [8, 6, 5], 2, dropout=[0.5, 0.0, 0.2])
    assert layer_types(stack) == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Linear", "ReLU", "Dropout", "Linear"]
    assert [m.p for m in stack if isinstance(m, nn.Dropout)] == [0.5, 0.2]


@pytest.mark.parametrize(
    ("name", "cls"),
    [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("elu", nn.ELU)],
)
def test_activation_by_name(name, cls):
    stack = build_dense_stack(3, [4, 4], 1, activation=name)
    assert sum(isinstance(m, cls) for m in stack) == 2


def test_eval_disables_dropout_train_enables_it():
    torch.manual_seed(0)
    stack = build_dense_stack(20, [64], 3, dropout=0.5)
    x = torch.randn(8, 20)
    stack.eval()
    assert torch.equal(stack(x), stack(x))
    stack.train()
    assert not torch.equal(stack(x), stack(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dropout": 1.0}, r"`dropout` must be in \[0.0, 1.0\), got 1.0"),
        ({"dropout": -0.1}, r"`dropout` must be in \[0.0, 1.0\)"),
        ({"dropout": [0.1]}, r"`dropout` must be one float or a list with one rate per hidden layer \(2\)"),
        ({"hidden_sizes": [8, 0]},
         r"`hidden_sizes` must be a list of positive integers \(\[\] for no hidden layer\), got \[8, 0\]"),
        ({"activation": "swish"}, r"`activation` must be one of \['elu', 'leaky_relu', 'relu', 'sigmoid', 'tanh'\]"),
        ({"input_size": 0}, r"`input_size` must be a positive integer, got 0"),
        ({"output_size": -1}, r"`output_size` must be a positive integer, got -1"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, message):
    arguments = {"input_size": 4, "hidden_sizes": [8, 8], "output_size": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_dense_stack(**arguments)


@pytest.mark.parametrize("model_cls", [DenseClassifier, DenseRegressor, BitmojiClassifier])
def test_no_hidden_layer_builds_one_linear_for_every_model(model_cls):
    """Softmax (or linear/logistic) regression: ``hidden_sizes=[]`` is one Linear from input to output."""
    sizes = {DenseClassifier: {"num_classes": 10}, DenseRegressor: {"output_size": 1}, BitmojiClassifier: {}}
    model = model_cls(input_size=12, hidden_sizes=[], dropout=0.5, batchnorm=True, **sizes[model_cls])
    (layer,) = model.net
    outputs = {DenseClassifier: 10, DenseRegressor: 1, BitmojiClassifier: 1}[model_cls]
    assert isinstance(layer, nn.Linear) and (layer.in_features, layer.out_features) == (12, outputs)
    x = torch.randn(3, 12)
    # (Bitmoji squeezes its one logit)
    torch.testing.assert_close(model(x).reshape(3, -1), x @ layer.weight.T + layer.bias)


def test_a_rate_per_hidden_layer_with_no_hidden_layer_means_an_empty_list():
    assert len(build_dense_stack(4, [], 2, dropout=[])) == 1
    with pytest.raises(ValueError, match=r"one rate per hidden layer \(0\), got 1 rates"):
        build_dense_stack(4, [], 2, dropout=[0.1])
