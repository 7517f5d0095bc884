"""Paper H Prop 2 against measured gradient/Hessian blocks; block maps; metrics_fn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import curvature
from imbalance_jax.metrics import blocks

N, D, C = 12, 4, 5


def _data(seed=0):
  kx, ky = jax.random.split(jax.random.key(seed))
  x = jax.random.uniform(kx, (N, D), jnp.float64)
  y = jnp.sort(jax.random.randint(ky, (N,), 0, C))
  return x, y


def _loss(params, x, y):
  logits = x @ params["kernel"] + params["bias"]
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))


@pytest.mark.parametrize("zero_bias", [True, False])
def test_prop2_at_init_matches_measured_blocks(zero_bias):
  with jax.enable_x64(True):
    x, y = _data()
    bias = jnp.zeros(C) if zero_bias else jnp.linspace(-0.5, 0.7, C)
    params = {"kernel": jnp.zeros((D, C)), "bias": bias}
    grads = jax.grad(_loss)(params, x, y)
    pred = curvature.prop2_at_init(x, y, C, bias_C=bias)
    np.testing.assert_allclose(grads["kernel"], pred["grad_kernel_DC"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grads["bias"], pred["grad_bias_C"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pred["grad_norm_C"], np.linalg.norm(grads["kernel"], axis=0),
                               rtol=1e-12)
    # Full Hessian over theta = [kernel (D-major), bias]; block k = (column k, bias k).
    theta = jnp.concatenate([params["kernel"].ravel(), bias])
    unflat = lambda t: {"kernel": t[:D * C].reshape(D, C), "bias": t[D * C:]}  # noqa: E731
    hess = jax.jit(jax.hessian(lambda t: _loss(unflat(t), x, y)))(theta)
    hbar = curvature.second_moment(x, bias=True)
    for k in range(C):
      idx = np.append(np.arange(D) * C + k, D * C + k)
      np.testing.assert_allclose(hess[np.ix_(idx, idx)], pred["hessian_scale_C"][k] * hbar,
                                 rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        curvature.linear_block_traces(x @ params["kernel"] + bias, x), pred["hessian_trace_C"],
        rtol=1e-12)
    if zero_bias:  # The paper's constants (up to its sign convention, see prop2.py):
      # -(pi_k xbar^k - xbar / c) and (1/c)(1 - 1/c) Hbar.
      pi = np.bincount(np.asarray(y), minlength=C) / N
      xbar_k = np.stack([np.asarray(x)[np.asarray(y) == k].mean(0) for k in range(C)], 1)
      np.testing.assert_allclose(pred["grad_kernel_DC"],
                                 -(pi * xbar_k - np.asarray(x).mean(0)[:, None] / C), rtol=1e-12)
      np.testing.assert_allclose(pred["hessian_scale_C"], (1 / C) * (1 - 1 / C), rtol=1e-12)
    # A model without bias at W = 0 gets the same kernel gradient as a zero bias.
    no_bias = curvature.prop2_at_init(x, y, C)
    if zero_bias:
      np.testing.assert_allclose(no_bias["grad_kernel_DC"], pred["grad_kernel_DC"], rtol=1e-12)


def _one_hot_setting(num, p_true):
  """Simple imbalanced setting x_i = e_{y_i}, W = alpha I: Assumption 1 holds exactly."""
  counts = np.maximum(1, (2000 / np.arange(1, num + 1)).astype(int))
  y = jnp.asarray(np.repeat(np.arange(num), counts))
  x = jax.nn.one_hot(y, num, dtype=jnp.float64)
  alpha = np.log(p_true / (1 - p_true) * (num - 1))  # true-class probability p_true
  params = {"kernel": alpha * jnp.eye(num), "bias": jnp.zeros(num)}
  return x, y, params, counts / counts.sum()


@pytest.mark.parametrize("num", [40, 400])
def test_prop2_training_error_is_order_one_over_c(num):
  with jax.enable_x64(True):
    x, y, params, pi = _one_hot_setting(num, 0.6)
    grads = jax.grad(_loss)(params, x, y)
    logits = x @ params["kernel"]
    p = curvature.class_true_probability(logits, y)
    np.testing.assert_allclose(p, 0.6, rtol=1e-10)
    pred = curvature.prop2_training(x, y, num, p)
    np.testing.assert_allclose(pred["grad_norm_C"],
                               np.linalg.norm(pred["grad_kernel_DC"], axis=0), rtol=1e-12)
    # With the bias coordinate (x augmented with 1) its row is -(1 - p) pi.
    with_bias = curvature.prop2_training(x, y, num, p, bias=True)["grad_kernel_DC"]
    assert with_bias.shape == (num + 1, num)
    np.testing.assert_allclose(with_bias[-1], -(1 - p) * pi, rtol=1e-10)
    # Exact error: the other classes' samples push w_k by (1-p)/(c-1) pi_j e_j.
    q = (1 - 0.6) / (num - 1)
    err = np.linalg.norm(grads["kernel"] - pred["grad_kernel_DC"], axis=0)
    np.testing.assert_allclose(err, q * np.sqrt(np.sum(pi**2) - pi**2), rtol=1e-10)
    # Hessian prediction p(1-p) pi_k Tr(Hbar^k) misses only the off-class terms.
    traces = curvature.linear_block_traces(logits, x, bias=False)
    np.testing.assert_allclose(traces - pred["hessian_trace_C"], q * (1 - q) * (1 - pi),
                               rtol=1e-10)
    # Eq. (2): gradient norm / trace -> ||xbar^k|| / (p Tr(Hbar^k)) for frequent classes,
    # with a relative error of order 1 / (pi_k c).
    ratio = blocks.block_grad_norms({"head": grads}) / traces
    rel_err = abs(float(ratio[0] / pred["ratio_C"][0]) - 1)
    assert rel_err < 2 / (pi[0] * num), rel_err  # 0.12 at c = 40, 0.022 at c = 400


def test_block_maps_sampling_and_ratio():
  counts = np.repeat(2 ** np.arange(7, 0, -1), 2 ** np.arange(7))  # m = 7: 127 classes
  key = jax.random.key(0)
  uni = curvature.sample_classes(key, counts, 40, "uniform")
  logu = curvature.sample_classes(key, counts, 40, "log_uniform")
  for s in (uni, logu):
    assert len(set(s.tolist())) == 40 and np.all(np.diff(counts[s]) <= 0)
  assert np.median(logu) < 0.5 * np.median(uni)  # log-uniform favours frequent classes
  dims = curvature.sample_dims(key, 1024, 4)
  assert dims.shape == (4,) and len(set(dims.tolist())) == 4
  t = jnp.array([[4.0, -1.0, 0.1], [-1.0, 2.0, -0.5], [0.1, -0.5, 8.0]])
  np.testing.assert_allclose(curvature.diag_to_offdiag_ratio(t), 4.0 / 0.5)
  assert curvature.block_diagonal_mask(2, 3).sum() == 18
  with pytest.raises(ValueError, match="scheme"):
    curvature.sample_classes(key, counts, 4, "zipf")
  with pytest.raises(ValueError, match="num"):
    curvature.sample_classes(key, counts, 500)
  with pytest.raises(ValueError, match="trace_matrix_SS"):
    curvature.diag_to_offdiag_ratio(jnp.ones((2, 3)))
  with pytest.raises(ValueError, match="p_C"):
    curvature.prop2_training(jnp.ones((3, 2)), jnp.zeros(3, jnp.int32), 2, jnp.ones(3))
  with pytest.raises(ValueError, match="bias_C"):
    curvature.prop2_at_init(jnp.ones((3, 2)), jnp.zeros(3, jnp.int32), 2, bias_C=jnp.ones(3))
  with pytest.raises(ValueError, match="class_to_group"):
    curvature.linear_curvature_metrics(np.array([-1, 0]))


def test_sampling_edges_ties_and_messages():
  key = jax.random.key(1)
  # Every class picked: the most frequent first, ties by class id (120 classes: numpy's
  # default sort is not stable at this size).
  counts = np.tile([3, 1, 2, 2, 1, 3], 20)
  np.testing.assert_array_equal(curvature.sample_classes(key, counts, counts.size, "uniform"),
                                np.lexsort((np.arange(counts.size), -counts)))
  assert curvature.sample_classes(key, [5, 1], 1).shape == (1,)
  np.testing.assert_array_equal(curvature.sample_dims(key, 64, 64), np.arange(64))
  assert curvature.sample_dims(key, 1, 1).tolist() == [0]
  for counts_bad, shape in (([[1, 2]], r"\(1, 2\)"), ([], r"\(0,\)")):
    with pytest.raises(ValueError, match=rf"^class_counts must have shape \[C\], got {shape}$"):
      curvature.sample_classes(key, counts_bad, 1)
  with pytest.raises(ValueError, match=r"^num must be <= the number of classes 2, got 3$"):
    curvature.sample_classes(key, [1, 2], 3)
  with pytest.raises(ValueError, match=r"^num must be >= 1"):
    curvature.sample_classes(key, [1, 2], 0)
  with pytest.raises(ValueError, match=r"^dim must be >= 1"):
    curvature.sample_dims(key, 0, 1)
  with pytest.raises(ValueError, match=r"^num must be >= 1"):
    curvature.sample_dims(key, 4, 0)
  with pytest.raises(ValueError, match=r"^num must be <= dim=4, got 5$"):
    curvature.sample_dims(key, 4, 5)
  # Exact zeros are floored at 1e-30 by default.
  np.testing.assert_allclose(curvature.log10_magnitude(jnp.array([0.0, -1e-3])), [-30.0, -3.0],
                             rtol=1e-6)


# --- empty classes ------------------------------------------------------------------------
# Pinned by mutation testing (docs/testing.md).


def test_data_moments_keep_classes_without_samples():
  with jax.enable_x64(True):
    x = jnp.arange(6.0).reshape(3, 2)
    m = curvature.data_moments(x, jnp.array([0, 0, 1]), 4)  # classes 2 and 3 are empty
    assert m.xbar_DC.shape == (2, 4) and m.trace_H_C.shape == (4,)
    np.testing.assert_allclose(m.xbar_DC[:, 0], [1.0, 2.0])
    with pytest.raises(ValueError, match="^num_classes must be >= 1"):
      curvature.data_moments(x, jnp.array([0, 0, 1]), 0)
