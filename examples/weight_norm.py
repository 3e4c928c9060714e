"""Weight norm and over-fitting: an over-parameterized net memorizes 10 noisy points, its weights grow.

    python examples/weight_norm.py

The lectures' 1-300-500-1 LeakyReLU net (Adam, lr 1e-4) trains on the linear toy set (10 points of
y = 2x + noise): the training loss falls toward 0, the loss on the clean line rises, and the total Frobenius
norm of the weights grows. The same run with weight decay keeps the norm lower. Writes ``weight_norm.png``:
both runs' total norm and losses per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
from _common import example_parser, output_dir, print_table, save_figure
from matplotlib.figure import Figure
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from datamodules import ToyRegressionDataModule
from lit_reg import DenseRegressor, default_callbacks, default_logger
from lit_reg.callbacks import LearningCurves, WeightNormMonitor

WEIGHT_DECAY = 0.1


def train(weight_decay: float, epochs: int, out: str, extra_callbacks: Sequence[Callback] = ()
          ) -> tuple[pl.Trainer, LearningCurves, WeightNormMonitor]:
    pl.seed_everything(2021)
    model = DenseRegressor(input_size=1, output_size=1, hidden_sizes=[300, 500], activation="leaky_relu",
                           lr=1e-4, weight_decay=weight_decay)
    data = ToyRegressionDataModule("linear", batch_size=10)
    # thousands of one-step epochs: no checkpoint every epoch, validation every 10th
    callbacks = [*(c for c in default_callbacks(early_stopping=False) if not isinstance(c, ModelCheckpoint)),
                 *extra_callbacks]
    trainer = pl.Trainer(max_epochs=epochs, logger=default_logger(f"weight_decay_{weight_decay}", save_dir=out),
                         callbacks=callbacks, enable_checkpointing=False, check_val_every_n_epoch=10,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
                         deterministic=True)
    trainer.fit(model, datamodule=data)
    curves = next(c for c in callbacks if isinstance(c, LearningCurves))
    norms = next(c for c in callbacks if isinstance(c, WeightNormMonitor))
    return trainer, curves, norms


def plot(runs: dict[str, tuple[LearningCurves, WeightNormMonitor]]) -> Figure:
    figure = Figure(figsize=(12, 4))
    norm_axes, train_axes, val_axes = figure.subplots(1, 3)
    for label, (curves, norms) in runs.items():
        norm_axes.plot(*zip(*norms.history, strict=True), label=label)
        epochs = sorted(curves.history)
        train_axes.plot(epochs, [curves.history[e]["train_loss"] for e in epochs], label=label)
        validated = [e for e in epochs if "val_loss" in curves.history[e]]
        val_axes.plot(validated, [curves.history[e]["val_loss"] for e in validated], label=label)
    norm_axes.set(xlabel="epoch", ylabel="total Frobenius norm", title="weight norm")
    train_axes.set(xlabel="epoch", ylabel="MSE", title="training loss", yscale="log")
    val_axes.set(xlabel="epoch", ylabel="MSE", title="loss on the clean line (validation)")
    for axes in (norm_axes, train_axes, val_axes):
        axes.legend()
    return figure


def main(argv: list[str] | None = None) -> list[dict[str, float | str]]:
    parser = example_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3000)
    args = parser.parse_args(argv)
    epochs = 30 if args.fast else args.epochs
    out = output_dir(args.out, "weight_norm")
    rows, runs = [], {}
    for weight_decay in (0.0, WEIGHT_DECAY):
        label = "no weight decay" if weight_decay == 0 else f"weight decay {weight_decay}"
        _, curves, norms = train(weight_decay, epochs, str(out))
        runs[label] = (curves, norms)
        val = [values["val_loss"] for _, values in sorted(curves.history.items()) if "val_loss" in values]
        train_losses = [values["train_loss"] for _, values in sorted(curves.history.items())]
        rows.append({"run": label, "norm at start": norms.history[0][1], "norm at end": norms.history[-1][1],
                     "train loss at start": train_losses[0], "train loss at end": train_losses[-1],
                     "val loss (best)": min(val), "val loss at end": val[-1]})
    print_table(rows)
    save_figure(plot(runs), out / "weight_norm.png")
    return rows


if __name__ == "__main__":
    main()
