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

With ``--precision-rows``, in the same rounds and against the same (b):

(e) ``hand_bf16``: (b) with its training and validation loops under ``torch.autocast(device, dtype=torch.bfloat16)``;
(f) ``ours_bf16``: (a) with ``Trainer(precision="bf16-mixed")``;

and with ``--compile-rows`` (g) ``ours_compile``: (a) with ``DenseClassifier(compile=True)`` (``--compile-mode``:
torch.compile's mode, e.g. ``reduce-overhead`` for CUDA graphs on a GPU), fitted for two epochs: the second epoch is
timed (the first compiles; its time is reported as the warm-up). A second table gives (b), (e), (f), (g) and their
ratios to (b), and (f)/(a): what bf16 gains inside lit_reg.

With ``--time-to-accuracy``: seconds until the net first reaches ``--target-acc`` (0.88) validation accuracy, for
(f) ours in bf16 (``default_callbacks()``, validated every quarter epoch, ``val_check_interval``) against (b) the
fp32 hand loop validated after the same batches, at ``--tta-batch-size`` (64), at most ``--tta-max-epochs``
epochs, the median over the rounds (round r seeds both with 42 + r). The clock runs from the first training batch
(Lightning: ``on_train_start``, after setup and the sanity check) to the end of the validation that reaches the
target, validation included. Meant for the real data (``--data-dir /usr/share/datasets/fashion-mnist``);
``--quick`` uses a target of 0.3.

``--device-cache`` keeps the splits on the GPU (``FashionMNISTDataModule(device_cache=True)``) for (a), (d), (f), (g).

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
    python bench/throughput.py --precision-rows --compile-rows --time-to-accuracy \
        --data-dir /usr/share/datasets/fashion-mnist  # bf16 and compile rows, and time to 0.88 val accuracy
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
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
          "lightning": "(d) bare Lightning", "ours_step_curves": "(a) + StepCurves",
          "hand_bf16": "(e) hand loop bf16", "ours_bf16": "(f) lit_reg fit bf16",
          "ours_compile": "(g) lit_reg fit compiled"}
#: ``--precision-rows`` and ``--compile-rows``: the pipelines they add, and the ratios (of training samples/s) reported
PRECISION_PIPELINES = ("hand_bf16", "ours_bf16")
COMPILE_PIPELINE = "ours_compile"
EXTRA_RATIOS = (("hand_bf16", "hand"), ("ours_bf16", "hand"), ("ours_compile", "hand"), ("ours_bf16", "ours"),
                ("ours_compile", "ours"))
BF16 = "bf16-mixed"
#: ``--time-to-accuracy``: the validation accuracy to reach, validations per epoch, the most epochs tried
TARGET_ACC = 0.88
QUICK_TARGET_ACC = 0.3
TTA_VAL_PER_EPOCH = 4
TTA_MAX_EPOCHS = 20
QUICK_TTA_MAX_EPOCHS = 3
TTA_BATCH_SIZE = 64
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
    """Seconds of the last training epoch (validation excluded) and of the validation loop inside it.

    A ``Checkpoint`` only so that Lightning runs its hooks after the checkpoint callbacks' (it moves them last),
    which write their files in ``on_train_epoch_end``: the writes are timed as part of the epoch.
    ``first_train_s`` keeps the first epoch's training seconds (with ``compile``: the compilation's).
    """

    def __init__(self) -> None:
        self.train_s = 0.0
        self.val_s = 0.0
        self.first_train_s: float | None = None
        self._start = 0.0
        self._val_start: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.val_s = 0.0
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
        if self.first_train_s is None:
            self.first_train_s = self.train_s


def _trainer(workdir: str, accelerator: str, logger: Any, callbacks: list[Callback], **kwargs: Any) -> pl.Trainer:
    """The Trainer (a) and (c) share: one epoch, progress bar, summary and sanity check at their defaults."""
    return pl.Trainer(**{"max_epochs": 1, "accelerator": accelerator, "devices": 1, "logger": logger,
                         "callbacks": callbacks, "default_root_dir": workdir, **kwargs})


def _timed_fit(model: pl.LightningModule, trainer: pl.Trainer, timer: EpochTimer, num_train: int, num_val: int,
               **fit_kwargs: Any) -> dict[str, float]:
    trainer.fit(model, **fit_kwargs)
    result = {"train": num_train / timer.train_s, "val": num_val / timer.val_s}
    if trainer.max_epochs > 1:  # the timed epoch is the last; the first one's seconds are the warm-up
        result["first_epoch_s"], result["epoch_s"] = timer.first_train_s, timer.train_s
    return result


