"""Callbacks of the collection; each works with any LightningModule."""

from lit_reg.callbacks.divergence_guard import DivergenceError, DivergenceGuard

__all__ = ["DivergenceError", "DivergenceGuard"]
