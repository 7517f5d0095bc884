"""Flax Linen models. Classifiers name their last layer ``head``."""

from imbalance_jax.models.cnn import SmallCNN, ThreeLayerCNN
from imbalance_jax.models.gpt2 import GPT2
from imbalance_jax.models.linear import LinearSoftmax, pytorch_uniform
from imbalance_jax.models.mlp import MLP
from imbalance_jax.models.resnet import NORMS, STEMS, BasicBlock, ResNet18
from imbalance_jax.models.transformer import (TRANSFORMER_CONFIGS, CausalSelfAttention, Transformer,
                                              flops_per_token, head_mask, head_only,
                                              make_transformer, sinusoidal_positions)
from imbalance_jax.models.vit import VIT_CONFIGS, SelfAttention, SimpleViT, posemb_sincos_2d

__all__ = ["LinearSoftmax", "MLP", "SmallCNN", "pytorch_uniform"]
__all__ += ["GPT2", "TRANSFORMER_CONFIGS", "CausalSelfAttention", "Transformer", "flops_per_token",
            "head_mask", "head_only", "make_transformer", "sinusoidal_positions"]
__all__ += ["BasicBlock", "NORMS", "ResNet18", "STEMS", "SelfAttention", "SimpleViT",
            "ThreeLayerCNN", "VIT_CONFIGS", "posemb_sincos_2d"]
