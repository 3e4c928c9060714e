"""Callbacks of the collection; each works with any LightningModule."""

from lit_reg.callbacks.divergence_guard import DivergenceError, DivergenceGuard
from lit_reg.callbacks.early_stopping import EarlyStopping
from lit_reg.callbacks.fit_only_state import FitOnlyState
from lit_reg.callbacks.fit_state_key import FitStateKey
from lit_reg.callbacks.learning_curves import LearningCurves
from lit_reg.callbacks.model_checkpoint import ModelCheckpoint
from lit_reg.callbacks.prediction_printer import PredictionPrinter
from lit_reg.callbacks.progress_bar import ProgressBarRefreshRate
from lit_reg.callbacks.weight_norm import WeightNormMonitor, frobenius_norm

__all__ = ["DivergenceError", "DivergenceGuard", "EarlyStopping", "FitOnlyState", "FitStateKey", "LearningCurves",
           "ModelCheckpoint", "PredictionPrinter", "ProgressBarRefreshRate", "WeightNormMonitor", "frobenius_norm"]
