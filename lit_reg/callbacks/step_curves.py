"""Training loss and accuracy of single batches every N steps, with their moving averages, and a live PNG."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from lit_reg.callbacks.figures import DPI, png_filename, save_to_run
from lit_reg.callbacks.split_predictions import run_name, run_title

#: the most per-batch values held on the device before they are copied to the host in one go
MAX_PENDING = 1024
_MISSING = object()


def batch_hits(preds: Tensor, target: Tensor) -> Tensor:
    """The number of correct predictions in a batch, as a tensor on the batch's device (no host sync).

    ``preds`` as a model's metrics take them: class scores ``(N, C)`` (logits or probabilities) against labels
    ``(N,)``, probabilities of the positive class against 0/1 labels of the same shape (counted correct when
    ``p >= 0.5`` matches the label), or predicted labels.

    Example:
        >>> int(batch_hits(torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]]), torch.tensor([0, 1, 1])))
        2
        >>> int(batch_hits(torch.tensor([0.9, 0.2, 0.6]), torch.tensor([1, 0, 0])))
        2
    """
    if preds.ndim == target.ndim + 1:
        hits = preds.argmax(dim=-1) == target
    elif preds.is_floating_point():
        hits = (preds >= 0.5) == target.bool()
    else:
        hits = preds == target
    return hits.sum()


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Mean of each value with up to ``window - 1`` values before it (fewer at the start).

    Example:
        >>> moving_average([1.0, 3.0, 5.0, 7.0], 2).tolist()
        [1.0, 2.0, 4.0, 6.0]
    """
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(values, dtype=float))])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def thin(count: int, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` of ``count`` values, evenly spread, the first and the last always in.

    Example:
        >>> thin(10, 4).tolist(), thin(3, 5).tolist()
        ([0, 3, 6, 9], [0, 1, 2])
    """
    if count <= max_points:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, max_points)).astype(int))


class StepCurves(Callback):
    """Log the training loss and accuracy of one batch every ``every_n_steps`` steps, with moving averages.

    Epoch-level ``train_loss`` hides how noisy single batches are and how fast a run moves within an epoch.
    This callback logs, whenever the global step reaches a multiple of ``every_n_steps`` (steps N, 2N, ...;
    never step 0, before any batch), to every logger at that step:

    - ``train_loss_step``: the training loss of the batch that made the step (with penalties, as ``train_loss``);
    - ``train_loss_step_avg``: the mean of that loss over the last ``window`` batches, *every* batch counted,
      not only the logged ones (fewer at the start of the fit);
    - ``train_acc_step`` / ``train_acc_step_avg``: the same for the batch accuracy (the share of correct
      predictions), for classifiers.

    With ``live_plot`` it also redraws, every ``every_n_steps`` steps, ``<trainer.log_dir>/<filename>``: the
    per-batch accuracy (loss for regressors) with its moving average (lecture 001's
    ``TrainingBatchPlotCallback``), for watching a run in an image viewer or a notebook
    (``display(callback.last_figure)``); the last figure is added to TensorBoard as the image ``live_training``
    at the end of fit. The title gives the run and the epoch, counted from 1 as in the other figures: ``during
    epoch 3`` while the fit runs, ``after 15 epochs`` for the figure drawn at its end.

    A redraw (a new figure and its PNG) costs about 0.1 to 0.3 s of CPU time, almost all of it fixed; to keep it
    bounded in long fits each line shows at most ``max_points`` values, evenly picked over the whole fit (the
    moving average is still computed over every batch). Keep ``every_n_steps`` large: at 50 steps and 0.2 s per
    redraw that is 4 ms per step.

    Where the numbers come from: the loss is the ``loss`` the training step returned (``outputs`` of
    ``on_train_batch_end``, times ``accumulate_grad_batches``, by which Lightning divides it). The accuracy needs
    the batch's predictions: the callback sets ``pl_module.keep_last_train_batch = True`` for the fit and reads
    ``pl_module.last_train_batch``, a ``(preds, target)`` pair of detached tensors that the model's training step
    stores while that flag is set (:class:`~lit_reg.models.base.RegularizedModule` stores what its metrics take).
    A module without it gets the loss only, with one warning when its targets are class labels; targets of a
    floating type (regression) give the loss only, without a warning.

    Cost: per batch, one append of the detached loss and, for classifiers, a count of correct predictions left on
    the device (no host sync); the values are copied to the host and averaged on logged steps only. Only rank 0
    does any work.

    Args:
        every_n_steps: steps between two logged batches, > 0.
        window: number of batches in the moving averages, > 0.
        live_plot: redraw ``filename`` every ``every_n_steps`` steps.
        filename: name of the live PNG in the run folder.
        figsize: size of the live figure in inches (saved at 100 dpi).
        max_points: the most values each line of the live figure shows, >= 2.

    Attributes:
        history: one entry per logged step: ``{"step": s, "train_loss_step": ..., "train_loss_step_avg": ...,
            "train_acc_step": ..., "train_acc_step_avg": ...}`` (no accuracy keys for the loss only).
        batch_losses: per-batch losses, of every batch of the fit with ``live_plot``, else of the last ``window``.
        batch_accuracies: the same for the accuracy (empty for the loss only).
        last_figure: the last live figure drawn (None before any, or without ``live_plot``).
        plot_path: where the live PNG was saved, once it was.

    Raises:
        ValueError: if ``every_n_steps`` or ``window`` is not a positive integer, ``max_points`` not an integer
            >= 2, or ``filename`` does not end in ``.png``.

    Example:
        >>> curves = StepCurves(every_n_steps=100, window=20)
        >>> curves.every_n_steps, curves.window, curves.live_plot
        (100, 20, False)
    """

    def __init__(self, every_n_steps: int = 50, window: int = 50, live_plot: bool = False,
                 filename: str = "live_training.png", figsize: tuple[float, float] = (6.4, 4.8),
                 max_points: int = 2000) -> None:
        for name, value in (("every_n_steps", every_n_steps), ("window", window)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
            raise ValueError(f"`max_points` must be an integer >= 2, got {max_points!r}")
        self.every_n_steps = every_n_steps
        self.window = window
        self.live_plot = bool(live_plot)
        self.filename = png_filename(filename)
        self.figsize = tuple(figsize)
        self.max_points = max_points
        self.history: list[dict[str, float]] = []
        self.batch_losses: list[float] | deque[float] = []
        self.batch_accuracies: list[float] | deque[float] = []
        self.last_figure: Figure | None = None
        self.plot_path: Path | None = None
        self._reset()

    def _reset(self) -> None:
        self._active = False
        self._track_accuracy: bool | None = None  # decided on the first batch of the fit
        self._pending_losses: list[Tensor] = []
        self._pending_hits: list[Tensor] = []
        self._pending_sizes: list[int] = []
        self._last_logged_step = -1
        self._old_flag: Any = _MISSING
        self._epoch = 0
        self._finished = False
        self._run_dir = Path()

    # -- hooks ------------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()
        self.history = []
        self.last_figure = None
        # the live figure draws every batch of the fit; the averages need the last `window` only
        self.batch_losses = [] if self.live_plot else deque(maxlen=self.window)
        self.batch_accuracies = [] if self.live_plot else deque(maxlen=self.window)
        if self.live_plot:  # asked on every rank: Lightning broadcasts the run folder from rank 0
            self._run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        self._active = trainer.is_global_zero
        self._last_logged_step = trainer.global_step  # 0, or the step a resumed fit starts from: not logged again
        if self._active:
            self._old_flag = vars(pl_module).get("keep_last_train_batch", _MISSING)
            pl_module.keep_last_train_batch = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._active:
            return
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, Tensor):  # a skipped step (training_step returned None)
            return
        if pl_module.automatic_optimization and trainer.accumulate_grad_batches > 1:
            loss = loss * trainer.accumulate_grad_batches
        self._pending_losses.append(loss.detach())
        self._epoch = trainer.current_epoch  # the epoch of the last batch (current_epoch moves on after the fit)
        last = getattr(pl_module, "last_train_batch", None)
        if self._track_accuracy is None:
            self._track_accuracy = self._can_track_accuracy(pl_module, last, batch)
        if self._track_accuracy and last is not None:
            preds, target = last
            self._pending_hits.append(batch_hits(preds, target))
            self._pending_sizes.append(target.numel())
            pl_module.last_train_batch = None  # a stale pair is never counted twice
        step = trainer.global_step
        if step % self.every_n_steps == 0 and step != self._last_logged_step:
            self._last_logged_step = step
            self._log(trainer, step)
            if self.live_plot:
                self._draw(trainer)
        elif len(self._pending_losses) >= MAX_PENDING:
            self._flush()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._active:
            self._flush()
            self._restore_flag(pl_module)
        if self.live_plot:  # on every rank: save_to_run asks all of them for the run folder, draws on rank 0
            self._finished = True  # the title says "after <n> epochs"
            self.plot_path = save_to_run(trainer, lambda: self._figure(trainer), self.filename, "live_training")
        self._active = False

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._active:
            self._restore_flag(pl_module)
            self._active = False

    # -- internals --------------------------------------------------------------------------------
    def _can_track_accuracy(self, pl_module: pl.LightningModule, last: Any, batch: Any) -> bool:
        if last is not None:
            return not last[1].is_floating_point()
        target = batch[1] if isinstance(batch, (tuple, list)) and len(batch) > 1 else None
        if isinstance(target, Tensor) and not target.is_floating_point():
            rank_zero_warn(f"StepCurves logs train_loss_step only: {type(pl_module).__name__} does not set "
                           "`last_train_batch` = (preds, target) in its training step while "
                           "`keep_last_train_batch` is True, so the batch accuracy is unknown")
        return False

    def _restore_flag(self, pl_module: pl.LightningModule) -> None:
        if self._old_flag is not _MISSING:
            pl_module.keep_last_train_batch = self._old_flag
        elif "keep_last_train_batch" in vars(pl_module):
            del pl_module.keep_last_train_batch  # the class's own value (False) applies again
        if getattr(pl_module, "last_train_batch", None) is not None:
            pl_module.last_train_batch = None

    def _flush(self) -> None:
        """Copy the pending per-batch values to the host (one sync) and append them to the series."""
        if self._pending_losses:
            self.batch_losses.extend(torch.stack(self._pending_losses).float().cpu().tolist())
            self._pending_losses = []
        if self._pending_hits:
            hits = torch.stack(self._pending_hits).cpu().tolist()
            self.batch_accuracies.extend(h / n for h, n in zip(hits, self._pending_sizes, strict=True))
            self._pending_hits, self._pending_sizes = [], []

    @staticmethod
    def _tail_mean(values: list[float] | deque[float], window: int) -> float:
        tail = values[-window:] if isinstance(values, list) else values
        return sum(tail) / len(tail)

    def _log(self, trainer: pl.Trainer, step: int) -> None:
        self._flush()
        values = {"train_loss_step": self.batch_losses[-1],
                  "train_loss_step_avg": self._tail_mean(self.batch_losses, self.window)}
        if self._track_accuracy and self.batch_accuracies:
            values["train_acc_step"] = self.batch_accuracies[-1]
            values["train_acc_step_avg"] = self._tail_mean(self.batch_accuracies, self.window)
        self.history.append({"step": step, **values})
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)

    def _draw(self, trainer: pl.Trainer) -> None:
        figure = self._figure(trainer)
        path = self._run_dir / self.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=DPI)
        self.plot_path = path

    def _figure(self, trainer: pl.Trainer) -> Figure:
        """Per-batch accuracy (and loss) with the moving average, against the batch number of the fit (at most
        ``max_points`` values a line)."""
        series = [("loss", self.batch_losses, "training loss")]
        if self.batch_accuracies:
            series.insert(0, ("accuracy", self.batch_accuracies, "accuracy (fraction correct)"))
        figure = Figure(figsize=self.figsize)  # no pyplot: headless, the user's backend untouched
        all_axes = figure.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
        for axes, (name, values, ylabel) in zip(all_axes, series, strict=True):
            values = np.asarray(values, dtype=float)
            shown = thin(len(values), self.max_points)
            axes.plot(shown + 1, values[shown], linewidth=0.8, alpha=0.5, label=f"batch {name}")
            axes.plot(shown + 1, moving_average(values, self.window)[shown], linewidth=2,
                      label=f"moving average ({self.window} batches)")
            axes.set_ylabel(ylabel)
            axes.grid(alpha=0.3)
            axes.legend(loc="best", fontsize="small")
        all_axes[-1].set_xlabel("training batch (count since the start of fit)")
        when = run_title(trainer) if self._finished else f"{run_name(trainer)}, during epoch {self._epoch + 1}"
        all_axes[0].set_title(f"Training batches: {when}")
        figure.tight_layout()
        self.last_figure = figure
        return figure
