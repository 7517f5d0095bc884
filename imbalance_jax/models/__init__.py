"""Flax Linen models. Classifiers name their last layer ``head``."""

from imbalance_jax.models.cnn import SmallCNN
from imbalance_jax.models.linear import LinearSoftmax, pytorch_uniform
from imbalance_jax.models.mlp import MLP
from imbalance_jax.models.transformer import (TRANSFORMER_CONFIGS, CausalSelfAttention, Transformer,
                                              flops_per_token, head_mask, head_only,
                                              sinusoidal_positions, transformer)

__all__ = ["LinearSoftmax", "MLP", "SmallCNN", "pytorch_uniform"]
__all__ += ["TRANSFORMER_CONFIGS", "CausalSelfAttention", "Transformer", "flops_per_token",
            "head_mask", "head_only", "sinusoidal_positions", "transformer"]
