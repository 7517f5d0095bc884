"""Flax Linen models. Classifiers name their last layer ``head``."""

from imbalance_jax.models.linear import LinearSoftmax, pytorch_uniform

__all__ = ["LinearSoftmax", "pytorch_uniform"]
