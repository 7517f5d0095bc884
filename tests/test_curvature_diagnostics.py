"""metrics_fn builders recorded inside the scanned training step; summaries."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import curvature, data, losses, optim, train
from imbalance_jax.curvature import study
from imbalance_jax.metrics import blocks
from imbalance_jax.models.linear import LinearSoftmax
from imbalance_jax.models.mlp import MLP
from imbalance_jax.types import Dataset

N, D, C = 12, 4, 5
GROUPS = np.array([0, 0, 1, 1, 1])


def _data(seed=1):
  kx, ky = jax.random.split(jax.random.key(seed))
  x = jax.random.uniform(kx, (N, D), jnp.float64)
  y = jnp.sort(jax.random.randint(ky, (N,), 0, C))
  return Dataset(x=x, y=y, class_counts=jnp.bincount(y, length=C), num_classes=C)


def _expected(objective, params, data, weights_N):
  (_, aux), grads = jax.value_and_grad(objective, has_aux=True)(params, data)
  prob = jnp.exp(-aux["loss_N"])
  groups_N = jnp.asarray(GROUPS)[data.y]
  return {"grad_norm_C": blocks.block_grad_norms(grads, include_bias=True),
          "trace_C": curvature.linear_block_traces(aux["logits"], data.x, weights_N=weights_N),
          "loss": aux["loss"],
          "group_prob_G": jnp.stack([jnp.sum(jnp.where(groups_N == g, prob, 0)) /
                                     jnp.sum(groups_N == g) for g in (0, 1)])}


def test_linear_metrics_recorded_inside_the_scan():
  """Class-weighted objective, so the weighted trace path is covered too."""
  weighting = "inverse"
  with jax.enable_x64(True):
    data = _data()
    model = LinearSoftmax(C, param_dtype=jnp.float64)
    params = model.init(jax.random.key(4), data.x)
    objective = train.classification_objective(model.apply, weighting)
    classes, dims = jnp.array([0, 3]), jnp.array([1, 2])
    metrics_fn = curvature.linear_curvature_metrics(GROUPS, negated=True, weighting=weighting,
                                                    maps={"sub": (classes, dims)})
    run = train.make_train(objective, optim.injectable("adam", 0.9), num_steps=6, log_every=3,
                           metrics_fn=metrics_fn)
    result = jax.jit(run)(params, data, 0.1)
    weights_N = losses.class_weights(data.class_counts, weighting)[data.y]
    neg = lambda p: jax.tree.map(jnp.negative, p)  # noqa: E731
    expected_fn = jax.jit(functools.partial(_expected, objective))
    for t, p in ((0, params), (-1, result.params)):
      for prefix, point in (("", p), ("neg_", neg(p))):
        expected = expected_fn(point, data, weights_N)
        for name, value in expected.items():
          np.testing.assert_allclose(result.history[prefix + name][t], value, rtol=1e-9,
                                     err_msg=prefix + name)
      logits = model.apply(p, data.x)
      np.testing.assert_allclose(result.history["trace_matrix_sub"][t],
                                 curvature.linear_block_trace_matrix(logits, data.x, classes,
                                                                     weights_N=weights_N),
                                 rtol=1e-9)
      np.testing.assert_allclose(result.history["entries_sub"][t],
                                 curvature.linear_hessian_entries(logits, data.x, classes, dims,
                                                                  weights_N=weights_N),
                                 rtol=1e-9)
    assert result.history["trace_C"].shape == (3, C)
    assert result.history["trace_matrix_sub"].shape == (3, 2, 2)


def test_hutchinson_metrics_match_exact_head_traces_on_mlp():
  with jax.enable_x64(True):
    data = _data(2)
    model = MLP(C, hidden=(6,), param_dtype=jnp.float64)
    params = model.init(jax.random.key(5), data.x)
    objective = train.classification_objective(model.apply)
    metrics_fn = jax.jit(curvature.hutchinson_curvature_metrics(
        objective, GROUPS, key=jax.random.key(6), num_probes=2000, negated=True,
        features_fn=lambda p, x: model.apply(p, x, return_features=True)[1]))
    for point in (params, jax.tree.map(jnp.negative, params)):
      (_, aux), grads = jax.value_and_grad(objective, has_aux=True)(point, data)
      out = metrics_fn(point, grads, aux, data)
      feats = model.apply(point, data.x, return_features=True)[1]
      exact = curvature.linear_block_traces(aux["logits"], feats)
      np.testing.assert_allclose(out["exact_trace_C"], exact, rtol=1e-10)
      assert np.all(np.abs(out["trace_C"] - exact) < 4 * out["trace_stderr_C"])
      np.testing.assert_allclose(out["grad_norm_C"], blocks.block_grad_norms(grads,
                                                                              include_bias=True))
      if point is params:  # the negated diagnostics are those of -params
        neg_out = out
    np.testing.assert_allclose(neg_out["neg_exact_trace_C"], out["exact_trace_C"], rtol=1e-10)
    np.testing.assert_allclose(neg_out["neg_grad_norm_C"], out["grad_norm_C"], rtol=1e-10)


def test_rank_correlations_and_closest_steps():
  r = study.rank_correlations([1.0, 2.0, 3.0, 4.0], [1.0, 8.0, 27.0, 64.0])
  assert r["spearman"] == pytest.approx(1.0) and r["loglog_pearson"] == pytest.approx(1.0)
  r = study.rank_correlations([1.0, 2.0, 3.0, 4.0, 0.0], [4.0, 3.0, 2.0, 1.0, 5.0])
  assert r["spearman"] == pytest.approx(-1.0) and r["num_blocks"] == 4  # zero dropped
  assert np.isnan(study.rank_correlations([1.0, 2.0], [1.0, 2.0])["spearman"])
  assert study.closest_steps(np.arange(0, 101, 10), [0, 12, 14, 100]) == [0, 1, 10]
  with pytest.raises(ValueError, match="grad_norm_C"):
    study.rank_correlations([1.0, 2.0], [1.0, 2.0, 3.0])
  with pytest.raises(ValueError, match="learning_rate"):
    study.record_run(None, None, None, "gd", -1.0, num_steps=1, log_every=1, metrics_fn=None)
  with pytest.raises(ValueError, match="image_size"):
    data.heavy_tailed_images(jax.random.key(0), 3, 2)
