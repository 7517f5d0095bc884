"""Imbalanced subsets of labelled data sets: heavy tail, uniform, STEP."""

import math

import jax
import numpy as np
import pytest

from imbalance_jax import data
from imbalance_jax.types import make_dataset


def _indexed(labels, num_classes):
  """A data set whose input is the example's index (to trace what was kept)."""
  labels = np.asarray(labels, np.int32)
  return make_dataset(np.arange(labels.size, dtype=np.float32)[:, None], labels, num_classes)


def test_heavy_tail_counts_imagenet():
  counts = data.heavy_tail_counts(np.full(1000, 1300))
  assert counts.sum() == 10_217
  assert counts[:4].tolist() == [1300, 650, 434, 325]


def test_heavy_tail_counts_match_sorted_reference():
  rng = np.random.default_rng(0)
  class_counts = rng.integers(0, 30, 17)
  class_counts[[3, 9]] = class_counts.max()                      # ties: lower id first
  got = data.heavy_tail_counts(class_counts)
  ranked = sorted(range(17), key=lambda c: (-class_counts[c], c))
  expected = np.zeros(17, int)
  for rank, c in enumerate(ranked, start=1):
    expected[c] = min(class_counts[c], math.ceil(class_counts.max() / rank))
  np.testing.assert_array_equal(got, expected)
  np.testing.assert_array_equal(data.heavy_tail_counts([4, 4], max_per_class=3), [3, 2])


def test_per_class_indices_are_exact_draws_without_replacement():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 5, 200)
  wanted = np.array([3, 0, 7, 1, 2])
  idx = data.per_class_indices(jax.random.key(0), labels, wanted, 5)
  assert np.all(np.diff(idx) > 0)                                # sorted, no repeats
  np.testing.assert_array_equal(np.bincount(labels[idx], minlength=5), wanted)
  other = data.per_class_indices(jax.random.key(1), labels, wanted, 5)
  assert not np.array_equal(idx, other)
  np.testing.assert_array_equal(idx, data.per_class_indices(jax.random.key(0), labels, wanted, 5))
  # Every example of a class is equally likely: over many keys, all get picked.
  picked = np.concatenate([data.per_class_indices(jax.random.key(s), labels, wanted, 5)
                           for s in range(100)])
  assert set(picked[labels[picked] == 2]) == set(np.flatnonzero(labels == 2))
  with pytest.raises(ValueError, match="counts_per_class"):
    data.per_class_indices(jax.random.key(0), labels, np.full(5, 300), 5)


def test_heavy_tail_and_uniform_subsample_datasets():
  labels = np.repeat(np.arange(4), [10, 6, 10, 3])
  ds = _indexed(labels, 4)
  heavy = data.heavy_tail_subsample(jax.random.key(0), ds)
  assert heavy.class_counts.tolist() == [10, 4, 5, 3]            # ranks 1, 3, 2, 4
  kept = np.asarray(heavy.x[:, 0]).astype(int)
  np.testing.assert_array_equal(labels[kept], heavy.y)
  uniform = data.uniform_subsample(jax.random.key(0), ds, 3)
  assert uniform.class_counts.tolist() == [3, 3, 3, 3] and uniform.num_classes == 4
  with pytest.raises(ValueError, match="per_class"):
    data.uniform_subsample(jax.random.key(0), ds, 4)


def test_step_imbalance_paper_r_digits():
  train = data.load_images("mnist", "train")
  ds = data.step_imbalance(jax.random.key(0), train, classes=(3, 8, 1, 6), num_majority=2,
                           majority_count=100, ratio=10)
  assert ds.num_classes == 4 and ds.class_counts.tolist() == [100, 100, 10, 10]
  assert ds.x.dtype == np.uint8
  # Relabelled in the given order: every kept image is one of its digit's images.
  source = {img.tobytes(): int(y) for img, y in zip(np.asarray(train.x), np.asarray(train.y))}
  digits = np.array([3, 8, 1, 6])
  assert all(source[img.tobytes()] == digits[y] for img, y in zip(np.asarray(ds.x),
                                                                  np.asarray(ds.y)))


