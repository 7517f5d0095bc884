"""Theory data sets: Zipf weights, the one-hot setting, STEP simplex-encoded labels."""

import numpy as np
import pytest

from imbalance_jax.data import theory_problems as tp


def test_zipf_distribution_is_normalised_power_law():
  pi = tp.zipf_distribution(50, exponent=1.5)
  assert pi.shape == (50,) and np.isclose(pi.sum(), 1.0)
  np.testing.assert_allclose(pi[0] / pi, np.arange(1, 51) ** 1.5, rtol=1e-12)


def test_simple_setting_inputs_are_one_hot_labels():
  ds = tp.simple_imbalanced_setting([5, 2, 1], dtype=np.float64)
  assert ds.x.shape == (8, 3) and ds.class_counts.tolist() == [5, 2, 1]
  np.testing.assert_array_equal(np.asarray(ds.x), np.eye(3)[np.asarray(ds.y)])


def test_step_labels_and_simplex_encoding():
  y = tp.step_imbalanced_labels(6, 4, n_min=2)
  np.testing.assert_array_equal(np.bincount(y), [8, 8, 8, 2, 2, 2])
  z = tp.simplex_encoded_labels(y, 6)
  np.testing.assert_allclose(z.sum(axis=0), 0.0, atol=1e-15)
  np.testing.assert_allclose(z[y, np.arange(y.size)], 1 - 1 / 6)
  one_hot = np.eye(6)[:, y]
  np.testing.assert_allclose(z, (np.eye(6) - np.ones((6, 6)) / 6) @ one_hot, atol=1e-15)


@pytest.mark.parametrize("call, name", [
    (lambda: tp.zipf_distribution(0), "num_classes"),
    (lambda: tp.zipf_distribution(5, exponent=-1.0), "exponent"),
    (lambda: tp.simple_imbalanced_setting([3]), "class_counts"),
    (lambda: tp.simple_imbalanced_setting([3, 0]), "class_counts"),
    (lambda: tp.step_class_counts(5, 2), "num_classes"),
    (lambda: tp.step_class_counts(4, 0), "imbalance_ratio"),
    (lambda: tp.step_class_counts(4, 2, n_min=0), "n_min"),
    (lambda: tp.simplex_encoded_labels([0, 4], 4), "y"),
])
def test_bad_arguments_are_named(call, name):
  with pytest.raises(ValueError, match=name):
    call()


def test_theory_problem_arguments_are_named_and_dtypes_kept():
  for call, message in ((lambda: tp.step_class_counts(1, 2), "num_classes must be >= 2, got 1"),
                        (lambda: tp.step_class_counts(4, 0), "imbalance_ratio must be >= 1, got 0"),
                        (lambda: tp.step_class_counts(4, 2, 0), "n_min must be >= 1, got 0"),
                        (lambda: tp.zipf_distribution(3, -1.0),
                         "exponent must be finite and non-negative, got -1.0")):
    with pytest.raises(ValueError, match="^" + message + "$"):
      call()
  np.testing.assert_allclose(tp.zipf_distribution(4, 0.0), 0.25)  # exponent 0: uniform
  with pytest.raises(ValueError, match="y"):
    tp.simplex_encoded_labels(np.array([0.0, 1.0]), 2)  # float labels
  assert tp.simplex_encoded_labels(np.array([0, 1, 1]), 2, np.float32).dtype == np.float32
  assert tp.simple_imbalanced_setting([2, 1]).y.dtype == np.int32
