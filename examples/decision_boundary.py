"""Decision boundaries on the two moons: activation and depth (lecture 001), then regularization (lecture 003).

    python examples/decision_boundary.py

Lecture 001: dense nets of width 10 with 1 to 4 hidden layers, ReLU vs tanh, fit 100 noisy moons
(``make_moons(100, noise=0.25)``-like, :class:`~datamodules.toy_classification.ToyClassificationDataModule`).
ReLU boundaries are piecewise straight, tanh ones curved; depth bends them more. Writes ``activation_depth.png``.

Lecture 003: a wide three-layer ReLU net trained long (full batch, Adam) on the same points without a penalty,
with an L2 penalty on the weights (``l2_penalty=1e-2``) and with dropout 0.3. The unregularized boundary wraps
around single noisy points; the L2 penalty straightens it and softens the probabilities around it. Dropout (with
one full batch per epoch) keeps most of the bends here: both measures stay close to the unregularized net's.
Writes ``regularization.png`` and ``smoothness.png``: per variant the length of the boundary (the 0.5 contour of
P(class 1), in input units) and the mean gradient norm ‖∇P(class 1)‖ over the plot's grid; lower is smoother.

Every run uses :class:`~lit_reg.callbacks.DecisionBoundary` (its PNG is in the run's folder too) and prints its
training and validation accuracy (validation: 100 fresh points of the same moons).
"""

from __future__ import annotations

import argparse

import pytorch_lightning as pl
import torch
from _common import example_parser, output_dir, print_table, save_figure
from matplotlib.figure import Figure

from datamodules.toy_classification import ToyClassificationDataModule
from lit_reg import DenseClassifier, default_logger
from lit_reg.callbacks.decision_boundary import DecisionBoundary

ACTIVATIONS = ("relu", "tanh")
DEPTHS = (1, 2, 3, 4)
WIDTH = 10
#: lecture 003's variants: the model's arguments on top of the wide net's
REGULARIZERS = {
    "no penalty": {},
    "L2 penalty 1e-2": {"l2_penalty": 1e-2},
    "dropout 0.3": {"dropout": 0.3},
}
WIDE = [100, 100, 100]


def accuracy(model: DenseClassifier, data: ToyClassificationDataModule, split: str) -> float:
    dataset = data.datasets[split]
    model.eval()
    with torch.no_grad():
        predicted = model(data.transform_inputs(dataset.inputs)).argmax(dim=1)
    return float((predicted == dataset.targets).float().mean())


def train(name: str, epochs: int, resolution: int, out: str, seed: int, **model_kwargs) -> dict:
    """Fit one DenseClassifier on the moons; its boundary, the accuracies and the smoothness measures."""
    pl.seed_everything(seed, verbose=False)
    data = ToyClassificationDataModule("moons", batch_size=100, seed=seed)
    model = DenseClassifier(input_size=2, num_classes=2, lr=0.01, **model_kwargs)
    boundary = DecisionBoundary(resolution=resolution)
    trainer = pl.Trainer(max_epochs=epochs, logger=default_logger(name, save_dir=out), callbacks=[boundary],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         check_val_every_n_epoch=max(epochs // 10, 1), log_every_n_steps=1, deterministic=True,
                         accelerator="cpu", devices=1)
    trainer.fit(model, datamodule=data)
    return {"boundary": boundary, "train acc": accuracy(model, data, "train"), "val acc": accuracy(model, data, "val"),
            "boundary length": boundary.boundary.contour_length(),
            "mean |grad p|": boundary.boundary.mean_gradient_norm()}


def grid_figure(runs: dict[str, dict], columns: int, title: str) -> Figure:
    rows = -(-len(runs) // columns)
    figure = Figure(figsize=(3.6 * columns, 3.2 * rows))
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, (label, run) in zip(panels, runs.items(), strict=False):
        run["boundary"].draw(axes, title=f"{label}\ntrain acc {run['train acc']:.2f}, val acc {run['val acc']:.2f}",
                             colorbar=False, legend=False)
        axes.title.set_fontsize("medium")
    for axes in panels[len(runs):]:
        axes.set_axis_off()
    figure.suptitle(title)
    return figure


def smoothness_figure(runs: dict[str, dict], epochs: int) -> Figure:
    figure = Figure(figsize=(9.6, 4.0))
    labels = list(runs)
    for axes, key, ylabel in zip(figure.subplots(1, 2), ("boundary length", "mean |grad p|"),
                                 ("length of the P = 0.5 contour (input units)",
                                  "mean ‖∇P(class 1)‖ (per input unit)"), strict=True):
        axes.bar(labels, [runs[label][key] for label in labels], color=["tab:gray", "tab:blue", "tab:orange"])
        axes.set(ylabel=ylabel, title=f"{key} (lower is smoother)")
        axes.tick_params(axis="x", labelsize="small")
    figure.suptitle(f"Smoothness of the boundary after {epochs} epochs, hidden {WIDE}, ReLU")
    return figure


def main(argv: list[str] | None = None) -> list[dict[str, float | str]]:
    parser = example_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000, help="epochs of each activation/depth run")
    parser.add_argument("--reg-epochs", type=int, default=2000, help="epochs of each regularization run")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: these tiny nets train fastest on one, more only contend)")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)  # a caller (the tests) gets its threads back


def run(args: argparse.Namespace) -> list[dict[str, float | str]]:
    epochs, reg_epochs = (60, 60) if args.fast else (args.epochs, args.reg_epochs)
    resolution = 60 if args.fast else 200
    out = output_dir(args.out, "decision_boundary")
    rows, depth_runs, reg_runs = [], {}, {}
    for activation in ACTIVATIONS:
        for depth in DEPTHS:
            label = f"{activation}, {depth} hidden layer{'s' * (depth > 1)}"
            depth_runs[label] = train(f"{activation}_depth_{depth}", epochs, resolution, str(out), args.seed,
                                      hidden_sizes=[WIDTH] * depth, activation=activation)
            rows.append({"experiment": "activation/depth", "configuration": label,
                         **{k: v for k, v in depth_runs[label].items() if k != "boundary"}})
    for label, kwargs in REGULARIZERS.items():
        name = label.replace(" ", "_")
        reg_runs[label] = train(name, reg_epochs, resolution, str(out), args.seed, hidden_sizes=WIDE, **kwargs)
        rows.append({"experiment": "regularization", "configuration": label,
                     **{k: v for k, v in reg_runs[label].items() if k != "boundary"}})
    print_table(rows)
    save_figure(grid_figure(depth_runs, len(DEPTHS), f"Two moons: ReLU vs tanh, width {WIDTH}, after {epochs} epochs "
                                                     "(P(class 1), boundary at 0.5)"), out / "activation_depth.png")
    save_figure(grid_figure(reg_runs, len(REGULARIZERS), f"Two moons: hidden {WIDE}, ReLU, after {reg_epochs} "
                                                         "epochs"), out / "regularization.png")
    save_figure(smoothness_figure(reg_runs, reg_epochs), out / "smoothness.png")
    return rows


if __name__ == "__main__":
    main()
