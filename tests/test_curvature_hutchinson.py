"""Hutchinson block traces converge to exact / dense-Hessian traces."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from imbalance_jax import curvature
from imbalance_jax.models.mlp import MLP

N, D, C = 11, 4, 5


def _linear_problem():
  kx, ky, kw, kb = jax.random.split(jax.random.key(3), 4)
  x = jax.random.normal(kx, (N, D), jnp.float64)
  y = jax.random.randint(ky, (N,), 0, C)
  params = {"kernel": jax.random.normal(kw, (D, C), jnp.float64),
            "bias": jax.random.normal(kb, (C,), jnp.float64)}

  def loss(p):
    logits = x @ p["kernel"] + p["bias"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))
  return x, params, loss


def test_hutchinson_error_shrinks_like_inverse_sqrt_probes():
  with jax.enable_x64(True):
    x, params, loss = _linear_problem()
    exact = curvature.linear_block_traces(x @ params["kernel"] + params["bias"], x)
    ids = curvature.dense_block_ids(params)
    keys = jax.random.split(jax.random.key(0), 64)  # 64 independent repetitions
    probes, rms, stderr = [4, 32, 256], [], []
    for k in probes:
      est = jax.jit(jax.vmap(functools.partial(
          curvature.hutchinson_block_traces, loss, params, ids, num_blocks=C, num_probes=k)))(
              key=keys)
      rms.append(float(jnp.sqrt(jnp.mean((est.traces - exact) ** 2))))
      stderr.append(float(jnp.sqrt(jnp.mean(est.stderr**2))))
    slope = np.polyfit(np.log(probes), np.log(rms), 1)[0]
    assert -0.6 < slope < -0.4, (slope, rms)
    assert 2.2 < rms[0] / rms[1] < 3.5  # sqrt(8) = 2.83
    # The reported standard errors describe the actual error.
    np.testing.assert_allclose(stderr, rms, rtol=0.3)
    assert rms[-1] < 0.1 * float(jnp.mean(exact))


def test_hutchinson_matches_dense_hessian_on_tiny_mlp():
  with jax.enable_x64(True):
    model = MLP(num_classes=3, hidden=(4,), param_dtype=jnp.float64)
    kx, ky, kp = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(kx, (9, 3), jnp.float64)
    y = jax.random.randint(ky, (9,), 0, 3)
    params = model.init(kp, x)

    def loss(p):
      logits = model.apply(p, x)
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    # Partition: head column k (+ bias k) -> k, hidden kernel -> 3, hidden bias -> 4.
    head_ids = curvature.dense_block_ids(params["params"]["head"])
    hidden = params["params"]["dense_0"]
    ids = {"params": {"head": head_ids,
                      "dense_0": {"kernel": jnp.full(hidden["kernel"].shape, 3),
                                  "bias": jnp.full(hidden["bias"].shape, 4)}}}
    flat, unravel = ravel_pytree(params)
    diag = jnp.diag(jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat))
    flat_ids, _ = ravel_pytree(jax.tree.map(lambda i, p: jnp.broadcast_to(i, p.shape).astype(
        jnp.float64), ids, params))
    dense = jax.ops.segment_sum(diag, flat_ids.astype(jnp.int32), num_segments=5)

    # 16 independent estimates with 256 probes each (one compiled program).
    est = jax.jit(jax.vmap(functools.partial(curvature.hutchinson_block_traces, loss, params, ids,
                                             num_blocks=5, num_probes=256)))(
                                                 key=jax.random.split(jax.random.key(7), 16))
    # The reported standard error matches the spread across repetitions ...
    np.testing.assert_allclose(jnp.std(est.traces, axis=0, ddof=1), jnp.mean(est.stderr, 0),
                               rtol=0.45)
    # ... and pooling the 16 x 256 = 4096 probes lands on the dense-Hessian traces.
    pooled, pooled_err = jnp.mean(est.traces, 0), jnp.sqrt(jnp.mean(est.stderr**2, 0)) / 4
    assert np.all(np.abs(pooled - dense) < 4 * pooled_err + 1e-12)
    single_rms = jnp.mean(jnp.sqrt(jnp.mean((est.traces - dense) ** 2, axis=1)))
    assert float(jnp.sqrt(jnp.mean((pooled - dense) ** 2))) < 0.5 * float(single_rms)
    # Restricting to the head gives the head blocks of the full Hessian.
    head_loss, head = curvature.restrict_to_layer(loss, params, "head")
    restricted = jax.jit(functools.partial(curvature.hutchinson_block_traces, head_loss, head,
                                           head_ids, num_blocks=3, num_probes=2048))(
                                               key=jax.random.key(8))
    assert np.all(np.abs(restricted.traces - dense[:3]) < 4 * restricted.stderr + 1e-12)


def test_naive_estimator_agrees_and_has_no_cross_block_variance():
  with jax.enable_x64(True):
    x, params, loss = _linear_problem()
    exact = curvature.linear_block_traces(x @ params["kernel"] + params["bias"], x)
    ids = curvature.dense_block_ids(params)
    kwargs = dict(num_blocks=C, key=jax.random.key(2), num_probes=512)
    naive = jax.jit(lambda: curvature.hutchinson_block_traces_naive(loss, params, ids,
                                                                    **kwargs))()
    shared = jax.jit(lambda: curvature.hutchinson_block_traces(loss, params, ids, **kwargs))()
    assert np.all(np.abs(naive.traces - exact) < 4 * naive.stderr)
    assert np.all(naive.stderr < shared.stderr)
    # Excluding the bias (-1 ids) estimates the kernel-only traces.
    ids_nobias = curvature.dense_block_ids(params, include_bias=False)
    nobias = jax.jit(lambda: curvature.hutchinson_block_traces_naive(loss, params, ids_nobias,
                                                                     **kwargs))()
    exact_nobias = curvature.linear_block_traces(x @ params["kernel"] + params["bias"], x,
                                                 bias=False)
    assert np.all(np.abs(nobias.traces - exact_nobias) < 4 * nobias.stderr)


def test_diagonal_hessian_over_three_leaves_is_exact():
  # A diagonal Hessian makes Rademacher probes exact (z_i^2 = 1): every estimator must give
  # the block sums of the diagonal, whatever the probes, over every leaf of the pytree.
  h = {"a": jnp.array([2.0, 3.0]), "b": jnp.array([5.0]), "c": jnp.array([7.0, 11.0])}
  ids = {"a": jnp.array([0, 0]), "b": jnp.array([1]), "c": jnp.array([1, -1])}
  loss = lambda p: 0.5 * sum(jnp.sum(h[k] * p[k] ** 2) for k in p)  # noqa: E731
  params = jax.tree.map(jnp.zeros_like, h)
  kwargs = dict(num_blocks=2, key=jax.random.key(0), num_probes=3)
  for estimator in (curvature.hutchinson_block_traces, curvature.hutchinson_block_traces_naive):
    est = estimator(loss, params, ids, **kwargs)
    np.testing.assert_allclose(est.traces, [5.0, 12.0], rtol=1e-6)
    np.testing.assert_allclose(est.stderr, 0.0, atol=1e-6)


def test_bad_arguments_raise_naming_the_argument():
  with jax.enable_x64(True):
    _, params, loss = _linear_problem()
  ids = curvature.dense_block_ids(params)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="num_probes"):
    curvature.hutchinson_block_traces(loss, params, ids, num_blocks=C, key=key, num_probes=0)
  with pytest.raises(ValueError, match="num_blocks"):
    curvature.hutchinson_block_traces(loss, params, ids, num_blocks=0, key=key, num_probes=2)
  with pytest.raises(ValueError, match="block_ids"):
    curvature.hutchinson_block_traces(loss, params, {"kernel": ids["kernel"]}, num_blocks=C,
                                      key=key, num_probes=2)
  with pytest.raises(ValueError, match="probe_batch_size"):
    curvature.hutchinson_block_traces(loss, params, ids, num_blocks=C, key=key, num_probes=2,
                                      probe_batch_size=0)
  with pytest.raises(ValueError, match="layer"):
    curvature.restrict_to_layer(loss, {"params": {"head": params}}, "missing")


# A quadratic 0.5 p^T H p with one leaf of four coordinates and two blocks {0, 1}, {2, 3}:
# a probe's sample for block b is Tr(H_bb) + 2 v_i v_j H_ij (i < j in b), i.e. Tr(H_bb) +- 2 H_ij.
H = np.array([[2.0, 0.5, 0.0, 0.0], [0.5, 3.0, 0.0, 0.0], [0.0, 0.0, 1.0, -0.7],
              [0.0, 0.0, -0.7, 4.0]])
QUAD_IDS = {"p": np.array([0, 0, 1, 1])}  # numpy: importing a test must not start JAX
QUAD_TRACES = np.array([5.0, 5.0])
QUAD_OFFDIAG = np.array([0.5, -0.7])


def _quadratic():
  h = jnp.asarray(H)
  return (lambda p: 0.5 * p["p"] @ h @ p["p"]), {"p": jnp.array([0.3, -1.0, 2.0, 0.5])}


@pytest.mark.parametrize("num_probes", [2, 7, 40])
def test_standard_error_formula_on_a_two_point_distribution(num_probes):
  with jax.enable_x64(True):
    loss, params = _quadratic()
    est = jax.jit(functools.partial(curvature.hutchinson_block_traces, loss, params, QUAD_IDS,
                                    num_blocks=2, num_probes=num_probes))(
                                        key=jax.random.key(num_probes))
  # Each sample is T +- 2h: the mean fixes the fraction of + signs, hence the sample variance.
  signs_mean = (np.asarray(est.traces) - QUAD_TRACES) / (2 * QUAD_OFFDIAG)
  num_plus = (1 + signs_mean) * num_probes / 2
  np.testing.assert_allclose(num_plus, np.round(num_plus), atol=1e-9)  # whole numbers of probes
  variance = (2 * QUAD_OFFDIAG) ** 2 * (1 - signs_mean**2) * num_probes / (num_probes - 1)
  np.testing.assert_allclose(est.stderr, np.sqrt(variance / num_probes), rtol=1e-9, atol=1e-12)


def test_single_probe_has_nan_stderr():
  with jax.enable_x64(True):
    loss, params = _quadratic()
    est = jax.jit(functools.partial(curvature.hutchinson_block_traces, loss, params, QUAD_IDS,
                                    num_blocks=2, num_probes=1))(key=jax.random.key(0))
  assert np.all(np.isnan(est.stderr))
  assert np.all(np.isin(np.round(np.asarray(est.traces) - QUAD_TRACES, 12),
                        np.round(np.stack([2 * QUAD_OFFDIAG, -2 * QUAD_OFFDIAG]), 12)))


def test_chunked_probes_equal_vmapped_probes():
  with jax.enable_x64(True):
    x, params, loss = _linear_problem()
    ids = curvature.dense_block_ids(params)
    kwargs = dict(num_blocks=C, key=jax.random.key(5), num_probes=10)
    whole = jax.jit(lambda: curvature.hutchinson_block_traces(loss, params, ids, **kwargs))()
    chunked = jax.jit(lambda: curvature.hutchinson_block_traces(  # 3 does not divide 10
        loss, params, ids, probe_batch_size=3, **kwargs))()
    np.testing.assert_allclose(chunked.traces, whole.traces, rtol=1e-12)
    np.testing.assert_allclose(chunked.stderr, whole.stderr, rtol=1e-12)


def test_pooled_estimate_is_unbiased_within_standard_errors():
  """Many independent estimates pooled: the mean is within 4 pooled standard errors of the
  exact traces, and those standard errors are small enough for that to mean something."""
  with jax.enable_x64(True):
    x, params, loss = _linear_problem()
    exact = np.asarray(curvature.linear_block_traces(x @ params["kernel"] + params["bias"], x))
    ids = curvature.dense_block_ids(params)
    reps = 64
    est = jax.jit(jax.vmap(functools.partial(
        curvature.hutchinson_block_traces, loss, params, ids, num_blocks=C, num_probes=64,
        probe_batch_size=16)))(key=jax.random.split(jax.random.key(11), reps))
    traces = np.asarray(est.traces)
    pooled = traces.mean(0)
    pooled_err = traces.std(0, ddof=1) / np.sqrt(reps)
    assert np.all(np.abs(pooled - exact) < 4 * pooled_err), (pooled, exact, pooled_err)
    assert np.all(pooled_err < 0.02 * exact)
    # A biased estimator (e.g. one that dropped the bias coordinates) would be caught.
    nobias = np.asarray(curvature.linear_block_traces(x @ params["kernel"] + params["bias"], x,
                                                      bias=False))
    assert np.all(np.abs(pooled - nobias) > 4 * pooled_err)


# --- block ids of a whole model -----------------------------------------------------------
# Pinned by mutation testing (docs/testing.md).


def test_dense_block_ids_of_a_whole_model():
  head = {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}
  whole = {"params": {"hidden": {"kernel": jnp.zeros((4, 3))}, "head": head}}
  for got in (curvature.dense_block_ids(whole), curvature.dense_block_ids(whole["params"])):
    assert got["kernel"].tolist() == [[0, 1]] * 3 and got["bias"].tolist() == [0, 1]
