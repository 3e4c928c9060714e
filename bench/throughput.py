"""Throughput of one training epoch: lit_reg's ``Trainer.fit`` vs a hand-written loop vs the lecture's pipeline.

Writes FashionMNIST-format IDX files (60,000 train / 10,000 test images; ``--quick``: a few hundred) to a
temporary folder and, in one process, alternating the pipelines and repeating the rounds, measures the
samples/s of one training epoch (54,000 images after the 10 % validation split) and of one validation pass
(the 6,000 held-out images) for:

(a) ``ours``: ``Trainer.fit`` exactly as a user calls it: ``DenseClassifier`` 784-512-512-10 with RMSprop,
    ``FashionMNISTDataModule``, ``default_logger`` (TensorBoard, into a temporary folder),
    ``default_callbacks()`` (EarlyStopping + ModelCheckpoint: checkpoints are written), progress bar on;
(b) ``hand``: a hand-written PyTorch loop: the same net, plain ``torch.optim.RMSprop``, whole batches indexed
    from the same in-memory uint8 tensors and normalized on the batch;
(c) ``lecture``: torchvision's ``FashionMNIST`` with per-sample ``ToTensor`` + ``Normalize`` through a
    ``DataLoader`` into a LightningModule that logs loss and accuracy every step (Lightning's default
    logger and checkpointing, progress bar on);
(d) ``lightning``: Lightning's floor: a plain LightningModule (the same net and RMSprop, nothing logged) on
    ``FashionMNISTDataModule`` with no logger, callbacks, checkpoints, progress bar or model summary. What
    any ``Trainer.fit`` pays per step over (b); (a) adds our logging, callbacks, checkpoints and bar to it.

With ``--step-curves`` a fifth pipeline, ``ours_step_curves``, runs (a) with
:class:`~lit_reg.callbacks.step_curves.StepCurves` ``(every_n_steps=50)`` added, in the same rounds; a line
under the table gives its training samples/s against (a)'s and their ratio (1.00x: no cost). The table itself
is unchanged.

How an epoch is timed (the same for (a), (c) and (d)): a callback takes the time from ``on_train_epoch_start`` to
``on_train_epoch_end`` and subtracts the validation loop (``on_validation_start`` to ``on_validation_end``);
the callback runs after the checkpoint callbacks, so the epoch-end checkpoint writes are inside the window.
Trainer construction, setup, the sanity check and the model summary are outside it, while every per-step
and per-epoch cost a user pays (logging, progress bar, checkpoint writing, logger flushes) is inside. The
validation loop's own time gives the validation samples/s. (b) is timed around its loops.

Ratios are taken between medians of the same process, so they hold across machines of different speed;
absolute samples/s do not. torch runs one intra-op thread by default (``--threads``): with several OpenMP
threads on a machine shared with other jobs an op waits for its slowest, descheduled thread and timings
swing by an order of magnitude. One thread makes each step's compute longer, so Lightning's fixed per-step
cost weighs less than it would with all cores of an idle machine. The peak RSS of a lone (a) fit is measured
in a child process.

Usage::

    python bench/throughput.py                  # full run, 3 rounds, batch 64 and 256 (several minutes)
    python bench/throughput.py --quick          # a few hundred samples: checks that everything runs
    python bench/throughput.py --json out.json  # also write the numbers
    python bench/throughput.py --step-curves    # also (a) with StepCurves(every_n_steps=50), its ratio to (a)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchmetrics
import torchvision
from pytorch_lightning.callbacks import Callback, Checkpoint
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from datamodules import FashionMNISTDataModule
from datamodules.base import split_indices
from datamodules.fakes import write_fashion_mnist
from lit_reg import DenseClassifier, default_callbacks, default_logger
from lit_reg.callbacks.step_curves import StepCurves
from lit_reg.models.dense import build_dense_stack

PIPELINES = ("ours", "hand", "lecture", "lightning")
LABELS = {"ours": "(a) lit_reg fit", "hand": "(b) hand loop", "lecture": "(c) lecture",
          "lightning": "(d) bare Lightning", "ours_step_curves": "(a) + StepCurves"}
#: ``--step-curves``: (a) with ``StepCurves(every_n_steps=STEP_CURVES_EVERY)``, compared with (a) in the same rounds
STEP_CURVES_PIPELINE = "ours_step_curves"
STEP_CURVES_EVERY = 50
#: the ratios reported (of training samples/s): a/b and a/c are the issue's targets, d/b is Lightning's floor
RATIOS = (("ours", "hand"), ("ours", "lecture"), ("lightning", "hand"))
BATCH_SIZES = (64, 256)
HIDDEN = (512, 512)
LR = 1e-3
FULL = {"num_train": 60_000, "num_test": 10_000}
QUICK = {"num_train": 400, "num_test": 100}
VAL_FRACTION = 0.1
SEED = 42


class EpochTimer(Checkpoint):
    """Seconds of the training epoch (validation excluded) and of the validation loop inside it.

    A ``Checkpoint`` only so that Lightning runs its hooks after the checkpoint callbacks' (it moves them last),
    which write their files in ``on_train_epoch_end``: the writes are timed as part of the epoch.
    """

    def __init__(self) -> None:
        self.train_s = 0.0
        self.val_s = 0.0
        self._start = 0.0
        self._val_start: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_start is not None:
            self.val_s += time.perf_counter() - self._val_start
            self._val_start = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.train_s = time.perf_counter() - self._start - self.val_s


def _trainer(workdir: str, accelerator: str, logger: Any, callbacks: list[Callback]) -> pl.Trainer:
    """The Trainer (a) and (c) share: one epoch, progress bar, summary and sanity check at their defaults."""
    return pl.Trainer(max_epochs=1, accelerator=accelerator, devices=1, logger=logger, callbacks=callbacks,
                      default_root_dir=workdir)


def _timed_fit(model: pl.LightningModule, trainer: pl.Trainer, timer: EpochTimer, num_train: int, num_val: int,
               **fit_kwargs: Any) -> dict[str, float]:
    trainer.fit(model, **fit_kwargs)
    return {"train": num_train / timer.train_s, "val": num_val / timer.val_s}


def _datamodule(data_dir: str, batch_size: int = 64) -> FashionMNISTDataModule:
    """The datamodule every pipeline takes its split, statistics or tensors from, set up."""
    dm = FashionMNISTDataModule(data_dir, batch_size=batch_size, val_fraction=VAL_FRACTION, seed=SEED,
                                download=False)
    dm.setup()
    return dm


def _timed_fit_on(dm: FashionMNISTDataModule, model: pl.LightningModule, trainer: pl.Trainer,
                  timer: EpochTimer) -> dict[str, float]:
    return _timed_fit(model, trainer, timer, len(dm.datasets["train"]), len(dm.datasets["val"]), datamodule=dm)


# -- (a) lit_reg, as a user calls it ---------------------------------------------------------------------
def run_ours(data_dir: str, workdir: str, batch_size: int, accelerator: str,
             extra_callbacks: tuple[Callback, ...] = ()) -> dict[str, float]:
    dm = _datamodule(data_dir, batch_size)
    model = DenseClassifier(input_size=dm.input_size, num_classes=dm.num_classes, hidden_sizes=HIDDEN,
                            optimizer="rmsprop", lr=LR)
    timer = EpochTimer()
    trainer = _trainer(workdir, accelerator, default_logger("DenseClassifier", save_dir=workdir),
                       [*default_callbacks(), *extra_callbacks, timer])
    return _timed_fit_on(dm, model, trainer, timer)


def run_ours_step_curves(data_dir: str, workdir: str, batch_size: int, accelerator: str) -> dict[str, float]:
    """(a) with ``StepCurves(every_n_steps=50)``: the batch loss and accuracy logged every 50 steps."""
    return run_ours(data_dir, workdir, batch_size, accelerator, (StepCurves(every_n_steps=STEP_CURVES_EVERY),))


# -- (b) the hand-written loop ---------------------------------------------------------------------------
def run_hand(data_dir: str, workdir: str, batch_size: int, accelerator: str) -> dict[str, float]:
    dm = _datamodule(data_dir)
    device = torch.device("cuda" if accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())
                          else "cpu")
    (x_train, y_train), (x_val, y_val) = (
        (t.to(device) for t in (dm.datasets[s].inputs, dm.datasets[s].targets)) for s in ("train", "val"))
    mean, std = dm.mean.to(device), dm.std.to(device)
    net = build_dense_stack(dm.input_size, HIDDEN, dm.num_classes, "relu", 0.0, False).to(device)
    optimizer = torch.optim.RMSprop(net.parameters(), lr=LR)

    def batch(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return ((x[index].float() / 255.0 - mean) / std).flatten(1)

    start = time.perf_counter()
    net.train()
    order = torch.randperm(len(x_train), device=device)
    for index in order.split(batch_size):
        loss = F.cross_entropy(net(batch(x_train, index)), y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _sync(device)
    train_s = time.perf_counter() - start

    start = time.perf_counter()
    net.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    with torch.inference_mode():
        for index in torch.arange(len(x_val), device=device).split(batch_size):
            outputs, target = net(batch(x_val, index)), y_val[index]
            loss_sum += F.cross_entropy(outputs, target, reduction="sum")
            correct += (outputs.argmax(1) == target).sum()
    _ = loss_sum.item() / len(x_val), correct.item() / len(x_val)
    val_s = time.perf_counter() - start
    return {"train": len(x_train) / train_s, "val": len(x_val) / val_s}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- (c) the lecture's pipeline --------------------------------------------------------------------------
class LectureModule(pl.LightningModule):
    """The lectures' LightningModule: loss and accuracy logged at every step (``self.log`` defaults)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                                   nn.Linear(512, 10))
        self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.train_acc(logits, y)
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_acc", self.train_acc, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_acc(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", self.val_acc, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(self.parameters(), lr=LR)


