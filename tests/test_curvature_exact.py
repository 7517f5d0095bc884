"""Exact linear-model block traces and entries against the dense jax.hessian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax.curvature import linear_exact
from imbalance_jax.metrics import blocks

N, D = 11, 4


def _problem(num_classes, seed=0):
  kx, ky, kw, kb = jax.random.split(jax.random.key(seed), 4)
  x = jax.random.normal(kx, (N, D), jnp.float64)
  y = jax.random.randint(ky, (N,), 0, num_classes)
  kernel = jax.random.normal(kw, (D, num_classes), jnp.float64)
  bias = jax.random.normal(kb, (num_classes,), jnp.float64)
  return x, y, kernel, bias


def _dense_hessian(x, y, kernel, bias, weights_N):
  """Dense Hessian over theta = [kernel.ravel() (d-major), bias], and the index map."""
  d, c = kernel.shape

  def loss(theta):
    w, b = theta[:d * c].reshape(d, c), theta[d * c:]
    logits = x @ w + b
    loss_n = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1)[:, 0]
    return jnp.mean(weights_N * loss_n)

  theta = jnp.concatenate([kernel.ravel(), bias])
  hess = jax.jit(jax.hessian(loss))(theta)
  # Index of kernel entry (a, k) is a * c + k; bias k is d * c + k.
  kernel_idx = (np.arange(d)[:, None] * c + np.arange(c)[None, :])  # [D, C]
  return hess, kernel_idx, d * c + np.arange(c)


@pytest.mark.parametrize("num_classes,weighted", [(3, False), (7, True)])
def test_block_traces_match_dense_hessian(num_classes, weighted):
  with jax.enable_x64(True):
    x, y, kernel, bias = _problem(num_classes)
    weights_N = (jnp.linspace(0.5, 2.0, num_classes)[y] if weighted
                 else jnp.ones(N, jnp.float64))
    hess, kidx, bidx = _dense_hessian(x, y, kernel, bias, weights_N)
    logits = x @ kernel + bias
    w = weights_N if weighted else None
    # T[k, k'] = sum_a H[(a,k),(a,k')] + H[b_k, b_k'].
    expected = (np.einsum("akal->kl", np.asarray(hess)[kidx[:, :, None, None],
                                                       kidx[None, None, :, :]])
                + np.asarray(hess)[bidx[:, None], bidx[None, :]])
    expected_nobias = expected - np.asarray(hess)[bidx[:, None], bidx[None, :]]
    np.testing.assert_allclose(linear_exact.linear_block_traces(logits, x, weights_N=w),
                               np.diag(expected), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(linear_exact.linear_block_traces(logits, x, bias=False,
                                                                weights_N=w),
                               np.diag(expected_nobias), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(linear_exact.linear_block_trace_matrix(logits, x, weights_N=w),
                               expected, rtol=1e-10, atol=1e-12)
    subset = jnp.array([num_classes - 1, 0])
    np.testing.assert_allclose(
        linear_exact.linear_block_trace_matrix(logits, x, subset, bias=False, weights_N=w),
        expected_nobias[np.ix_(subset, subset)], rtol=1e-10, atol=1e-12)
    # Off-diagonal blocks are really there (the test would not pass with zeros).
    assert np.abs(expected - np.diag(np.diag(expected))).max() > 1e-3


def test_hessian_entries_match_dense_hessian():
  with jax.enable_x64(True):
    x, y, kernel, bias = _problem(5, seed=1)
    hess, kidx, _ = _dense_hessian(x, y, kernel, bias, jnp.ones(N, jnp.float64))
    classes, dims = jnp.array([4, 1, 2]), jnp.array([3, 0])
    rows = np.asarray(kidx)[np.asarray(dims)][:, np.asarray(classes)].T.ravel()  # class-major
    expected = np.asarray(hess)[np.ix_(rows, rows)]
    got = linear_exact.linear_hessian_entries(x @ kernel + bias, x, classes, dims)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_block_grad_norms_match_grad_slices():
  with jax.enable_x64(True):
    x, y, kernel, bias = _problem(4, seed=2)
    params = {"params": {"head": {"kernel": kernel, "bias": bias}, "other": {"kernel": kernel}}}

    def loss(p):
      head = p["params"]["head"]
      logits = x @ head["kernel"] + head["bias"] + 0.1 * x @ p["params"]["other"]["kernel"]
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    grads = jax.grad(loss)(params)
    g_kernel, g_bias = grads["params"]["head"]["kernel"], grads["params"]["head"]["bias"]
    expected = np.array([np.linalg.norm(g_kernel[:, k]) for k in range(4)])
    np.testing.assert_allclose(jax.jit(blocks.block_grad_norms)(grads), expected, rtol=1e-12)
    with_bias = np.array([np.linalg.norm(np.append(g_kernel[:, k], g_bias[k])) for k in range(4)])
    np.testing.assert_allclose(blocks.block_grad_norms(grads["params"], include_bias=True),
                               with_bias, rtol=1e-12)
    np.testing.assert_allclose(blocks.block_grad_norms(grads, layer="other"),
                               np.linalg.norm(grads["params"]["other"]["kernel"], axis=0),
                               rtol=1e-12)


def test_bad_arguments_raise_naming_the_argument():
  x = jnp.ones((4, 3))
  with pytest.raises(ValueError, match="logits_NC"):
    linear_exact.linear_block_traces(jnp.ones((5, 2)), x)
  with pytest.raises(ValueError, match="x_ND"):
    linear_exact.linear_block_traces(jnp.ones((4, 2)), jnp.ones(4))
  with pytest.raises(ValueError, match="weights_N"):
    linear_exact.linear_block_traces(jnp.ones((4, 2)), x, weights_N=jnp.ones(3))
  with pytest.raises(ValueError, match="layer"):
    blocks.block_grad_norms({"params": {"head": {"kernel": x}}}, layer="missing")
  with pytest.raises(ValueError, match="include_bias"):
    blocks.block_grad_norms({"params": {"head": {"kernel": x}}}, include_bias=True)
