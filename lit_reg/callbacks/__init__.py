"""Callbacks of the collection; each works with any LightningModule."""

from lit_reg.callbacks.confusion_matrix import ConfusionMatrix
from lit_reg.callbacks.decision_boundary import DecisionBoundary
from lit_reg.callbacks.divergence_guard import DivergenceError, DivergenceGuard
from lit_reg.callbacks.early_stopping import EarlyStopping
from lit_reg.callbacks.fit_only_state import FitOnlyState
from lit_reg.callbacks.fit_state_key import FitStateKey
from lit_reg.callbacks.learning_curves import LearningCurves
from lit_reg.callbacks.mistakes import Mistakes
from lit_reg.callbacks.model_checkpoint import ModelCheckpoint
from lit_reg.callbacks.overfitting_layout import OverfittingLayout
from lit_reg.callbacks.prediction_printer import PredictionPrinter
from lit_reg.callbacks.progress_bar import ProgressBarRefreshRate
from lit_reg.callbacks.regression_fit import RegressionFit
from lit_reg.callbacks.sample_grid import SampleGrid
from lit_reg.callbacks.step_curves import StepCurves
from lit_reg.callbacks.weight_averaging import (
    WEIGHT_AVERAGING,
    EMAWeightAveraging,
    SWAWeightAveraging,
    WeightAveraging,
    weight_averaging,
)
from lit_reg.callbacks.weight_histograms import WeightHistograms, layer_label, linear_layer_names
from lit_reg.callbacks.weight_norm import WeightNormMonitor, frobenius_norm

__all__ = ["WEIGHT_AVERAGING", "ConfusionMatrix", "DecisionBoundary", "DivergenceError", "DivergenceGuard",
           "EMAWeightAveraging", "EarlyStopping", "FitOnlyState", "FitStateKey", "LearningCurves", "Mistakes",
           "ModelCheckpoint", "OverfittingLayout", "PredictionPrinter", "ProgressBarRefreshRate", "RegressionFit",
           "SWAWeightAveraging", "SampleGrid", "StepCurves", "WeightAveraging", "WeightHistograms",
           "WeightNormMonitor", "frobenius_norm", "layer_label", "linear_layer_names", "weight_averaging"]