def test_step_imbalance_bad_inputs():
  ds = _indexed(np.repeat(np.arange(4), 20), 4)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="ratio"):
    data.step_imbalance(key, ds, majority_count=10, ratio=0.5)
  with pytest.raises(ValueError, match="ratio"):
    data.step_imbalance(key, ds, majority_count=10, ratio=50)    # no minority example left
  with pytest.raises(ValueError, match="classes"):
    data.step_imbalance(key, ds, classes=(0, 0, 1), majority_count=10)
  with pytest.raises(ValueError, match="classes"):
    data.step_imbalance(key, ds, classes=(0, 4), majority_count=10)
  with pytest.raises(ValueError, match="num_majority"):
    data.step_imbalance(key, ds, classes=(0, 1), num_majority=3, majority_count=10)
  with pytest.raises(ValueError, match="counts_per_class"):
    data.step_imbalance(key, ds, majority_count=30, ratio=1)     # more than a class holds
  assert data.step_imbalance(key, ds, majority_count=20, ratio=1).class_counts.tolist() == [20] * 4
  assert data.step_imbalance(key, ds, majority_count=1, ratio=1).class_counts.tolist() == [1] * 4
  for kwargs, message in ((dict(num_majority=0), "num_majority must be >= 1, got 0"),
                          (dict(majority_count=0), "majority_count must be >= 1, got 0"),
                          (dict(ratio=0.0), "ratio must be finite and positive, got 0.0"),
                          (dict(majority_count=10, ratio=50), "majority_count / ratio = 0.2 "
                           "leaves no minority examples; lower ratio or raise majority_count")):
    with pytest.raises(ValueError, match="^" + message + "$"):
      data.step_imbalance(key, ds, **kwargs)
  # Paper R's defaults: two majority classes of 100 examples, ratio 10.
  big = _indexed(np.repeat(np.arange(4), 120), 4)
  assert data.step_imbalance(key, big).class_counts.tolist() == [100, 100, 10, 10]
  with pytest.raises(ValueError, match="^per_class must be >= 1, got 0$"):
    data.uniform_subsample(key, big, 0)
  assert data.uniform_subsample(key, big, 1).class_counts.tolist() == [1] * 4


def test_take_recounts_classes():
  ds = _indexed([0, 1, 1, 2], 3)
  sub = data.take(ds, [1, 3])
  assert sub.class_counts.tolist() == [0, 1, 1] and sub.num_classes == 3
  np.testing.assert_array_equal(sub.x[:, 0], [1, 3])


# --- exact messages and ties --------------------------------------------------------------
# Pinned by mutation testing (docs/testing.md).


def test_imbalance_helpers_refuse_bad_counts_and_labels():
  key = jax.random.key(0)
  labels = np.array([0, 0, 1])
  for bad in (np.array([-1, 0, 1]), np.array([0, 1, 2])):
    with pytest.raises(ValueError, match=r"^labels must lie in \[0, num_classes=2\)$"):
      data.per_class_indices(key, bad, [1, 1], 2)
  for wanted in ([1.0, 1.0], [1, -1], [1]):
    with pytest.raises(ValueError, match=r"^counts_per_class must be non-negative ints \[2\]"):
      data.per_class_indices(key, labels, np.asarray(wanted), 2)
  assert data.per_class_indices(key, np.zeros(3, int), [2], 1).size == 2  # one class is fine
  for bad in ([[1, 2]], [], [3, -1]):
    with pytest.raises(ValueError, match=r"^class_counts must be non-negative \[C\] with C >= 1"):
      data.heavy_tail_counts(bad)
  # Ties are ranked by class id (120 classes: numpy's default sort is not stable there).
  counts = np.tile([4, 2, 4, 2], 30)
  rank = np.empty(counts.size, int)
  rank[np.lexsort((np.arange(counts.size), -counts))] = np.arange(1, counts.size + 1)
  np.testing.assert_array_equal(data.heavy_tail_counts(counts), np.minimum(counts, -(-4 // rank)))


def test_max_per_class_above_the_largest_class_is_refused():
  # On a balanced set of 1300 per class, n_1 = 100,000 would clamp every class to 1300 ... and
  # the "heavy-tailed" subset would come out balanced.
  np.testing.assert_array_equal(data.heavy_tail_counts([7, 3], max_per_class=7), [7, 3])
  with pytest.raises(ValueError, match=r"max_per_class=100000 exceeds the largest class \(1300 "
                                       r"examples\).*at most 1300"):
    data.heavy_tail_counts(np.full(1000, 1300), max_per_class=100_000)
