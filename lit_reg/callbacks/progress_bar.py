"""Redraw Lightning's progress bar every few batches instead of after every batch."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, TQDMProgressBar

from lit_reg.registry import check_positive_int


class ProgressBarRefreshRate(Callback):
    """Make the Trainer's ``TQDMProgressBar`` redraw every ``refresh_rate`` batches (Lightning's default: 1).

    Lightning's default bar redraws, and recomputes its metrics, after every training and validation batch,
    which costs a few percent of a small network's step. This callback is not a progress bar itself, so it
    goes into ``callbacks`` whether or not the Trainer has one: with ``enable_progress_bar=False`` (or a
    bar of another type) it does nothing. A bar whose refresh rate was chosen (anything but 1, e.g.
    ``TQDMProgressBar(refresh_rate=5)`` in ``callbacks``, or raised by Lightning's ``TQDM_MINITERS``) is left
    as it is. The bar still shows the last batch of every epoch.

    Args:
        refresh_rate: batches between two redraws, a positive integer.

    Raises:
        ValueError: if ``refresh_rate`` is not a positive integer.

    Example:
        >>> ProgressBarRefreshRate().refresh_rate
        20
    """

    def __init__(self, refresh_rate: int = 20) -> None:
        self.refresh_rate = check_positive_int(refresh_rate, "refresh_rate")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        bar = trainer.progress_bar_callback
        if isinstance(bar, TQDMProgressBar) and bar.refresh_rate == 1:
            bar._refresh_rate = self.refresh_rate  # TQDMProgressBar reads it on every batch; no public setter
