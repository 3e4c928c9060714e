"""The lectures' autograd check: the gradients of a 1-2-1 sigmoid regressor on one point, by hand and by torch.

    python examples/autograd_check.py

Builds the net with lit_reg's DenseRegressor, sets the lecture's weights, computes the MSE loss of the point
(x, y) = (1, 3) and back-propagates; prints each gradient next to the lecture's number and writes them to
``<out>/gradients.json``. (No training here, so no Trainer: this checks the model's forward pass and loss.)
"""

from __future__ import annotations

import json

import torch
from _common import example_parser, output_dir, print_table

from lit_reg import DenseRegressor

#: the lecture's weights and its gradients of the MSE loss at (x, y) = (1, 3)
WEIGHTS = {"net.0.weight": [[1.0], [-1.0]], "net.0.bias": [1.0, 2.0],
           "net.2.weight": [[1.0, 2.0]], "net.2.bias": [-1.0]}
LECTURE_GRADIENTS = {
    "net.2.bias": [-3.3142],
    "net.2.weight": [-2.9191, -2.4229],
    "net.0.bias": [-0.3480, -1.3032],
    "net.0.weight": [-0.3480, -1.3032],
}
NAMES = {"net.0.weight": "w_hidden", "net.0.bias": "b_hidden", "net.2.weight": "w_out", "net.2.bias": "b_out"}


def gradients() -> dict[str, list[float]]:
    """The gradient of each parameter of the lecture's net, flattened and rounded to 4 decimals."""
    model = DenseRegressor(input_size=1, output_size=1, hidden_sizes=[2], activation="sigmoid")
    model.load_state_dict({name: torch.tensor(value) for name, value in WEIGHTS.items()})
    x, y = torch.tensor([[1.0]]), torch.tensor([[3.0]])
    model.compute_loss(model(x), y).backward()
    return {name: [round(g, 4) for g in p.grad.flatten().tolist()] for name, p in model.named_parameters()}


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    args = example_parser(__doc__.splitlines()[0]).parse_args(argv)
    grads = gradients()
    (output_dir(args.out, "autograd_check") / "gradients.json").write_text(json.dumps(grads, indent=2))
    print_table([{"parameter": NAMES[name], "torch autograd": str(grads[name]), "lecture": str(expected),
                  "match": grads[name] == expected} for name, expected in LECTURE_GRADIENTS.items()])
    return grads


if __name__ == "__main__":
    main()
