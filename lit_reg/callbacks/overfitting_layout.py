"""A TensorBoard custom-scalars layout: training vs validation curves overlaid, to spot over-fitting at a glance."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_warn

from lit_reg.callbacks.weight_histograms import WeightHistograms
from lit_reg.callbacks.weight_norm import WeightNormMonitor

#: compared as ``train_<name>`` vs ``val_<name>`` for a module without ``logged_metric_names``
DEFAULT_METRICS = ("loss", "acc")


def exact_tag(tag: str) -> str:
    """The regular expression that TensorBoard's custom scalars match against ``tag`` alone.

    TensorBoard matches a chart's tag patterns with ``re.match`` (anchored at the start only): ``train_loss``
    alone would also draw ``train_loss_step``.

    Example:
        >>> exact_tag("weight_norm/total")
        'weight_norm/total$'
    """
    return re.escape(tag) + "$"


class OverfittingLayout(Callback):
    """Write a custom-scalars layout to TensorBoard: train vs validation of each metric overlaid on one chart.

    TensorBoard's Scalars tab draws ``train_loss`` and ``val_loss`` on separate charts; over-fitting (training
    loss still falling while the validation loss turns up) shows best with both on one. At the start of fit
    this callback adds a layout (``SummaryWriter.add_custom_scalars``) to every ``TensorBoardLogger``, shown in
    TensorBoard's CUSTOM SCALARS tab, category ``category``, with one chart per metric ``name`` logged for both
    stages:

    - ``<name>: train vs validation``: ``train_<name>`` and ``val_<name>`` (``loss``, ``acc``, ...; the
      loss chart also draws ``train_data_loss``, the training loss without the penalties, when the model has
      an ``l1_penalty`` or ``l2_penalty``: the number to compare with ``val_loss``);
    - ``weight norm``: ``weight_norm/total``, when a :class:`~lit_reg.callbacks.WeightNormMonitor` is among the
      trainer's callbacks (a norm that keeps growing goes with over-fitting);
    - ``weight sparsity``: ``weight_sparsity/total``, when a
      :class:`~lit_reg.callbacks.weight_histograms.WeightHistograms` is;
    - each of ``extra_charts``.

    The metric names come from ``pl_module.logged_metric_names("train")`` and ``("val")`` when the module has
    that method (the collection's models), else from ``metrics``. A chart's tags are exact names, not prefixes.
    Writing the layout costs one small event per fit; without any logger nothing is written, and with loggers
    none of which is a ``TensorBoardLogger`` there is one warning.

    Args:
        metrics: metric names to compare as ``train_<name>`` vs ``val_<name>``; None: the names the module logs
            for both stages (``("loss", "acc")`` for a module that does not say).
        category: title of the layout's category in the CUSTOM SCALARS tab.
        extra_charts: more charts, ``{title: [tag, ...]}`` (exact tag names), e.g.
            ``{"learning rate": ["lr"]}``.

    Attributes:
        layout: the last layout written, ``{category: {chart title: ["Multiline", [tag pattern, ...]]}}``.

    Raises:
        ValueError: for an empty ``category`` or ``metrics``, or ``extra_charts`` that are not a dict of titles
            and non-empty lists of tag names.

    Example:
        >>> layout = OverfittingLayout(extra_charts={"learning rate": ["lr"]})
        >>> layout.charts(None)["learning rate"]
        ['Multiline', ['lr$']]
    """

    def __init__(self, metrics: Sequence[str] | None = None, category: str = "overfitting",
                 extra_charts: dict[str, Sequence[str]] | None = None) -> None:
        if not isinstance(category, str) or not category:
            raise ValueError(f"`category` must be a non-empty string, got {category!r}")
        if metrics is not None and (isinstance(metrics, str) or not metrics):
            raise ValueError(f"`metrics` must be None or a list of at least one metric name, got {metrics!r}")
        extra_charts = {} if extra_charts is None else extra_charts
        if not isinstance(extra_charts, dict) or not all(
                isinstance(title, str) and not isinstance(tags, str) and tags and all(isinstance(t, str) for t in tags)
                for title, tags in extra_charts.items()):
            raise ValueError("`extra_charts` must be a dict of chart titles and non-empty lists of tag names, e.g. "
                             f"{{'learning rate': ['lr']}}, got {extra_charts!r}")
        self.metrics = None if metrics is None else list(metrics)
        self.category = category
        self.extra_charts = {title: list(tags) for title, tags in extra_charts.items()}
        self.layout: dict[str, dict[str, list[Any]]] = {}

    def compared_metrics(self, pl_module: pl.LightningModule | None) -> list[str]:
        """The names ``n`` drawn as ``train_n`` vs ``val_n``."""
        if self.metrics is not None:
            return list(self.metrics)
        logged = getattr(pl_module, "logged_metric_names", None)
        if not callable(logged):
            return list(DEFAULT_METRICS)
        train = [name.removeprefix("train_") for name in logged("train") if name.startswith("train_")]
        val = set(logged("val"))
        return [name for name in train if f"val_{name}" in val]

    def charts(self, pl_module: pl.LightningModule | None,
               callbacks: Sequence[Callback] = ()) -> dict[str, list[Any]]:
        """``{chart title: ["Multiline", [tag pattern, ...]]}`` for ``pl_module`` and the trainer's ``callbacks``."""
        hparams = getattr(pl_module, "hparams", {}) or {}
        penalized = bool(hparams.get("l1_penalty") or hparams.get("l2_penalty"))
        charts: dict[str, list[str]] = {}
        for name in self.compared_metrics(pl_module):
            tags = [f"train_{name}", f"val_{name}"]
            if name == "loss" and penalized:
                tags.insert(1, "train_data_loss")
            charts[f"{name}: train vs validation"] = tags
        if any(isinstance(callback, WeightNormMonitor) for callback in callbacks):
            charts["weight norm"] = ["weight_norm/total"]
        if any(isinstance(callback, WeightHistograms) for callback in callbacks):
            charts["weight sparsity"] = ["weight_sparsity/total"]
        charts.update(self.extra_charts)
        return {title: ["Multiline", [exact_tag(tag) for tag in tags]] for title, tags in charts.items()}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not loggers:
            if trainer.loggers:
                rank_zero_warn("OverfittingLayout writes a TensorBoard layout but the trainer has no "
                               "TensorBoardLogger; nothing is written")
            return
        self.layout = {self.category: self.charts(pl_module, trainer.callbacks)}
        if not trainer.is_global_zero:
            return
        for logger in loggers:
            logger.experiment.add_custom_scalars(self.layout)
