"""Data sets as pure functions of a PRNG key and sizes."""

from imbalance_jax.data.imbalance import frequency_groups
from imbalance_jax.data.synthetic import (INPUT_DISTRIBUTIONS, heavy_tailed_class_counts,
                                          heavy_tailed_labels)

__all__ = ["INPUT_DISTRIBUTIONS", "frequency_groups", "heavy_tailed_class_counts",
           "heavy_tailed_labels"]
