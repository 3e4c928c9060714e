"""Print one line per predicted image: file name, predicted class, its probability."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter


class PredictionPrinter(BasePredictionWriter):
    """Prints ``<file name>  <class>  <probability>`` for every sample of every predict batch.

    Works with a predict dataloader yielding ``(inputs, paths)`` and a ``predict_step`` returning a dict
    with ``labels`` (class names) and ``confidence`` (probability of that class), as
    :class:`~lit_reg.models.BitmojiClassifier` does. The ``lit-reg predict`` subcommand adds it.

    Args:
        stream: where to print (default ``sys.stdout`` at the time of printing).
        digits: decimals of the probability.

    Example:
        >>> import io, torch
        >>> out = io.StringIO()
        >>> PredictionPrinter(stream=out).print_batch({"labels": ["tom"], "confidence": torch.tensor([0.912])},
        ...                                           ["data/tom-bitmoji.png"])
        >>> out.getvalue()
        'tom-bitmoji.png  tom  0.91\\n'
    """

    def __init__(self, stream: TextIO | None = None, digits: int = 2) -> None:
        super().__init__(write_interval="batch")
        self.stream = stream
        self.digits = digits

    def print_batch(self, prediction: dict[str, Any], paths: Sequence[str]) -> None:
        """Print one line per sample of ``prediction``, named by ``paths``."""
        stream = self.stream if self.stream is not None else sys.stdout
        for path, label, confidence in zip(paths, prediction["labels"], prediction["confidence"].tolist(),
                                           strict=True):
            print(f"{os.path.basename(path)}  {label}  {confidence:.{self.digits}f}", file=stream, flush=True)

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        if not isinstance(prediction, dict) or not {"labels", "confidence"} <= prediction.keys():
            raise ValueError(
                f"PredictionPrinter needs predict_step to return a dict with 'labels' and 'confidence'; "
                f"{type(pl_module).__name__} returned {type(prediction).__name__}"
            )
        if not (isinstance(batch, (tuple, list)) and len(batch) > 1 and isinstance(batch[1], (list, tuple))):
            raise ValueError("PredictionPrinter needs predict batches of (inputs, paths), e.g. from "
                             "ImageFolderDataModule(predict_dir=...)")
        self.print_batch(prediction, batch[1])
