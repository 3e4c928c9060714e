"""Early stopping on lecture 000's toy quadratic: Lightning's patience rule beside the lecture's consecutive rule.

    python examples/early_stopping.py [--seed 2021] [--max-epochs 201]

A 1-6-1 sigmoid net (Adam, lr 0.05, batch 1) fits lecture 000's 40 noisy points of y = x² (``dataset="lecture000"``)
for up to 201 epochs, validated on the clean curve at x = -3..2. It is fitted twice from the same seed, so both
fits follow the same trajectory until the first one stops:

- ``patience``: Lightning's rule, stop after 3 validation checks without a new best ``val_loss``;
- ``consecutive_increase``: the lecture's rule, stop after ``val_loss`` rose 3 epochs in a row (the lecture
  stopped at epoch 37; its init and batch order were other draws, so expect another epoch here).

A rise is never a new best, so the consecutive rule never stops before the patience rule. Prints one row per rule
and writes ``early_stopping.png``: the losses of the longer fit, its best epoch and both stop epochs marked.
"""

from __future__ import annotations

import pytorch_lightning as pl
from _common import example_parser, output_dir, print_table, save_figure
from matplotlib.figure import Figure

from datamodules import ToyRegressionDataModule
from lit_reg import DenseRegressor, default_callbacks, default_logger
from lit_reg.callbacks import LearningCurves

MAX_EPOCHS = 201
SEED = 2021
PATIENCE = 3
RULES = ("patience", "consecutive_increase")
#: the epoch at which lecture 000's consecutive rule stopped its fit (patience 3, 201 epochs at most)
LECTURE_STOP = {"consecutive_increase": 37}


def plot(curves: LearningCurves, stops: dict[str, int | None]) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    epochs = sorted(curves.history)
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        axes.plot(epochs, [curves.history[e].get(key) for e in epochs], marker=".", label=label)
    axes.axvline(curves.best_epoch, color="grey", linestyle="--", label=f"best epoch {curves.best_epoch}")
    for (rule, stop), style in zip(stops.items(), (":", "-."), strict=True):
        if stop is not None:
            axes.axvline(stop, color="red", linestyle=style, label=f"{rule} stops at epoch {stop}")
    axes.set(xlabel="epoch", ylabel="MSE", title=f"Early stopping (patience {PATIENCE})")
    axes.legend()
    return figure


def fit(rule: str, seed: int, max_epochs: int, out: str) -> tuple[pl.Trainer, LearningCurves]:
    """One fit of the lecture's net on the lecture's data, early-stopped by ``rule``."""
    pl.seed_everything(seed)
    model = DenseRegressor(input_size=1, output_size=1, hidden_sizes=[6], activation="sigmoid", lr=0.05)
    data = ToyRegressionDataModule("lecture000", batch_size=1, seed=seed)
    callbacks = default_callbacks(patience=PATIENCE, rule=rule)
    trainer = pl.Trainer(max_epochs=max_epochs, logger=default_logger(f"early_stopping_{rule}", save_dir=out),
                         callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=1, deterministic=True)
    trainer.fit(model, datamodule=data)
    return trainer, next(c for c in callbacks if isinstance(c, LearningCurves))


def main(argv: list[str] | None = None) -> list[dict[str, int | float | str]]:
    parser = example_parser(__doc__.splitlines()[0])  # --fast: the runs are already small
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the init and of the batch order")
    parser.add_argument("--max-epochs", type=int, default=MAX_EPOCHS, help="epoch budget of each fit")
    args = parser.parse_args(argv)
    out = output_dir(args.out, "early_stopping")

    rows, longest = [], None
    for rule in RULES:
        trainer, curves = fit(rule, args.seed, args.max_epochs, str(out))
        stopped = trainer.early_stopping_callback.stopped_epoch  # Lightning's 0: not stopped
        rows.append({"rule": rule, "epochs run": trainer.current_epoch, "stopped at epoch": stopped or "-",
                     "best epoch": curves.best_epoch,
                     "best val_loss": curves.best_score, "lecture stop": LECTURE_STOP.get(rule, "-"),
                     "max epochs": args.max_epochs, "seed": args.seed})
        if longest is None or len(curves.history) > len(longest.history):
            longest = curves
    print_table(rows)
    stops = {row["rule"]: row["stopped at epoch"] if row["stopped at epoch"] != "-" else None for row in rows}
    save_figure(plot(longest, stops), out / "early_stopping.png")
    return rows


if __name__ == "__main__":
    main()
