"""Per-class, per-group and per-block metrics computed inside the compiled step."""

from imbalance_jax.metrics.blocks import block_grad_norms, layer_params
from imbalance_jax.metrics.confusion import confusion_matrix
from imbalance_jax.metrics.long_tail import long_tail_metrics, shot_groups
from imbalance_jax.metrics.per_class import classification_metrics, per_class_mean

__all__ = ["block_grad_norms", "layer_params", "classification_metrics", "confusion_matrix",
           "long_tail_metrics", "per_class_mean", "shot_groups"]
