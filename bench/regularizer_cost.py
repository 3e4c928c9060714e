"""What each regularizer costs per training step, against the plain step, measured in one process.

The lecture's 784-512-512-10 ReLU net (Adam, batch 64 by default) trains one epoch of random FashionMNIST-shaped
inputs (``--steps`` batches, already standardized floats in memory, so only the step differs) through
``Trainer.fit`` for each option set below; rounds alternate the option sets and the median epoch time of each is
divided by the plain net's median of the same run. The epoch is timed by a callback from ``on_train_epoch_start``
to ``on_train_epoch_end``, so Trainer set-up is outside it. torch runs one thread (``--threads``), as in
``bench/throughput.py``.

Usage::

    python bench/regularizer_cost.py             # 5 rounds of 300 steps (about 3 minutes)
    python bench/regularizer_cost.py --quick     # 1 round of 10 steps: checks that everything runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_reg.callbacks import weight_averaging  # noqa: E402
from lit_reg.models import DenseClassifier  # noqa: E402

#: option sets, by row label: the model's arguments, and ``weight_averaging``: the name of a weight-averaging callback
#: (:func:`lit_reg.callbacks.weight_averaging`)
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "dropout 0.2 (bernoulli)": {"dropout": 0.2},
    "gaussian dropout 0.2": {"dropout": 0.2, "dropout_mode": "gaussian"},
    "dropconnect 0.2": {"dropout": 0.2, "dropout_mode": "dropconnect"},
    "batchnorm": {"batchnorm": True},
    "input noise 0.2": {"input_noise": 0.2},
    "max_norm 3": {"max_norm": 3.0},
    "l1 + l2 penalties": {"l1_penalty": 1e-5, "l2_penalty": 1e-4},
    "activity l1 + l2": {"activity_l1": 0.01, "activity_l2": 0.01},
    "orthogonal penalty": {"orthogonal_penalty": 1e-4},
    "mixup 0.2": {"mixup_alpha": 0.2},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "EMA of the weights (callback)": {"weight_averaging": "ema"},
    "SWA (callback, averaging from the start)": {"weight_averaging": "swa"},
    "heaviest: all of the above": {"weight_averaging": "ema", "dropout": 0.2, "dropout_mode": "dropconnect",
                                   "batchnorm": True,
                                   "input_noise": 0.2, "max_norm": 3.0, "l1_penalty": 1e-5, "l2_penalty": 1e-4,
                                   "activity_l1": 0.01, "activity_l2": 0.01, "orthogonal_penalty": 1e-4,
                                   "mixup_alpha": 0.2, "label_smoothing": 0.1},
}
HIDDEN = [512, 512]


class EpochTimer(pl.Callback):
    """Seconds from ``on_train_epoch_start`` to ``on_train_epoch_end`` of the last epoch."""

    def __init__(self) -> None:
        self.seconds = float("nan")
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds = time.perf_counter() - self._start


def epoch_seconds(options: dict[str, Any], loader: DataLoader) -> float:
    """One training epoch of the net with ``options``, timed by :class:`EpochTimer`."""
    torch.manual_seed(0)
    options = dict(options)
    averaging = options.pop("weight_averaging", None)
    extra = [] if averaging is None else [weight_averaging(averaging, **({"swa_epoch_start": 0}
                                                                          if averaging == "swa" else {}))]
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=HIDDEN, **options)
    timer = EpochTimer()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[*extra, timer],
                         limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(model, train_dataloaders=loader)
    return timer.seconds


def measure(steps: int, batch_size: int, rounds: int) -> dict[str, dict[str, float]]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(steps * batch_size, 784, generator=generator)
    targets = torch.randint(0, 10, (steps * batch_size,), generator=generator)
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=batch_size, shuffle=False)
    times: dict[str, list[float]] = {name: [] for name in OPTIONS}
    epoch_seconds({}, loader)  # warm-up
    for _ in range(rounds):
        for name, options in OPTIONS.items():
            times[name].append(epoch_seconds(options, loader))
    plain = statistics.median(times["plain"])
    return {name: {"ms_per_step": 1000 * statistics.median(values) / steps,
                   "vs_plain": statistics.median(values) / plain} for name, values in times.items()}


def format_table(results: dict[str, dict[str, float]], batch_size: int) -> str:
    lines = [f"| option (784-512-512-10, Adam, batch {batch_size}) | ms per step | × plain step |", "|---|---:|---:|"]
    lines += [f"| {name} | {r['ms_per_step']:.2f} | {r['vs_plain']:.2f} |" for name, r in results.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 10 steps")
    parser.add_argument("--steps", type=int, default=300, help="batches per timed epoch")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the median is reported")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps, rounds = (10, 1) if args.quick else (args.steps, args.rounds)
    results = measure(steps, args.batch_size, rounds)
    print(format_table(results, args.batch_size))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
