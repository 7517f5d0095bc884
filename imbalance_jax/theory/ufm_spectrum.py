"""Paper R, Sec. 3.2 / eq. (11): SVD of STEP-imbalanced simplex-encoded labels.

With k/2 majority classes of ``R n_min`` examples and k/2 minority classes of
``n_min``, ``Z Z^T = P diag(n_c) P`` (P the centring projector), whose
eigenvectors are, in class space,

* maj-maj: vectors on the majority classes summing to 0 (k/2 - 1 of them),
  ``sigma^2 = R n_min``;
* maj-min: ``(-1, ..., -1, +1, ..., +1) / sqrt(k)`` (one), ``sigma^2 = (R + 1) n_min / 2``;
* min-min: vectors on the minority classes summing to 0 (k/2 - 1),
  ``sigma^2 = n_min``.

The right singular vectors are ``v = Z^T u / sigma``.
"""

from __future__ import annotations

import numpy as np

from imbalance_jax import _checks
from imbalance_jax.data.theory_problems import (simplex_encoded_labels, step_class_counts,
                                                step_imbalanced_labels)

GROUPS = ("maj_maj", "maj_min", "min_min")


def step_label_spectrum(num_classes: int, imbalance_ratio: int, n_min: int = 1) -> dict:
  """Singular values of Z by group: ``{group: (sigma, multiplicity)}``.

  Example:
    >>> step_label_spectrum(4, 9)["maj_min"]
    (2.236..., 1)
  """
  counts = step_class_counts(num_classes, imbalance_ratio, n_min)
  half = counts.size // 2
  return {"maj_maj": (float(np.sqrt(imbalance_ratio * n_min)), half - 1),
          "maj_min": (float(np.sqrt((imbalance_ratio + 1) * n_min / 2)), 1),
          "min_min": (float(np.sqrt(n_min)), half - 1)}


def _centred_basis(size: int) -> np.ndarray:
  """Orthonormal basis ``[size, size - 1]`` of the vectors orthogonal to 1 (Helmert)."""
  i = np.arange(size)[:, None]
  j = np.arange(1, size)[None, :]  # column j - 1 is (1, ..., 1, -j, 0, ...) / norm
  basis = np.where(i < j, 1.0, np.where(i == j, -j.astype(np.float64), 0.0))
  basis = basis / np.sqrt(j * (j + 1.0))
  return basis


def step_label_svd(num_classes: int, imbalance_ratio: int, n_min: int = 1):
  """Closed-form thin SVD ``Z = U diag(sigma) V^T`` of STEP simplex-encoded labels.

  Columns are ordered maj-maj, maj-min, min-min (decreasing sigma for R > 1).

  Returns:
    ``(u_KM, sigma_M, v_NM, groups_M)`` with ``M = k - 1``; ``groups_M`` names
    each column's group (see `GROUPS`).

  Example:
    >>> u, s, v, groups = step_label_svd(4, 10)
    >>> groups.tolist()
    ['maj_maj', 'maj_min', 'min_min']
  """
  spectrum = step_label_spectrum(num_classes, imbalance_ratio, n_min)
  half = num_classes // 2
  f = _centred_basis(half)
  zeros = np.zeros_like(f)
  ones = np.ones((half, 1)) / np.sqrt(num_classes)
  u_KM = np.block([[f, -ones, zeros], [zeros, ones, f]])
  groups_M = np.array(["maj_maj"] * (half - 1) + ["maj_min"] + ["min_min"] * (half - 1))
  sigma_M = np.array([spectrum[g][0] for g in groups_M])
  z_KN = simplex_encoded_labels(step_imbalanced_labels(num_classes, imbalance_ratio, n_min),
                                num_classes)
  v_NM = z_KN.T @ u_KM / sigma_M
  return u_KM, sigma_M, v_NM, groups_M


def step_sample_weights(num_classes: int, imbalance_ratio: int, n_min: int = 1,
                        gamma: float = 0.5) -> np.ndarray:
  """Per-example weights ``omega_i = (k pi_{y_i} / 2)^(-gamma)``, shape ``[n]``.

  For gamma = 1/2 this is paper R's eq. (12): ``sqrt(R + 1) / sqrt(R)`` on
  majority examples and ``sqrt(R + 1)`` on minority ones (whatever k and n_min).
  gamma = 0 is plain ERM (all ones).
  """
  _checks.check_positive("gamma", gamma, allow_zero=True)
  counts = step_class_counts(num_classes, imbalance_ratio, n_min)
  pi = counts / counts.sum()
  y = step_imbalanced_labels(num_classes, imbalance_ratio, n_min)
  return (num_classes * pi[y] / 2.0) ** -float(gamma)
