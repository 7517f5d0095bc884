"""Data of the theory problems: Zipf frequencies, the one-hot setting, STEP labels.

* `zipf_distribution`: pi_k ∝ k^(-s), the weights of paper H's quadratic
  (Fig. 6) and the token distribution of paper S's unigram model.
* `simple_imbalanced_setting`: paper H's Thm. 3 data, x_i = e_{y_i}.
* `step_imbalanced_labels` / `simplex_encoded_labels`: paper R's STEP
  imbalance and its simplex-encoded label matrix Z = (I - 11^T/k) Y.
"""

from __future__ import annotations

import numpy as np

from imbalance_jax import _checks
from imbalance_jax.types import Dataset, make_dataset


def zipf_distribution(num_classes: int, exponent: float = 1.0) -> np.ndarray:
  """Zipf frequencies ``pi_k = k^(-exponent) / sum_j j^(-exponent)``, k = 1..C.

  Returns:
    float64 array ``[C]``, decreasing, summing to 1.

  Example:
    >>> zipf_distribution(3).round(3).tolist()
    [0.545, 0.273, 0.182]
  """
  num_classes = _checks.check_int("num_classes", num_classes, minimum=1)
  _checks.check_positive("exponent", exponent, allow_zero=True)
  weights = np.arange(1, num_classes + 1, dtype=np.float64) ** -float(exponent)
  return weights / weights.sum()


def simple_imbalanced_setting(class_counts, dtype=np.float32) -> Dataset:
  """Paper H's "simple imbalanced setting": every example of class k is x = e_k.

  Args:
    class_counts: positive integer counts ``[C]``, ``C >= 2``; pi_k = n_k / n.
    dtype: float dtype of the inputs (float64 for precision tests, inside
      ``jax.enable_x64``).

  Returns:
    `Dataset` with ``x [n, C]`` one-hot rows and labels sorted by class.

  Example:
    >>> ds = simple_imbalanced_setting([3, 1])
    >>> ds.x.tolist(), ds.y.tolist()
    ([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0, 0, 0, 1])
  """
  counts = np.asarray(class_counts)
  if (counts.ndim != 1 or counts.size < 2 or not np.issubdtype(counts.dtype, np.integer)
      or np.any(counts < 1)):
    raise ValueError(f"class_counts must be >= 2 positive integers, got {class_counts!r}")
  num_classes = counts.size
  y = np.repeat(np.arange(num_classes, dtype=np.int32), counts)
  return make_dataset(np.eye(num_classes, dtype=dtype)[y], y, num_classes)


def step_class_counts(num_classes: int, imbalance_ratio: int, n_min: int = 1) -> np.ndarray:
  """STEP imbalance: k/2 majority classes of ``R n_min`` and k/2 minority classes of ``n_min``.

  Example:
    >>> step_class_counts(4, 10).tolist()
    [10, 10, 1, 1]
  """
  num_classes = _checks.check_int("num_classes", num_classes, minimum=2)
  if num_classes % 2:
    raise ValueError(f"num_classes must be even, got {num_classes}")
  imbalance_ratio = _checks.check_int("imbalance_ratio", imbalance_ratio, minimum=1)
  n_min = _checks.check_int("n_min", n_min, minimum=1)
  half = num_classes // 2
  return np.array([imbalance_ratio * n_min] * half + [n_min] * half, dtype=np.int64)


def step_imbalanced_labels(num_classes: int, imbalance_ratio: int, n_min: int = 1) -> np.ndarray:
  """Labels ``y [n]`` of paper R's STEP imbalance, sorted by class (majorities first).

  ``n = (k/2)(R + 1) n_min``. Paper R's appendix uses ``n_min = 1``.

  Example:
    >>> step_imbalanced_labels(4, 2).tolist()
    [0, 0, 1, 1, 2, 3]
  """
  counts = step_class_counts(num_classes, imbalance_ratio, n_min)
  return np.repeat(np.arange(counts.size, dtype=np.int32), counts)


def simplex_encoded_labels(y, num_classes: int, dtype=np.float64) -> np.ndarray:
  """Simplex-encoded label matrix ``Z = (I_k - 1 1^T / k) Y``, shape ``[k, n]``.

  ``Y [k, n]`` is the one-hot matrix of ``y``; each column of Z is the centred
  one-hot vector (``1 - 1/k`` at the label, ``-1/k`` elsewhere).

  Example:
    >>> simplex_encoded_labels([0, 1], 2).tolist()
    [[0.5, -0.5], [-0.5, 0.5]]
  """
  num_classes = _checks.check_int("num_classes", num_classes, minimum=2)
  y = np.asarray(y)
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.size == 0:
    raise ValueError(f"y must be a non-empty 1-d integer array, got {y!r}")
  if y.min() < 0 or y.max() >= num_classes:
    raise ValueError(f"y must lie in [0, num_classes={num_classes})")
  one_hot_KN = np.eye(num_classes, dtype=dtype)[:, y]
  return one_hot_KN - one_hot_KN.mean(axis=0, keepdims=True)