#: ``--device-cache``: the datamodules keep their splits on the GPU (a no-op on the CPU)
DEVICE_CACHE = False


def _datamodule(data_dir: str, batch_size: int = 64) -> FashionMNISTDataModule:
    """The datamodule every pipeline takes its split, statistics or tensors from, set up."""
    dm = FashionMNISTDataModule(data_dir, batch_size=batch_size, val_fraction=VAL_FRACTION, seed=SEED,
                                download=False, device_cache=DEVICE_CACHE)
    dm.setup()
    return dm


def _timed_fit_on(dm: FashionMNISTDataModule, model: pl.LightningModule, trainer: pl.Trainer,
                  timer: EpochTimer) -> dict[str, float]:
    return _timed_fit(model, trainer, timer, len(dm.datasets["train"]), len(dm.datasets["val"]), datamodule=dm)


# -- (a) lit_reg, as a user calls it ---------------------------------------------------------------------
def run_ours(data_dir: str, workdir: str, batch_size: int, accelerator: str,
             extra_callbacks: tuple[Callback, ...] = (), precision: str | None = None,
             model_kwargs: dict[str, Any] | None = None, max_epochs: int = 1) -> dict[str, float]:
    dm = _datamodule(data_dir, batch_size)
    model = DenseClassifier(input_size=dm.input_size, num_classes=dm.num_classes, hidden_sizes=HIDDEN,
                            optimizer="rmsprop", lr=LR, **(model_kwargs or {}))
    timer = EpochTimer()
    trainer = _trainer(workdir, accelerator, default_logger("DenseClassifier", save_dir=workdir),
                       [*default_callbacks(), *extra_callbacks, timer], precision=precision, max_epochs=max_epochs)
    return _timed_fit_on(dm, model, trainer, timer)


def run_ours_bf16(data_dir: str, workdir: str, batch_size: int, accelerator: str) -> dict[str, float]:
    """(f): (a) in bf16 mixed precision."""
    return run_ours(data_dir, workdir, batch_size, accelerator, precision=BF16)


#: ``--compile-mode``: torch.compile's mode for (g); None: torch's default
COMPILE_MODE: str | None = None


def run_ours_compile(data_dir: str, workdir: str, batch_size: int, accelerator: str) -> dict[str, float]:
    """(g): (a) with ``compile=True``, two epochs, the second one timed (the first one compiles)."""
    return run_ours(data_dir, workdir, batch_size, accelerator, max_epochs=2,
                    model_kwargs={"compile": True, "compile_mode": COMPILE_MODE})


def run_ours_step_curves(data_dir: str, workdir: str, batch_size: int, accelerator: str) -> dict[str, float]:
    """(a) with ``StepCurves(every_n_steps=50)``: the batch loss and accuracy logged every 50 steps."""
    return run_ours(data_dir, workdir, batch_size, accelerator, (StepCurves(every_n_steps=STEP_CURVES_EVERY),))


