"""The one builder of the dense stack every model in the collection uses."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lit_reg.models.layers import DropConnectLinear, GaussianDropout, GaussianNoise
from lit_reg.registry import ACTIVATIONS, INITS, check_in_range, check_positive_int, lookup

#: how ``dropout`` acts, by ``dropout_mode``: the layer after each hidden activation (None: DropConnect, which drops the
#: next ``Linear``'s weights instead of activations)
DROPOUT_MODES: dict[str, type[nn.Module] | None] = {
    "bernoulli": nn.Dropout,
    "gaussian": GaussianDropout,
    "alpha": nn.AlphaDropout,
    "dropconnect": None,
}


def check_sizes(hidden_sizes: Sequence[int]) -> list[int]:
    """Return ``hidden_sizes`` as a list; ``ValueError`` unless all are positive integers (an empty list is fine)."""
    sizes = list(hidden_sizes)
    if any(not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in sizes):
        raise ValueError(
            f"`hidden_sizes` must be a list of positive integers ([] for no hidden layer), got {hidden_sizes!r}"
        )
    return sizes


def dropout_rates(dropout: float | Sequence[float], num_hidden: int) -> list[float]:
    """Expand ``dropout`` (one rate, or one per hidden layer) to a list of ``num_hidden`` checked rates."""
    rates = [float(dropout)] * num_hidden if isinstance(dropout, (int, float)) else [float(p) for p in dropout]
    if len(rates) != num_hidden:
        raise ValueError(
            f"`dropout` must be one float or a list with one rate per hidden layer ({num_hidden}), "
            f"got {len(rates)} rates: {list(dropout)!r}"
        )
    for p in rates:
        check_in_range(p, "dropout", 0.0, 1.0)
    return rates


def build_dense_stack(
    input_size: int,
    hidden_sizes: Sequence[int],
    output_size: int,
    activation: str = "relu",
    dropout: float | Sequence[float] = 0.0,
    batchnorm: bool = False,
    init: str = "default",
    dropout_mode: str = "bernoulli",
    input_noise: float = 0.0,
) -> nn.Sequential:
    """Build ``[GaussianNoise] → (Linear → [BatchNorm1d] → activation → [Dropout(p_i)])`` per hidden size, then the
    output ``Linear``.

    Batch norm sits between each hidden ``Linear`` and its activation; dropout follows the activation
    and is left out of layers whose rate is 0. The output layer has neither.

    Args:
        input_size: number of input features (images are flattened before the stack).
        hidden_sizes: width of each hidden layer, all positive; ``[]`` builds one ``Linear`` from input to output
            (softmax/linear regression; ``dropout`` and ``batchnorm`` then have no layer to act on).
        output_size: number of outputs (classes, logits or regression targets).
        activation: one of ``relu``, ``leaky_relu``, ``tanh``, ``sigmoid``, ``elu``.
        dropout: one rate in [0, 1) for every hidden layer, or a list with one rate per hidden layer.
        batchnorm: put a ``BatchNorm1d`` after every hidden ``Linear``.
        init: initialization of every ``Linear`` weight: ``default`` (PyTorch's own, biases untouched),
            ``xavier_uniform`` / ``xavier_normal`` (Glorot, std √(2/(fan_in+fan_out)), for tanh/sigmoid) or
            ``kaiming_uniform`` / ``kaiming_normal`` (He, std √(2/fan_in), for ReLU); all but ``default`` set
            the biases to zero. Uses ``torch.nn.init`` with its default gains.
        dropout_mode: how the rate ``p_i`` of hidden layer i acts, in training only: ``bernoulli`` (``nn.Dropout``:
            zero each activation with probability p, scale the rest by 1/(1-p)), ``gaussian``
            (:class:`~lit_reg.models.layers.GaussianDropout`: multiply each activation by N(1, p/(1-p))), ``alpha``
            (``nn.AlphaDropout``, which keeps SELU-like activations' mean and variance) or ``dropconnect`` (the
            ``Linear`` after layer i drops its weights, :class:`~lit_reg.models.layers.DropConnectLinear`).
        input_noise: std >= 0 of Gaussian noise added to the (standardized) inputs in training
            (:class:`~lit_reg.models.layers.GaussianNoise` as the first layer); 0 adds no layer.

    Raises:
        ValueError: for an unknown activation, init or dropout mode, bad sizes, dropout rates or input noise.

    Example:
        >>> build_dense_stack(4, [8], 2, activation="tanh", dropout=0.5)
        Sequential(
          (0): Linear(in_features=4, out_features=8, bias=True)
          (1): Tanh()
          (2): Dropout(p=0.5, inplace=False)
          (3): Linear(in_features=8, out_features=2, bias=True)
        )
    """
    check_positive_int(input_size, "input_size")
    check_positive_int(output_size, "output_size")
    sizes = check_sizes(hidden_sizes)
    rates = dropout_rates(dropout, len(sizes))
    activation_cls = lookup(ACTIVATIONS, activation, "activation")
    init_fn = lookup(INITS, init, "init")
    dropout_cls = lookup(DROPOUT_MODES, dropout_mode, "dropout_mode")
    check_in_range(input_noise, "input_noise", 0.0)

    layers: list[nn.Module] = [GaussianNoise(input_noise)] if input_noise else []
    width = input_size
    dropped_weights = 0.0  # DropConnect: the rate of the layer before, applied to the next Linear's weights

    def linear(width: int, size: int) -> nn.Linear:
        return DropConnectLinear(width, size, dropped_weights) if dropped_weights else nn.Linear(width, size)

    for size, rate in zip(sizes, rates, strict=True):
        layers.append(linear(width, size))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(activation_cls())
        if rate > 0 and dropout_cls is not None:
            layers.append(dropout_cls(rate))
        dropped_weights = rate if dropout_cls is None else 0.0
        width = size
    layers.append(linear(width, output_size))
    if init_fn is not None:
        for layer in layers:
            if isinstance(layer, nn.Linear):
                init_fn(layer.weight)
                nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)
