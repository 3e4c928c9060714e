"""Callbacks of the collection; each works with any LightningModule."""

from lit_reg.callbacks.prediction_printer import PredictionPrinter

__all__ = ["PredictionPrinter"]
