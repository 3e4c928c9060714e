"""A 1-D regressor's fit over its data, as snapshots during training (lecture 002's figure) and a GIF."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from lit_reg.callbacks.figures import (
    DPI,
    SPLIT_LABELS,
    evaluate_on,
    find_split_points,
    save_to_run,
    title_width,
    wrap_title,
)
from lit_reg.callbacks.fit_only_state import FitOnlyState
from lit_reg.callbacks.fit_state_key import FitStateKey
from lit_reg.callbacks.split_predictions import run_name
from lit_reg.callbacks.weight_norm import frobenius_norm

log = logging.getLogger(__name__)

#: how the points of each split are drawn
SPLIT_STYLES = {"train": {"marker": "o", "color": "tab:blue"}, "val": {"marker": "x", "color": "tab:orange"},
                "test": {"marker": "+", "color": "tab:green"}}


@dataclass
class FitSnapshot:
    """The model's prediction on the grid after ``epoch`` epochs of training, and its total weight norm."""

    epoch: int
    weight_norm: float
    prediction: Tensor


class RegressionFit(FitOnlyState, FitStateKey):
    """Plot a 1-D regressor's prediction over its data: the final fit, snapshots during training and a GIF.

    For data with one input feature (``input_size == 1``, e.g.
    :class:`~datamodules.ToyRegressionDataModule`): after every ``every_n_epochs`` training epochs (if given)
    and at the end of fit, the module's prediction on ``num_points`` evenly spaced inputs covering the data
    (with ``padding``) is kept as a :class:`FitSnapshot`, with the total Frobenius norm of its weights
    (:func:`~lit_reg.callbacks.weight_norm.frobenius_norm`). The module is evaluated in eval mode under
    ``no_grad`` (train/eval modes restored), the grid normalized by the datamodule's ``transform_inputs`` like
    the batches. At the end of fit it saves, in ``trainer.log_dir`` and TensorBoard (rank zero only):

    - ``regression_fit.png`` (image ``regression_fit``): the data points of ``splits``, the true function and
      the final prediction;
    - ``regression_fit_snapshots.png`` (image ``regression_fit_snapshots``): the snapshots in a grid of at most
      :attr:`MAX_COLUMNS` columns (:meth:`grid_shape`: 4 panels make 2 × 2, 6 make 2 × 3), each titled with its
      epoch and weight norm, as lecture 002's figure (at most ``max_panels``, evenly spread, the last one always
      in), so that it stays about 1000 pixels wide at most with the default ``panel_size``;
    - with ``gif``, ``regression_fit.gif``: one frame per snapshot (matplotlib's ``PillowWriter``).

    An epoch number is the number of epochs trained: ``epoch 10`` is the model after its 10th epoch.

    The snapshots are part of the checkpoint: ``fit(ckpt_path="last")`` goes on from them (evaluating a checkpoint
    leaves them alone, :class:`FitOnlyState`); a new fit with the same callback starts afresh. The checkpoint key
    holds ``every_n_epochs``, ``num_points``, ``padding`` and ``splits``: two ``RegressionFit`` in one Trainer need
    different settings (Lightning refuses two stateful callbacks of one key; they would also write the same files).

    The true function is ``true_function`` if given, else the datamodule's ``true_function`` method if it has one
    (called with inputs ``(n, 1)``, returning ``(n, 1)`` or ``(n,)``); without either none is drawn. Where the
    inputs have more than one feature, the module more than one output or no data points are found, one warning
    is emitted and nothing is drawn. Nothing is computed during the training steps.

    Args:
        true_function: the clean function the data are drawn around, e.g. ``lambda x: x**2``.
        every_n_epochs: keep a snapshot after every n-th training epoch; None keeps only the end of fit.
        num_points: points of the prediction's grid, >= 2.
        padding: margin of the grid beyond the data on each side, as a fraction of the data's range (>= 0).
        splits: the splits whose points are drawn (``"train"``, ``"val"``, ``"test"``).
        max_panels: the most snapshots the grid of snapshots shows, >= 1.
        gif: also save the snapshots as an animated GIF.
        fps: frames per second of the GIF, > 0.
        axis_labels: labels of the input and output axes.
        figsize: size of the final-fit figure and of the GIF's frames, in inches (saved at 100 dpi).
        panel_size: size of one panel of the grid of snapshots in inches.

    Attributes:
        snapshots: every :class:`FitSnapshot` kept, in order (part of the checkpoint: a resumed fit goes on).
        grid: the inputs of the predictions, ``(num_points,)``.
        true_values: the true function on the grid, or None.
        last_figure: the last figure of the final fit.
        snapshots_figure: the last grid of snapshots.
        plot_path, snapshots_path, gif_path: where the files were saved (None before, and on other ranks).

    Raises:
        ValueError: naming the argument, for a value out of range.

    Example:
        >>> fit = RegressionFit(true_function=lambda x: x**2, every_n_epochs=100, gif=True)
        >>> fit.FILENAME, fit.SNAPSHOTS_FILENAME, fit.GIF_FILENAME
        ('regression_fit.png', 'regression_fit_snapshots.png', 'regression_fit.gif')
    """

    FILENAME = "regression_fit.png"
    SNAPSHOTS_FILENAME = "regression_fit_snapshots.png"
    GIF_FILENAME = "regression_fit.gif"
    #: the most panels side by side in the snapshots' figure
    MAX_COLUMNS = 3

    def __init__(self, true_function: Callable[[Tensor], Tensor] | None = None, every_n_epochs: int | None = None,
                 num_points: int = 400, padding: float = 0.05, splits: Sequence[str] = ("train", "val"),
                 max_panels: int = 4, gif: bool = False, fps: float = 2.0,
                 axis_labels: tuple[str, str] = ("input x", "target y"), figsize: tuple[float, float] = (6.4, 4.8),
                 panel_size: tuple[float, float] = (3.2, 3.2)) -> None:
        if true_function is not None and not callable(true_function):
            raise ValueError(f"`true_function` must be None or a callable of x, got {true_function!r}")
        for value, argument, low in ((num_points, "num_points", 2), (max_panels, "max_panels", 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{argument}` must be an integer >= {low}, got {value!r}")
        if every_n_epochs is not None and (isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int)
                                           or every_n_epochs < 1):
            raise ValueError(f"`every_n_epochs` must be None or an integer >= 1, got {every_n_epochs!r}")
        if isinstance(padding, bool) or not isinstance(padding, (int, float)) or not padding >= 0:
            raise ValueError(f"`padding` must be a number >= 0 (a fraction of the data's range), got {padding!r}")
        if isinstance(splits, str) or not splits or any(s not in SPLIT_STYLES for s in splits):
            raise ValueError(f"`splits` must be a non-empty list of {list(SPLIT_STYLES)}, got {splits!r}")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
            raise ValueError(f"`fps` must be a number > 0, got {fps!r}")
        if len(axis_labels) != 2:
            raise ValueError(f"`axis_labels` must be two labels (input, output), got {axis_labels!r}")
        self.true_function = true_function
        self.every_n_epochs = every_n_epochs
        self.num_points = num_points
        self.padding = float(padding)
        self.splits = list(splits)
        self.max_panels = max_panels
        self.gif = gif
        self.fps = float(fps)
        self.axis_labels = tuple(axis_labels)
        self.figsize = tuple(figsize)
        self.panel_size = tuple(panel_size)
        self.snapshots: list[FitSnapshot] = []
        self.grid: Tensor | None = None
        self.true_values: Tensor | None = None
        self.points: dict[str, tuple[Tensor, Tensor]] = {}
        self.title = ""
        self.last_figure: Figure | None = None
        self.snapshots_figure: Figure | None = None
        self.plot_path: Path | None = None
        self.snapshots_path: Path | None = None
        self.gif_path: Path | None = None
        self._active = False
        self._restored = False

    def current_state_key(self) -> str:
        return self._generate_state_key(every_n_epochs=self.every_n_epochs, num_points=self.num_points,
                                        padding=self.padding, splits=self.splits)

    # -- data -------------------------------------------------------------------------------------
    def find_points(self, trainer: pl.Trainer) -> dict[str, tuple[Tensor, Tensor]] | None:
        """``{split: (x (n,), y (n,))}`` on the CPU, or None (after one warning) when the data is not 1-D."""
        found = find_split_points(
            trainer, self.splits, type(self).__name__, features=1, drawn="1-D regression (one input feature)",
            targets_fit=lambda t: t.is_floating_point() and t[0].numel() == 1,
            targets_wanted="draws one real-valued target per sample")
        if found is None:
            return None
        return {split: (x.reshape(-1).float(), y.reshape(-1).float()) for split, (x, y) in found.items()}

    def make_grid(self, points: dict[str, tuple[Tensor, Tensor]]) -> Tensor:
        """``num_points`` inputs from the smallest to the largest input of ``points``, with the padding.

        Example:
            >>> RegressionFit(num_points=3, padding=0.5).make_grid({"train": (torch.tensor([0.0, 2.0]), None)})
            tensor([-1.,  1.,  3.])
        """
        inputs = torch.cat([x for x, _ in points.values()])
        low, high = float(inputs.min()), float(inputs.max())
        margin = self.padding * ((high - low) or 1.0)
        return torch.linspace(low - margin, high + margin, self.num_points)

    def resolve_true_function(self, trainer: pl.Trainer) -> Callable[[Tensor], Tensor] | None:
        """``true_function``, else the datamodule's ``true_function`` if it is callable, else None."""
        if self.true_function is not None:
            return self.true_function
        candidate = getattr(getattr(trainer, "datamodule", None), "true_function", None)
        return candidate if callable(candidate) else None

    def evaluate_true_function(self, trainer: pl.Trainer, grid: Tensor) -> Tensor | None:
        """The true function on ``grid`` ``(n,)``; None without one, or (after a warning) when it fails."""
        function = self.resolve_true_function(trainer)
        if function is None:
            return None
        try:
            values = torch.as_tensor(function(grid.unsqueeze(1))).detach().float().reshape(-1).cpu()
            if len(values) != len(grid):
                raise ValueError(f"it gave {len(values)} values for {len(grid)} inputs")
        except Exception as error:  # a plot must not end the fit
            rank_zero_warn(f"{type(self).__name__}: the true function failed on inputs of shape "
                           f"{(len(grid), 1)} ({error}); it is not drawn")
            return None
        return values

    # -- hooks ------------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        points = self.find_points(trainer)
        self._active = points is not None
        if not self._active:
            return
        self.points = {split: points[split] for split in self.splits if split in points}
        grid = self.make_grid(points)
        resumed = self._restored and self.grid is not None and self.grid.shape == grid.shape and bool(
            torch.allclose(self.grid, grid))
        # a resumed fit goes on from the checkpoint's snapshots; a new fit starts afresh
        self.snapshots = [s for s in self.snapshots if s.epoch <= trainer.current_epoch] if resumed else []
        self._restored = False
        self.grid = grid
        self.true_values = self.evaluate_true_function(trainer, grid)
        self.title = run_name(trainer) if trainer.is_global_zero else ""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epochs = trainer.current_epoch + 1
        if self._active and self.every_n_epochs and epochs % self.every_n_epochs == 0:
            self.take_snapshot(trainer, pl_module, epochs)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active:
            return
        epochs = trainer.current_epoch  # the epochs completed
        if not self.snapshots or self.snapshots[-1].epoch != epochs:
            self.take_snapshot(trainer, pl_module, epochs)
        if not self._active or not self.snapshots:
            return
        self.plot_path = save_to_run(trainer, self.plot, self.FILENAME, "regression_fit")
        self.snapshots_path = save_to_run(trainer, self.plot_snapshots, self.SNAPSHOTS_FILENAME,
                                          "regression_fit_snapshots")
        if self.gif and trainer.is_global_zero:
            self.gif_path = self.save_gif(Path(trainer.log_dir or trainer.default_root_dir) / self.GIF_FILENAME)

    def take_snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epochs: int) -> None:
        """Keep the module's prediction on :attr:`grid` and its weight norm (rank zero only)."""
        if not trainer.is_global_zero:
            return
        outputs = evaluate_on(trainer, pl_module, self.grid.unsqueeze(1))
        if outputs[0].numel() != 1:
            rank_zero_warn(f"{type(self).__name__} draws one output per sample, but the module gives "
                           f"{outputs[0].numel()} (shape {tuple(outputs.shape)}); nothing is drawn")
            self._active = False
            return
        self.snapshots.append(FitSnapshot(epochs, frobenius_norm(pl_module), outputs.reshape(-1)))

    # -- drawing ----------------------------------------------------------------------------------
    def shown_snapshots(self) -> list[FitSnapshot]:
        """At most ``max_panels`` snapshots, evenly spread, the last one always in.

        Example:
            >>> fit = RegressionFit(max_panels=3)
            >>> fit.snapshots = [FitSnapshot(e, 0.0, torch.zeros(1)) for e in range(10, 110, 10)]
            >>> [s.epoch for s in fit.shown_snapshots()]
            [10, 50, 100]
        """
        count = len(self.snapshots)
        if count <= self.max_panels:
            return list(self.snapshots)
        if self.max_panels == 1:
            return [self.snapshots[-1]]
        picks = sorted({round(i * (count - 1) / (self.max_panels - 1)) for i in range(self.max_panels)})
        return [self.snapshots[i] for i in picks]

    def draw(self, axes: Axes, snapshot: FitSnapshot, legend: bool = True) -> None:
        """Draw the data points, the true function and ``snapshot``'s prediction on ``axes`` (no title)."""
        for split, (x, y) in self.points.items():
            axes.scatter(x.numpy(), y.numpy(), s=16, label=f"{SPLIT_LABELS[split]} data", zorder=3,
                         **SPLIT_STYLES[split])
        if self.true_values is not None:
            axes.plot(self.grid.numpy(), self.true_values.numpy(), color="black", linestyle="--", linewidth=1,
                      label="true function")
        axes.plot(self.grid.numpy(), snapshot.prediction.numpy(), color="tab:red", linewidth=2, label="model")
        axes.set_xlabel(self.axis_labels[0])
        axes.set_ylabel(self.axis_labels[1])
        axes.set_ylim(*self._y_limits())
        if legend:
            axes.legend(loc="best", fontsize="small")

    def _y_limits(self) -> tuple[float, float]:
        """Limits that show every data point and the true function, and the predictions where they stay near."""
        values = [y for _, y in self.points.values()]
        if self.true_values is not None:
            values.append(self.true_values)
        data = torch.cat(values) if values else torch.cat([s.prediction for s in self.snapshots])
        low, high = float(data.min()), float(data.max())
        margin = 0.25 * ((high - low) or 1.0)
        predictions = torch.cat([s.prediction for s in self.snapshots]) if self.snapshots else data
        low = max(min(low, float(predictions.min())), low - 2 * margin) - margin / 2
        high = min(max(high, float(predictions.max())), high + 2 * margin) + margin / 2
        return low, high

    @staticmethod
    def snapshot_title(snapshot: FitSnapshot) -> str:
        """``epoch <n>, ‖W‖ = <norm>``: the title of a snapshot's panel and frame."""
        return f"epoch {snapshot.epoch}, ‖W‖ = {snapshot.weight_norm:.3g}"

    def plot(self) -> Figure:
        """The final fit: data, true function and the last snapshot's prediction."""
        figure = Figure(figsize=self.figsize)  # no pyplot: headless, and the user's backend is left alone
        axes = figure.subplots()
        final = self.snapshots[-1]
        self.draw(axes, final)
        axes.set_title(wrap_title(f"{self.title}: fit after {final.epoch} epoch{'s' * (final.epoch != 1)} "
                                  f"(‖W‖ = {final.weight_norm:.3g})", title_width(axes)))
        figure.tight_layout()
        self.last_figure = figure
        return figure

    @classmethod
    def grid_shape(cls, count: int) -> tuple[int, int]:
        """``(rows, columns)`` of the snapshots' grid for ``count`` panels: the fewest rows of at most
        :attr:`MAX_COLUMNS` panels, the panels spread evenly over them.

        Example:
            >>> [RegressionFit.grid_shape(n) for n in (1, 3, 4, 5, 6, 7)]
            [(1, 1), (1, 3), (2, 2), (2, 3), (2, 3), (3, 3)]
        """
        rows = math.ceil(count / cls.MAX_COLUMNS)
        return rows, math.ceil(count / rows)

    def plot_snapshots(self) -> Figure:
        """The :meth:`shown_snapshots` in a grid of :meth:`grid_shape`, each titled with its epoch and weight norm."""
        shown = self.shown_snapshots()
        rows, columns = self.grid_shape(len(shown))
        width, height = self.panel_size
        title = wrap_title(f"{self.title}: the fit during training (‖W‖: total Frobenius norm of the weights)",
                           width * columns - 0.2)
        figure = Figure(figsize=(width * columns, height * rows + 0.4 + 0.25 * title.count("\n")))
        panels = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel()
        for i, (axes, snapshot) in enumerate(zip(panels, shown, strict=False)):
            self.draw(axes, snapshot, legend=i == 0)
            axes.set_title(self.snapshot_title(snapshot), fontsize="medium")
            if i % columns:
                axes.set_ylabel("")
            bottom = i >= len(shown) - columns  # no panel below it
            axes.tick_params(labelbottom=bottom)
            if not bottom:
                axes.set_xlabel("")
        for axes in panels[len(shown):]:
            axes.remove()
        figure.suptitle(title)
        figure.tight_layout()
        self.snapshots_figure = figure
        return figure

    def save_gif(self, path: Path) -> Path:
        """Save every snapshot as one frame of an animated GIF at ``path``."""
        figure = Figure(figsize=self.figsize)
        axes = figure.subplots()
        first = self.snapshots[0]
        self.draw(axes, first)
        line = next(line for line in axes.get_lines() if line.get_label() == "model")
        title = axes.set_title(f"{self.title}: {self.snapshot_title(first)}")
        figure.tight_layout()

        def update(index: int) -> list[Any]:
            snapshot = self.snapshots[index]
            line.set_ydata(snapshot.prediction.numpy())
            title.set_text(f"{self.title}: {self.snapshot_title(snapshot)}")
            return [line, title]

        path.parent.mkdir(parents=True, exist_ok=True)
        animation = FuncAnimation(figure, update, frames=len(self.snapshots), blit=False, repeat=False)
        animation.save(str(path), writer=PillowWriter(fps=self.fps), dpi=DPI)
        log.info("regression_fit gif saved to %s", path)
        return path

    # -- checkpoint -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"grid": self.grid, "snapshots": [(s.epoch, s.weight_norm, s.prediction) for s in self.snapshots]}

    def restore_state(self, state_dict: dict[str, Any]) -> None:
        self.grid = state_dict.get("grid")
        self.snapshots = [FitSnapshot(int(e), float(n), p) for e, n, p in state_dict.get("snapshots", [])]
        self._restored = True
