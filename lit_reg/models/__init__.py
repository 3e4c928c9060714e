"""LightningModules of the collection and the dense-stack builder they share."""

from lit_reg.models.base import RegularizedModule
from lit_reg.models.bitmoji import BitmojiClassifier
from lit_reg.models.classifier import DenseClassifier
from lit_reg.models.dense import build_dense_stack
from lit_reg.models.regressor import DenseRegressor

__all__ = ["BitmojiClassifier", "DenseClassifier", "DenseRegressor", "RegularizedModule", "build_dense_stack"]
