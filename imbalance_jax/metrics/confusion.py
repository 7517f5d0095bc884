"""Confusion matrices (paper R Figs 1, 4), as one segment sum."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from imbalance_jax import _checks


def confusion_matrix(labels_N: jax.Array, predictions_N: jax.Array, num_classes: int, *,
                     normalize: bool = True) -> jax.Array:
  """Counts of (true class, predicted class) pairs, ``[C, C]`` (rows: true class).

  Args:
    labels_N: true classes ``[N]`` in ``[0, C)``.
    predictions_N: predicted classes ``[N]`` in ``[0, C)`` (e.g. argmax of logits).
    num_classes: ``C``.
    normalize: divide each row by its class size, so entry ``(k, j)`` is the
      fraction of class ``k`` predicted as ``j`` (rows of empty classes are 0).

  Example:
    >>> confusion_matrix(jnp.array([0, 0, 1]), jnp.array([0, 1, 1]), 2).tolist()
    [[0.5, 0.5], [0.0, 1.0]]
  """
  num_classes = _checks.check_int("num_classes", num_classes, minimum=1)
  _checks.check_class_ids("labels_N", labels_N, num_classes)
  _checks.check_class_ids("predictions_N", predictions_N, num_classes)
  pairs = labels_N * num_classes + predictions_N
  counts = jax.ops.segment_sum(jnp.ones_like(pairs, jnp.result_type(float)), pairs,
                               num_segments=num_classes * num_classes)
  counts = counts.reshape(num_classes, num_classes)
  if not normalize:
    return counts
  return counts / jnp.maximum(counts.sum(axis=1, keepdims=True), 1)
