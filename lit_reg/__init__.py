"""lit_reg: PyTorch Lightning models for training and studying regularized dense networks."""

from lit_reg.callbacks import PredictionPrinter
from lit_reg.cuda_check import drop_unusable_nvml_check
from lit_reg.defaults import default_callbacks, default_logger
from lit_reg.models import BitmojiClassifier, DenseClassifier, DenseRegressor, RegularizedModule, build_dense_stack
from lit_reg.precision import auto_precision

__all__ = [
    "BitmojiClassifier",
    "DenseClassifier",
    "DenseRegressor",
    "PredictionPrinter",
    "RegularizedModule",
    "auto_precision",
    "build_dense_stack",
    "default_callbacks",
    "default_logger",
]
__version__ = "0.1.0"

drop_unusable_nvml_check()  # after Lightning's import set the variable (see lit_reg.cuda_check)