# -- (b) the hand-written loop ---------------------------------------------------------------------------
class HandLoop:
    """(b)'s net, optimizer and in-memory splits; ``bf16``: the steps under ``torch.autocast`` to bfloat16 (e)."""

    def __init__(self, data_dir: str, accelerator: str, bf16: bool = False) -> None:
        dm = _datamodule(data_dir)
        self.device = device = torch.device(
            "cuda" if accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available()) else "cpu")
        (self.x_train, self.y_train), (self.x_val, self.y_val) = (
            (t.to(device) for t in (dm.datasets[s].inputs, dm.datasets[s].targets)) for s in ("train", "val"))
        self.mean, self.std = dm.mean.to(device), dm.std.to(device)
        self.net = build_dense_stack(dm.input_size, HIDDEN, dm.num_classes, "relu", 0.0, False).to(device)
        self.optimizer = torch.optim.RMSprop(self.net.parameters(), lr=LR)
        self.bf16 = bf16

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    def batch(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return ((x[index].float() / 255.0 - self.mean) / self.std).flatten(1)

    def train_batches(self, batch_size: int) -> Iterator[None]:
        """One epoch of training steps in a random order; yields after each step."""
        self.net.train()
        order = torch.randperm(len(self.x_train), device=self.device)
        for index in order.split(batch_size):
            with self.autocast():
                loss = F.cross_entropy(self.net(self.batch(self.x_train, index)), self.y_train[index])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            yield

    def validate(self, batch_size: int) -> tuple[float, float]:
        """Mean loss and accuracy on the validation split."""
        self.net.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        with torch.inference_mode(), self.autocast():
            for index in torch.arange(len(self.x_val), device=self.device).split(batch_size):
                outputs, target = self.net(self.batch(self.x_val, index)), self.y_val[index]
                loss_sum += F.cross_entropy(outputs, target, reduction="sum")
                correct += (outputs.argmax(1) == target).sum()
        return loss_sum.item() / len(self.x_val), correct.item() / len(self.x_val)


def run_hand(data_dir: str, workdir: str, batch_size: int, accelerator: str, bf16: bool = False) -> dict[str, float]:
    loop = HandLoop(data_dir, accelerator, bf16)
    start = time.perf_counter()
    for _ in loop.train_batches(batch_size):
        pass
    _sync(loop.device)
    train_s = time.perf_counter() - start

    start = time.perf_counter()
    loop.validate(batch_size)
    val_s = time.perf_counter() - start
    return {"train": len(loop.x_train) / train_s, "val": len(loop.x_val) / val_s}


def run_hand_bf16(data_dir: str, workdir: str, batch_size: int, accelerator: str) -> dict[str, float]:
    """(e): (b) under ``torch.autocast(..., dtype=torch.bfloat16)``."""
    return run_hand(data_dir, workdir, batch_size, accelerator, bf16=True)


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


def torchvision_layout(data_dir: str, tmp: str) -> str:
    """``data_dir`` if torchvision's ``FashionMNIST`` finds its files there (``FashionMNIST/raw/``, unpacked), else
    ``tmp`` holding them unpacked in that layout: Debian's ``/usr/share/datasets/fashion-mnist`` has the four ``.gz``
    files side by side, which our datamodule reads but the lecture's pipeline (c) does not."""
    raw = Path(data_dir) / "FashionMNIST" / "raw"
    names = [f"{split}-{kind}" for split in ("train", "t10k") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
    if all((raw / name).is_file() for name in names):
        return data_dir
    target = Path(tmp) / "FashionMNIST" / "raw"
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        found = [p for p in (Path(data_dir) / name, Path(data_dir) / f"{name}.gz", raw / f"{name}.gz") if p.is_file()]
        if not found:
            raise SystemExit(f"--data-dir {data_dir}: no {name} (or .gz) there or in FashionMNIST/raw/")
        opener = gzip.open if found[0].suffix == ".gz" else open
        with opener(found[0], "rb") as source, open(target / name, "wb") as out:
            shutil.copyfileobj(source, out)
    return tmp


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
    STEP_CURVES_PIPELINE: run_ours_step_curves, "hand_bf16": run_hand_bf16, "ours_bf16": run_ours_bf16,
    COMPILE_PIPELINE: run_ours_compile}


# -- time to accuracy ------------------------------------------------------------------------------------
class TimeToAccuracy(Callback):
    """Seconds from ``on_train_start`` to the end of the first validation whose ``val_acc`` reaches ``target``;
    then stops the fit."""

    def __init__(self, target: float, batches_per_epoch: int) -> None:
        self.target = target
        self.batches_per_epoch = batches_per_epoch
        self.seconds: float | None = None
        self.epochs: float | None = None
        self.val_acc: float | None = None
        self._start = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.seconds is not None or "val_acc" not in trainer.callback_metrics:
            return
        self.val_acc = float(trainer.callback_metrics["val_acc"])
        self.epochs = trainer.global_step / self.batches_per_epoch
        if self.val_acc >= self.target:
            self.seconds = time.perf_counter() - self._start
            trainer.should_stop = True


def _tta_result(seconds: float | None, epochs: float | None, val_acc: float | None) -> dict[str, Any]:
    return {"seconds": seconds, "epochs": epochs, "val_acc": val_acc, "reached": seconds is not None}


def tta_ours_bf16(data_dir: str, workdir: str, batch_size: int, accelerator: str, target: float,
                  max_epochs: int, val_every: int) -> dict[str, Any]:
    """(f) until ``val_acc`` >= ``target``: ``default_callbacks()``, validated every ``val_every`` batches."""
    dm = _datamodule(data_dir, batch_size)
    model = DenseClassifier(input_size=dm.input_size, num_classes=dm.num_classes, hidden_sizes=HIDDEN,
                            optimizer="rmsprop", lr=LR)
    clock = TimeToAccuracy(target, math.ceil(len(dm.datasets["train"]) / batch_size))
    trainer = _trainer(workdir, accelerator, default_logger("DenseClassifier", save_dir=workdir),
                       [*default_callbacks(early_stopping=False), clock], precision=BF16, max_epochs=max_epochs,
                       val_check_interval=val_every)
    trainer.fit(model, datamodule=dm)
    return _tta_result(clock.seconds, clock.epochs, clock.val_acc)


def tta_hand(data_dir: str, workdir: str, batch_size: int, accelerator: str, target: float, max_epochs: int,
             val_every: int, bf16: bool = False) -> dict[str, Any]:
    """(b) until its validation accuracy >= ``target``, validated after the same batches as (f)."""
    loop = HandLoop(data_dir, accelerator, bf16)
    batches_per_epoch = math.ceil(len(loop.x_train) / batch_size)
    val_acc = None
    start = time.perf_counter()
    for epoch in range(max_epochs):
        for batch_idx, _ in enumerate(loop.train_batches(batch_size)):
            if (batch_idx + 1) % val_every:
                continue
            _, val_acc = loop.validate(batch_size)
            if val_acc >= target:
                return _tta_result(time.perf_counter() - start, epoch + (batch_idx + 1) / batches_per_epoch,
                                   val_acc)
            loop.net.train()
    return _tta_result(None, float(max_epochs), val_acc)


def measure_time_to_accuracy(data_dir: str, rounds: int, batch_size: int, accelerator: str, quiet: bool,
                             target: float, max_epochs: int) -> dict[str, Any]:
    """Medians over ``rounds`` of (f) ours in bf16 and (b) the fp32 hand loop reaching ``target``, and their ratio."""
    num_train = len(_datamodule(data_dir).datasets["train"])
    val_every = max(1, math.ceil(num_train / batch_size) // TTA_VAL_PER_EPOCH)
    runs: dict[str, list[dict[str, Any]]] = {"ours_bf16": [], "hand": []}
    for r in range(rounds):
        for name in (("ours_bf16", "hand") if r % 2 == 0 else ("hand", "ours_bf16")):
            torch.manual_seed(SEED + r)  # another initialization and order per round: the median is over them too
            with tempfile.TemporaryDirectory(prefix="lit_reg_bench_") as workdir:
                output = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
                with output:
                    runner = tta_ours_bf16 if name == "ours_bf16" else tta_hand
                    result = runner(data_dir, workdir, batch_size, accelerator, target, max_epochs, val_every)
            runs[name].append(result)
            print(f"round {r + 1}/{rounds} time to val_acc {target}: {name:<9} "
                  f"{result['seconds'] if result['reached'] else 'not reached'} s after {result['epochs']:.2f} "
                  f"epochs", file=sys.stderr)
    summary: dict[str, Any] = {"target": target, "batch_size": batch_size, "val_every_batches": val_every,
                               "max_epochs": max_epochs}
    for name, results in runs.items():
        reached = [r for r in results if r["reached"]]
        summary[name] = {
            "seconds": statistics.median(r["seconds"] for r in reached) if len(reached) == len(results) else None,
            "epochs": statistics.median(r["epochs"] for r in results), "rounds": results}
    ours, hand = summary["ours_bf16"]["seconds"], summary["hand"]["seconds"]
    summary["ratio_ours_bf16_hand"] = ours / hand if ours is not None and hand else None
    return summary


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
            if "first_epoch_s" in rounds[0]:  # (g): the first (compiling) epoch's seconds against a later one's
                row[pipeline]["first_epoch_s"] = statistics.median(r["first_epoch_s"] for r in rounds)
                row[pipeline]["epoch_s"] = statistics.median(r["epoch_s"] for r in rounds)
        ratios = RATIOS + (((STEP_CURVES_PIPELINE, "ours"),) if STEP_CURVES_PIPELINE in per_pipeline else ())
        ratios += tuple((n, d) for n, d in EXTRA_RATIOS if n in per_pipeline and d in per_pipeline)
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
    lines += format_extra_rows(report)
    rss = report["peak_rss_mib"]
    lines += ["", f"peak RSS: {rss['ours_fit']:.0f} MiB for a lone (a) fit (batch {rss['ours_fit_batch_size']}), "
              f"{rss['benchmark_process']:.0f} MiB for this whole benchmark process"]
    return "\n".join(lines)


def format_extra_rows(report: dict[str, Any]) -> list[str]:
    """The table of ``--precision-rows`` / ``--compile-rows`` and the ``--time-to-accuracy`` lines (none without)."""
    lines: list[str] = []
    extra = [p for p in (*PRECISION_PIPELINES, COMPILE_PIPELINE) if p in report["config"]["pipelines"]]
    if extra:
        pipelines = ["hand", *extra]
        ratios = [(n, d) for n, d in EXTRA_RATIOS if n in extra and d in ("hand", "ours")]
        lines += ["", f"bf16 mixed precision and torch.compile (training samples/s; "
                      f"{cfg_device(report)}): ratios against the fp32 hand loop (b) and our fp32 fit (a)",
                  "| batch | " + " | ".join(LABELS[p] for p in pipelines) + " | "
                  + " | ".join(f"{LABELS[n][1]}/{LABELS[d][1]}" for n, d in ratios) + " |",
                  "|---:" * (1 + len(pipelines) + len(ratios)) + "|"]
        for batch, row in report["results"].items():
            values = [f"{row[p]['train_samples_per_s']:.0f}" for p in pipelines]
            lines.append(f"| {batch} | {' | '.join(values)} | "
                         + " | ".join(f"{row[f'ratio_{n}_{d}']:.2f}x" for n, d in ratios) + " |")
        if COMPILE_PIPELINE in extra:
            for batch, row in report["results"].items():
                timed = row[COMPILE_PIPELINE]
                lines.append(f"batch {batch}: (g) timed on its second epoch ({timed['epoch_s']:.1f} s); the first, "
                             f"which compiles, took {timed['first_epoch_s']:.1f} s")
    tta = report.get("time_to_accuracy")
    if tta:
        def seconds(name: str) -> str:
            value = tta[name]["seconds"]
            return "not reached" if value is None else f"{value:.1f} s ({tta[name]['epochs']:.2f} epochs)"

        ratio = tta["ratio_ours_bf16_hand"]
        lines += ["", f"time to {tta['target']} validation accuracy (batch {tta['batch_size']}, validated every "
                      f"{tta['val_every_batches']} batches, at most {tta['max_epochs']} epochs, median of "
                      f"{len(tta['hand']['rounds'])}): (f) lit_reg fit bf16 {seconds('ours_bf16')}, (b) hand loop fp32 "
                      f"{seconds('hand')}: f/b " + ("n/a" if ratio is None else f"{ratio:.2f}x")]
    return lines


def cfg_device(report: dict[str, Any]) -> str:
    return f"device {report['machine']['device']}, {report['machine']['torch_threads']} torch threads"


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
    parser.add_argument("--precision-rows", action="store_true",
                        help="also run (e) the hand loop under bf16 autocast and (f) our fit in bf16-mixed in the same "
                             "rounds, with their ratios to (b) and (a)")
    parser.add_argument("--compile-rows", action="store_true",
                        help="also run (g) our fit with compile=True (its second epoch timed) in the same rounds")
    parser.add_argument("--compile-mode", help="torch.compile's mode for (g), e.g. reduce-overhead (CUDA graphs)")
    parser.add_argument("--time-to-accuracy", action="store_true",
                        help=f"seconds until (f) ours in bf16 and (b) the fp32 hand loop first reach --target-acc "
                             f"validation accuracy ({TARGET_ACC}; --quick: {QUICK_TARGET_ACC})")
    parser.add_argument("--target-acc", type=float, help=f"the validation accuracy to reach (default {TARGET_ACC})")
    parser.add_argument("--tta-batch-size", type=int, default=TTA_BATCH_SIZE)
    parser.add_argument("--tta-max-epochs", type=int,
                        help=f"epochs before giving up (default {TTA_MAX_EPOCHS}; --quick {QUICK_TTA_MAX_EPOCHS})")
    parser.add_argument("--device-cache", action="store_true",
                        help="keep the splits on the GPU (FashionMNISTDataModule(device_cache=True))")
    parser.add_argument("--fit-only", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    global DEVICE_CACHE, COMPILE_MODE
    args = parse_args(argv)
    DEVICE_CACHE, COMPILE_MODE = args.device_cache, args.compile_mode
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
        data_dir = torchvision_layout(args.data_dir, tmp) if args.data_dir else tmp
        if not args.data_dir:
            write_fashion_mnist(data_dir, num_train=sizes["num_train"], num_test=sizes["num_test"], seed=SEED)
        pipelines = (PIPELINES + ((STEP_CURVES_PIPELINE,) if args.step_curves else ())
                     + (PRECISION_PIPELINES if args.precision_rows else ())
                     + ((COMPILE_PIPELINE,) if args.compile_rows else ()))
        raw = measure(data_dir, args.rounds, tuple(args.batch_sizes), args.accelerator, quiet=not args.verbose,
                      pipelines=pipelines)
        tta = None
        if args.time_to_accuracy:
            target = args.target_acc if args.target_acc is not None else (
                QUICK_TARGET_ACC if args.quick else TARGET_ACC)
            max_epochs = args.tta_max_epochs or (QUICK_TTA_MAX_EPOCHS if args.quick else TTA_MAX_EPOCHS)
            tta = measure_time_to_accuracy(data_dir, args.rounds, args.tta_batch_size, args.accelerator,
                                           not args.verbose, target, max_epochs)
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
    if tta is not None:
        report["time_to_accuracy"] = tta
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
