"""Class-frequency structure: frequency groups for display."""

from __future__ import annotations

import numpy as np

from imbalance_jax import _checks


def frequency_groups(class_counts, num_groups: int = 10) -> np.ndarray:
  """Maps each class to a frequency group holding ≈ 1/num_groups of the data.

  Classes are sorted by count (descending, ties by class id) and laid out on
  [0, 1] by their cumulative share of the examples; a class joins the group
  whose slice of [0, 1] holds the midpoint of the class's own interval. Group
  ids are then renumbered consecutively, so no group is empty even when one
  class holds more than 1/num_groups of the data (there may then be fewer than
  ``num_groups`` groups). Group 0 holds the most frequent classes. Groups are
  for display only; training never sees them.

  Args:
    class_counts: non-negative counts ``[C]`` with a positive total.
    num_groups: requested number of groups, ``>= 1``.

  Returns:
    int32 array ``[C]`` of group ids in ``[0, G)``, ``G <= num_groups``.

  Example:
    >>> frequency_groups([8, 4, 4, 2, 2, 2, 2], num_groups=3).tolist()
    [0, 1, 1, 2, 2, 2, 2]
  """
  num_groups = _checks.check_int("num_groups", num_groups, minimum=1)
  counts = np.asarray(class_counts)
  if counts.ndim != 1 or counts.size == 0:
    raise ValueError(f"class_counts must have shape [C] with C >= 1, got {counts.shape}")
  if np.any(counts < 0) or counts.sum() <= 0:
    raise ValueError("class_counts must be non-negative with a positive total")
  order = np.argsort(-counts, kind="stable")
  share = counts[order] / counts.sum()
  midpoints = np.cumsum(share) - share / 2
  raw = np.minimum((midpoints * num_groups).astype(np.int64), num_groups - 1)
  _, consecutive = np.unique(raw, return_inverse=True)
  groups = np.empty_like(consecutive)
  groups[order] = consecutive
  return groups.astype(np.int32)
