"""Flax Linen models. Classifiers name their last layer ``head``."""

from imbalance_jax.models.cnn import SmallCNN
from imbalance_jax.models.linear import LinearSoftmax, pytorch_uniform
from imbalance_jax.models.mlp import MLP

__all__ = ["LinearSoftmax", "MLP", "SmallCNN", "pytorch_uniform"]
