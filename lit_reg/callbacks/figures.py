"""Saving a callback's matplotlib figure in the run folder and in TensorBoard (shared by the plotting callbacks)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
from matplotlib.figure import Figure
from pytorch_lightning.loggers import TensorBoardLogger

log = logging.getLogger(__name__)

#: resolution of the saved PNGs: a figure of ``(w, h)`` inches is ``100·w × 100·h`` pixels
DPI = 100


def save_to_run(trainer: pl.Trainer, make_figure: Callable[[], Figure], filename: str, tag: str) -> Path | None:
    """Draw ``make_figure()`` on rank zero, save it as ``<trainer.log_dir>/<filename>`` and add it to every
    ``TensorBoardLogger`` as the image ``tag``; return the path (None on other ranks).

    Figures are built with ``matplotlib.figure.Figure``, not pyplot: this works headless and leaves the
    user's matplotlib backend alone.
    """
    run_dir = trainer.log_dir or trainer.default_root_dir  # on every rank: log_dir is broadcast from rank zero
    if not trainer.is_global_zero:
        return None
    figure = make_figure()
    path = Path(run_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    log.info("%s saved to %s", tag, path)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(tag, figure, global_step=trainer.global_step, close=False)
    return path