def lecture_datasets(data_dir: str, mean: float, std: float) -> tuple[Subset, Subset]:
    """torchvision's FashionMNIST with per-sample ToTensor + Normalize, split like the datamodule."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    full = FashionMNIST(data_dir, train=True, transform=transform, download=False)
    train_idx, val_idx = split_indices(len(full), VAL_FRACTION, SEED)
    return Subset(full, train_idx.tolist()), Subset(full, val_idx.tolist())


def run_lecture(data_dir: str, workdir: str, batch_size: int, accelerator: str) -> dict[str, float]:
    dm = _datamodule(data_dir)
    train, val = lecture_datasets(data_dir, dm.mean.item(), dm.std.item())
    timer = EpochTimer()
    trainer = _trainer(workdir, accelerator, TensorBoardLogger(workdir, name="lecture"), [timer])
    return _timed_fit(LectureModule(), trainer, timer, len(train), len(val),
                      train_dataloaders=DataLoader(train, batch_size=batch_size, shuffle=True),
                      val_dataloaders=DataLoader(val, batch_size=batch_size))


# -- (d) Lightning's floor -------------------------------------------------------------------------------
class PlainModule(pl.LightningModule):
    """Vanilla Lightning: the same net and optimizer as (a) and (b), nothing logged, no metrics."""

    def __init__(self, input_size: int, num_classes: int) -> None:
        super().__init__()
        self.net = build_dense_stack(input_size, HIDDEN, num_classes, "relu", 0.0, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(self.parameters(), lr=LR)


def run_lightning(data_dir: str, workdir: str, batch_size: int, accelerator: str) -> dict[str, float]:
    dm = _datamodule(data_dir, batch_size)
    timer = EpochTimer()
    # the timer is a Checkpoint, so Lightning adds no ModelCheckpoint of its own: nothing is written
    trainer = pl.Trainer(max_epochs=1, accelerator=accelerator, devices=1, logger=False, callbacks=[timer],
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=workdir)
    return _timed_fit_on(dm, PlainModule(dm.input_size, dm.num_classes), trainer, timer)


RUNNERS: dict[str, Callable[..., dict[str, float]]] = {
    "ours": run_ours, "hand": run_hand, "lecture": run_lecture, "lightning": run_lightning,
    STEP_CURVES_PIPELINE: run_ours_step_curves}


# -- driver ----------------------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    """Peak resident set size of this process, MiB.

    Linux: ``VmHWM`` of ``/proc/self/status`` (``ru_maxrss`` would carry over the parent's peak into a
    child started by fork + exec). Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    with contextlib.suppress(OSError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def run_once(pipeline: str, data_dir: str, batch_size: int, accelerator: str, quiet: bool) -> dict[str, float]:
    torch.manual_seed(SEED)
    with tempfile.TemporaryDirectory(prefix="lit_reg_bench_") as workdir:
        output = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
        with output:
            return RUNNERS[pipeline](data_dir, workdir, batch_size, accelerator)


def measure(data_dir: str, rounds: int, batch_sizes: tuple[int, ...], accelerator: str,
            quiet: bool, pipelines: tuple[str, ...] = PIPELINES) -> dict[str, dict[str, list[dict[str, float]]]]:
    """``{batch: {pipeline: [per-round results]}}``; each round runs every pipeline, in a rotated order."""
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        str(b): {p: [] for p in pipelines} for b in batch_sizes}
    for r in range(rounds):
        order = pipelines[r % len(pipelines):] + pipelines[:r % len(pipelines)]
        for batch_size in batch_sizes:
            for pipeline in order:
                result = run_once(pipeline, data_dir, batch_size, accelerator, quiet)
                results[str(batch_size)][pipeline].append(result)
                print(f"round {r + 1}/{rounds} batch {batch_size:>4} {pipeline:<8} "
                      f"train {result['train']:>9.0f}/s  val {result['val']:>9.0f}/s", file=sys.stderr)
    return results


