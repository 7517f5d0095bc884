"""Per-class and per-group metrics computed inside the compiled step."""

from imbalance_jax.metrics.per_class import classification_metrics, per_class_mean

__all__ = ["classification_metrics", "per_class_mean"]
