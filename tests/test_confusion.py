import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import metrics
from imbalance_jax.theory import studies


def test_confusion_matrix_equals_python_loop():
  rng = np.random.default_rng(0)
  labels, predictions = rng.integers(0, 4, 50), rng.integers(0, 5, 50)
  labels[labels == 3] = 0  # class 3 empty
  expected = np.zeros((5, 5))
  for y, p in zip(labels, predictions):
    expected[y, p] += 1
  counts = metrics.confusion_matrix(jnp.asarray(labels), jnp.asarray(predictions), 5,
                                    normalize=False)
  np.testing.assert_array_equal(counts, expected)
  rows = metrics.confusion_matrix(jnp.asarray(labels), jnp.asarray(predictions), 5)
  sizes = expected.sum(1, keepdims=True)
  np.testing.assert_allclose(rows, np.where(sizes > 0, expected / np.maximum(sizes, 1), 0))


# Pinned by mutation testing (docs/testing.md); in 32 bits only (`no_float64`), as written.
@pytest.mark.no_float64
def test_confusion_matrix_counts_rows_and_dtype():
  labels, predictions = jnp.array([0, 0, 0, 2]), jnp.array([1, 1, 0, 2])
  counts = metrics.confusion_matrix(labels, predictions, 3, normalize=False)
  np.testing.assert_array_equal(counts, [[1, 2, 0], [0, 0, 0], [0, 0, 1]])
  assert counts.dtype == jnp.result_type(float)  # a float (not int) count, as rows are
  rows = metrics.confusion_matrix(labels, predictions, 3)  # normalize is on by default
  np.testing.assert_allclose(rows, [[1 / 3, 2 / 3, 0], [0, 0, 0], [0, 0, 1]], rtol=1e-6)


def test_small_scale_model_learns_minorities_late_under_erm_only():
  summary = studies.ufm_confusion_study(R=10, delta=8.0).summary
  erm, rw = summary["erm"], summary["reweighted"]
  # ERM: majorities near 1/sqrt(R) ~ 0.32 delta, minorities near 1 delta (paper R, Cor. C.3).
  assert erm["minority_learned_at"] > 2 * erm["majority_learned_at"]
  # gamma = 1/2 reweighting: every class near 1/sqrt(R+1) ~ 0.30 delta.
  assert abs(rw["minority_learned_at"] - rw["majority_learned_at"]) < 0.1
  assert rw["minority_learned_at"] < 0.5 * erm["minority_learned_at"]
