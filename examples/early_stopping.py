"""Early stopping on the lectures' toy quadratic: the validation loss turns up and EarlyStopping ends the run.

    python examples/early_stopping.py

A 1-6-1 sigmoid net (Adam, lr 0.05, batch 1) fits 40 noisy points of y = x² for up to 201 epochs; the
validation loss on the clean curve stops improving and EarlyStopping (patience 3) stops the run far earlier
(the lecture stopped at epoch 37). Writes ``early_stopping.png``: both loss curves, the best and the stop
epoch marked.
"""

from __future__ import annotations

import pytorch_lightning as pl
from _common import example_parser, output_dir, print_table, save_figure
from matplotlib.figure import Figure

from datamodules import ToyRegressionDataModule
from lit_reg import DenseRegressor, default_callbacks, default_logger
from lit_reg.callbacks import LearningCurves

MAX_EPOCHS = 201
LECTURE_STOP = 37


def plot(curves: LearningCurves, stopped_epoch: int) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    epochs = sorted(curves.history)
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        axes.plot(epochs, [curves.history[e].get(key) for e in epochs], marker=".", label=label)
    axes.axvline(curves.best_epoch, color="grey", linestyle="--", label=f"best epoch {curves.best_epoch}")
    axes.axvline(stopped_epoch, color="red", linestyle=":", label=f"stopped at epoch {stopped_epoch}")
    axes.set(xlabel="epoch", ylabel="MSE", title="Early stopping (patience 3)")
    axes.legend()
    return figure


def main(argv: list[str] | None = None) -> dict[str, int | float]:
    args = example_parser(__doc__.splitlines()[0]).parse_args(argv)  # --fast: the run is already small
    out = output_dir(args.out, "early_stopping")
    pl.seed_everything(2021)

    model = DenseRegressor(input_size=1, output_size=1, hidden_sizes=[6], activation="sigmoid", lr=0.05)
    data = ToyRegressionDataModule("quadratic", batch_size=1)
    callbacks = default_callbacks(patience=3)
    trainer = pl.Trainer(max_epochs=MAX_EPOCHS, logger=default_logger("early_stopping", save_dir=str(out)),
                         callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=1, deterministic=True)
    trainer.fit(model, datamodule=data)

    curves = next(c for c in callbacks if isinstance(c, LearningCurves))
    result = {"epochs run": trainer.current_epoch, "stopped at epoch": trainer.early_stopping_callback.stopped_epoch,
              "best epoch": curves.best_epoch, "best val_loss": curves.best_score, "lecture stop": LECTURE_STOP,
              "max epochs": MAX_EPOCHS}
    print_table([result])
    save_figure(plot(curves, result["stopped at epoch"]), out / "early_stopping.png")
    return result


if __name__ == "__main__":
    main()
