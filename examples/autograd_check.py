"""The lectures' autograd check: the gradients of a 1-2-1 sigmoid regressor on one point, by hand and by torch.

    python examples/autograd_check.py

Builds the net with lit_reg's DenseRegressor, sets the lecture's weights, computes the MSE loss of the point
(x, y) = (1, 3) and back-propagates, then takes one ``torch.optim.SGD`` step (lr 0.1) and calls ``backward()``
five times more without ``zero_grad`` between them, to show that gradients add up. Prints each result with 4
decimals next to lecture 000's number, and writes the gradients to ``<out>/gradients.json`` and the step and the
accumulated gradients to ``<out>/sgd_step.json``. (No training here, so no Trainer: this checks the model's
forward pass, its loss and autograd.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

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
#: the lecture's weights after one SGD step with lr 0.1 from :data:`WEIGHTS`
LEARNING_RATE = 0.1
LECTURE_AFTER_STEP = {
    "net.2.bias": [-0.6686],
    "net.2.weight": [1.2919, 2.2423],
    "net.0.bias": [1.0348, 2.1303],
    "net.0.weight": [1.0348, -0.8697],
}
#: the hidden weight's gradient after the k-th of 5 ``backward()`` calls (no ``zero_grad`` between them) at the
#: stepped weights, as the lecture quotes them (the first and the last; the k-th is k times the first)
ACCUMULATE_CALLS = 5
LECTURE_ACCUMULATED = {1: [-0.1991, -0.5976], 5: [-0.9957, -2.9882]}
NAMES = {"net.0.weight": "w_hidden", "net.0.bias": "b_hidden", "net.2.weight": "w_out", "net.2.bias": "b_out"}


def four_decimals(values: Sequence[float]) -> str:
    """``values`` as the lecture prints them: ``[-0.3480, -1.3032]``.

    Example:
        >>> four_decimals([-0.348, 2.0])
        '[-0.3480, 2.0000]'
    """
    return "[" + ", ".join(f"{value:.4f}" for value in values) + "]"


def lecture_net() -> DenseRegressor:
    """The 1-2-1 sigmoid net with the lecture's weights."""
    model = DenseRegressor(input_size=1, output_size=1, hidden_sizes=[2], activation="sigmoid")
    model.load_state_dict({name: torch.tensor(value) for name, value in WEIGHTS.items()})
    return model


def point_loss(model: DenseRegressor) -> torch.Tensor:
    """The model's MSE loss at the lecture's point (x, y) = (1, 3)."""
    return model.compute_loss(model(torch.tensor([[1.0]])), torch.tensor([[3.0]]))


def rounded(tensor: torch.Tensor) -> list[float]:
    return [round(value, 4) for value in tensor.flatten().tolist()]


def check() -> dict[str, Any]:
    """Gradients at the lecture's weights, the weights after one SGD step, and the hidden weight's gradient
    accumulated over :data:`ACCUMULATE_CALLS` ``backward()`` calls at the new weights, rounded to 4 decimals."""
    model = lecture_net()
    point_loss(model).backward()
    gradients = {name: rounded(p.grad) for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    optimizer.step()
    after_step = {name: rounded(p.detach()) for name, p in model.named_parameters()}
    optimizer.zero_grad()
    accumulated = []
    for _ in range(ACCUMULATE_CALLS):
        point_loss(model).backward()  # adds to .grad: nothing zeroes it between the calls
        accumulated.append(rounded(model.get_parameter("net.0.weight").grad))
    return {"gradients": gradients, "after_step": after_step, "accumulated": accumulated}


def comparison(name: str, torch_values: Sequence[float], lecture: Sequence[float] | None) -> dict[str, Any]:
    printed = four_decimals(torch_values)
    return {name: "", "torch": printed, "lecture": "" if lecture is None else four_decimals(lecture),
            "match": "" if lecture is None else printed == four_decimals(lecture)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = example_parser(__doc__.splitlines()[0]).parse_args(argv)
    result = check()
    out = output_dir(args.out, "autograd_check")
    (out / "gradients.json").write_text(json.dumps(result["gradients"], indent=2))
    (out / "sgd_step.json").write_text(json.dumps({"lr": LEARNING_RATE, "after_step": result["after_step"],
                                                   "accumulated_w_hidden_grad": result["accumulated"]}, indent=2))
    print("Gradients of the MSE loss at (x, y) = (1, 3):")
    print_table([{**comparison("parameter", result["gradients"][name], expected), "parameter": NAMES[name]}
                 for name, expected in LECTURE_GRADIENTS.items()])
    print(f"\nWeights after one SGD step (lr {LEARNING_RATE}):")
    print_table([{**comparison("parameter", result["after_step"][name], expected), "parameter": NAMES[name]}
                 for name, expected in LECTURE_AFTER_STEP.items()])
    print(f"\nw_hidden.grad after each of {ACCUMULATE_CALLS} backward() calls without zero_grad (they add up):")
    print_table([{**comparison("call", values, LECTURE_ACCUMULATED.get(call)), "call": call}
                 for call, values in enumerate(result["accumulated"], start=1)])
    return result


if __name__ == "__main__":
    main()
