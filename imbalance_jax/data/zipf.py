"""Zipf fits: token (class) frequencies by rank and the slope of log frequency vs log rank.

Example:
  >>> fit = zipf_fit(np.round(1e4 / np.arange(1, 101)))
  >>> round(fit["slope"], 2), fit["max_rank"]
  (-1.0, 100)
"""

from __future__ import annotations

import numpy as np

from imbalance_jax import _checks


def rank_frequencies(class_counts) -> np.ndarray:
  """Relative frequencies sorted in decreasing order, zero counts dropped, ``[K]``.

  Example:
    >>> rank_frequencies([1, 0, 3]).tolist()
    [0.75, 0.25]
  """
  counts = np.asarray(class_counts, np.float64)
  if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0) or counts.sum() <= 0:
    raise ValueError("class_counts must be non-negative [C] counts with a positive total")
  counts = np.sort(counts[counts > 0])[::-1]
  return counts / counts.sum()


def zipf_fit(class_counts, num_points: int = 50) -> dict[str, float]:
  """Least-squares line through log frequency vs log rank.

  The fit uses ``num_points`` ranks spaced evenly in log rank from 1 to the
  number of observed tokens ``K`` (duplicates removed), so every decade of rank
  weighs the same and the long count-1 plateau does not dominate. Zipf's law
  ``pi_k ∝ 1/k`` gives a slope of -1.

  Returns:
    ``{"slope", "intercept", "num_points", "max_rank"}`` (natural logs).

  Example:
    >>> round(zipf_fit(np.round(1e6 / np.arange(1, 1001)))["slope"], 3)
    -1.0
  """
  num_points = _checks.check_int("num_points", num_points, minimum=2)
  freqs = rank_frequencies(class_counts)
  if freqs.size < 2:
    raise ValueError("class_counts must have at least two observed classes to fit a slope")
  ranks = np.unique(np.round(np.logspace(0, np.log10(freqs.size), num_points)).astype(np.int64))
  slope, intercept = np.polyfit(np.log(ranks), np.log(freqs[ranks - 1]), 1)
  return {"slope": float(slope), "intercept": float(intercept), "num_points": int(ranks.size),
          "max_rank": int(freqs.size)}