def summarize(raw: dict[str, dict[str, list[dict[str, float]]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for batch, per_pipeline in raw.items():
        row: dict[str, Any] = {}
        for pipeline, rounds in per_pipeline.items():
            row[pipeline] = {
                "train_samples_per_s": statistics.median(r["train"] for r in rounds),
                "val_samples_per_s": statistics.median(r["val"] for r in rounds),
                "train_rounds": [r["train"] for r in rounds],
                "val_rounds": [r["val"] for r in rounds],
            }
        ratios = RATIOS + (((STEP_CURVES_PIPELINE, "ours"),) if STEP_CURVES_PIPELINE in per_pipeline else ())
        for numerator, denominator in ratios:
            name = f"ratio_{numerator}_{denominator}"
            row[name] = row[numerator]["train_samples_per_s"] / row[denominator]["train_samples_per_s"]
            # ratios within each round, then their median: robust to the machine's speed drifting between rounds
            row[f"{name}_per_round_median"] = statistics.median(
                n["train"] / d["train"] for n, d in zip(per_pipeline[numerator], per_pipeline[denominator],
                                                        strict=True))
        summary[batch] = row
    return summary


def fit_peak_rss(data_dir: str, batch_size: int, accelerator: str) -> float:
    """Peak RSS (MiB) of a child process that imports everything and runs one (a) fit, nothing else."""
    command = [sys.executable, os.path.abspath(__file__), "--fit-only", data_dir, "--batch-sizes", str(batch_size),
               "--accelerator", accelerator]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=os.getcwd())
    return float(done.stdout.strip().splitlines()[-1])


def format_table(report: dict[str, Any]) -> str:
    cfg, versions = report["config"], report["versions"]
    lines = [
        f"lit_reg throughput: one epoch of {cfg['num_train_samples']} FashionMNIST-format samples "
        f"(validation: {cfg['num_val_samples']}), net 784-512-512-10, RMSprop lr {LR}; samples/s, median of "
        f"{cfg['rounds']} alternating rounds",
        f"torch {versions['torch']}, pytorch-lightning {versions['pytorch_lightning']}, torchmetrics "
        f"{versions['torchmetrics']}, torchvision {versions['torchvision']}, Python {versions['python']}; "
        f"device {report['machine']['device']}, {report['machine']['cpu_count']} CPU cores, "
        f"{report['machine']['torch_threads']} torch threads",
        "",
        "| batch | " + " | ".join(LABELS[p] for p in PIPELINES) + " | "
        + " | ".join(f"{LABELS[n][1]}/{LABELS[d][1]}" for n, d in RATIOS) + " | "
        + " | ".join(f"val {LABELS[p][:3]}" for p in PIPELINES) + " |",
        "|---:" * (1 + 2 * len(PIPELINES) + len(RATIOS)) + "|",
    ]
    for batch, row in report["results"].items():
        train = [f"{row[p]['train_samples_per_s']:.0f}" for p in PIPELINES]
        val = [f"{row[p]['val_samples_per_s']:.0f}" for p in PIPELINES]
        ratios = [f"{row[f'ratio_{n}_{d}']:.2f}x" for n, d in RATIOS]
        lines.append(f"| {batch} | {' | '.join(train)} | {' | '.join(ratios)} | {' | '.join(val)} |")
    for batch, row in report["results"].items():
        if STEP_CURVES_PIPELINE in row:
            lines.append(
                f"batch {batch}: (a) with StepCurves(every_n_steps={STEP_CURVES_EVERY}) "
                f"{row[STEP_CURVES_PIPELINE]['train_samples_per_s']:.0f} vs {row['ours']['train_samples_per_s']:.0f} "
                f"samples/s without: {row[f'ratio_{STEP_CURVES_PIPELINE}_ours']:.3f}x (per-round median "
                f"{row[f'ratio_{STEP_CURVES_PIPELINE}_ours_per_round_median']:.3f}x)")
    rss = report["peak_rss_mib"]
    lines += ["", f"peak RSS: {rss['ours_fit']:.0f} MiB for a lone (a) fit (batch {rss['ours_fit_batch_size']}), "
              f"{rss['benchmark_process']:.0f} MiB for this whole benchmark process"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few hundred samples instead of 60k/10k")
    parser.add_argument("--num-train", type=int, help="training images written (default 60000; --quick 400)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads for every pipeline (default 1: on a shared machine several "
                             "OpenMP threads per process make timings swing by an order of magnitude; 0: "
                             "torch's own choice)")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "auto"])
    parser.add_argument("--data-dir", help="use FashionMNIST files already here instead of writing fake ones")
    parser.add_argument("--verbose", action="store_true", help="let Lightning print its summaries")
    parser.add_argument("--step-curves", action="store_true",
                        help=f"also run (a) with StepCurves(every_n_steps={STEP_CURVES_EVERY}) in the same rounds and "
                             "print its training throughput relative to (a)")
    parser.add_argument("--fit-only", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.fit_only:
        run_once("ours", args.fit_only, args.batch_sizes[0], args.accelerator, quiet=True)
        print(peak_rss_mib())
        return {}
    sizes = dict(QUICK if args.quick else FULL)
    if args.num_train:
        sizes["num_train"] = args.num_train
    with tempfile.TemporaryDirectory(prefix="lit_reg_bench_data_") as tmp:
        data_dir = args.data_dir or tmp
        if not args.data_dir:
            write_fashion_mnist(data_dir, num_train=sizes["num_train"], num_test=sizes["num_test"], seed=SEED)
        pipelines = PIPELINES + ((STEP_CURVES_PIPELINE,) if args.step_curves else ())
        raw = measure(data_dir, args.rounds, tuple(args.batch_sizes), args.accelerator, quiet=not args.verbose,
                      pipelines=pipelines)
        fit_rss = fit_peak_rss(data_dir, args.batch_sizes[0], args.accelerator)
        num_images = len(FashionMNIST(data_dir, train=True, download=False))
    num_val = round(num_images * VAL_FRACTION)
    report = {
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "pytorch_lightning": pl.__version__, "torchmetrics": torchmetrics.__version__,
                     "torchvision": torchvision.__version__},
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "device": "cuda" if args.accelerator != "cpu" and torch.cuda.is_available() else "cpu",
                    "platform": platform.platform()},
        "config": {"quick": args.quick, "rounds": args.rounds, "batch_sizes": args.batch_sizes,
                   "num_train_samples": num_images - num_val, "num_val_samples": num_val,
                   "pipelines": list(pipelines)},
        "results": summarize(raw),
        "peak_rss_mib": {"ours_fit": fit_rss, "ours_fit_batch_size": args.batch_sizes[0],
                         "benchmark_process": peak_rss_mib()},
    }
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
