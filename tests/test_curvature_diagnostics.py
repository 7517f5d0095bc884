"""metrics_fn builders recorded inside the scanned training step; summaries."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import curvature, data, optim, train
from imbalance_jax.curvature import study
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


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _head_derivatives(objective, d, c, flat, data):
  """Dense Hessian and gradient of the objective w.r.t. the flattened head parameters."""
  as_params = lambda f: {"params": {"head": {"kernel": f[:d * c].reshape(d, c),  # noqa: E731
                                             "bias": f[d * c:]}}}
  value = lambda f: objective(as_params(f), data)[0]  # noqa: E731
  return jax.hessian(value)(flat), jax.grad(value)(flat)


def _dense_reference(objective, params, data):
  """Independent truth from autodiff: the dense Hessian of the objective w.r.t. the head.

  Head coordinates are flattened as ``[kernel (D*C, row-major: index d*C + k); bias (C)]``.
  """
  head = params["params"]["head"]
  d, c = head["kernel"].shape

  flat = jnp.concatenate([head["kernel"].ravel(), head["bias"]])
  hessian, grad = map(np.asarray, _head_derivatives(objective, d, c, flat, data))
  kernel_idx = np.arange(d * c).reshape(d, c)
  block_idx = np.concatenate([kernel_idx, d * c + np.arange(c)[None]], axis=0)  # [D+1, C]
  y = np.asarray(data.y)
  logits = np.asarray(head["kernel"]).T @ np.asarray(data.x).T + np.asarray(head["bias"])[:, None]
  log_p = logits - np.log(np.exp(logits).sum(0))
  prob_N = np.exp(log_p[y, np.arange(len(y))])
  return {
      "loss": np.mean(-log_p[y, np.arange(len(y))]),
      "grad_norm_C": np.sqrt((grad[block_idx] ** 2).sum(0)),
      "trace_C": np.array([hessian[block_idx[:, k], block_idx[:, k]].sum() for k in range(c)]),
      "group_prob_G": np.array([prob_N[GROUPS[y] == g].mean() for g in (0, 1)]),
      "class_prob_C": np.array([prob_N[y == k].mean() if np.any(y == k) else np.nan
                                for k in range(c)]),
      "_hessian": hessian, "_block_idx": block_idx, "_kernel_idx": kernel_idx}


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
    neg = lambda p: jax.tree.map(jnp.negative, p)  # noqa: E731
    for t, p in ((0, params), (-1, result.params)):
      for prefix, point in (("neg_", neg(p)), ("", p)):
        expected = _dense_reference(objective, point, data)
        for name, value in expected.items():
          if not name.startswith("_"):
            np.testing.assert_allclose(result.history[prefix + name][t], value, rtol=1e-9,
                                       err_msg=prefix + name)
      # Maps of the classes 0, 3 (and input dimensions 1, 2) at +params.
      hessian, block_idx, kernel_idx = (expected["_hessian"], expected["_block_idx"],
                                        expected["_kernel_idx"])
      matrix = np.array([[hessian[block_idx[:, k], block_idx[:, l]].sum() for l in (0, 3)]
                         for k in (0, 3)])
      np.testing.assert_allclose(result.history["trace_matrix_sub"][t], matrix, rtol=1e-9)
      rows = [kernel_idx[a, k] for k in (0, 3) for a in (1, 2)]  # class-major
      np.testing.assert_allclose(result.history["entries_sub"][t], hessian[np.ix_(rows, rows)],
                                 rtol=1e-9, atol=1e-15)
    assert result.history["trace_C"].shape == (3, C)
    assert result.history["trace_matrix_sub"].shape == (3, 2, 2)


@functools.partial(jax.jit, static_argnums=0)
def _head_hessian(objective, params, data):
  def value(head):
    return objective({"params": {**params["params"], "head": head}}, data)[0]
  return jax.hessian(value)(params["params"]["head"])


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
      # Truth: the dense Hessian of the objective w.r.t. the head, the rest of the MLP fixed.
      hessian = _head_hessian(objective, point, data)
      exact = (np.einsum("dkdk->k", hessian["kernel"]["kernel"])
               + np.diag(hessian["bias"]["bias"]))
      np.testing.assert_allclose(out["exact_trace_C"], exact, rtol=1e-10)
      np.testing.assert_allclose(out["loss"], objective(point, data)[0], rtol=1e-12)
      assert np.all(np.abs(out["trace_C"] - exact) < 4 * out["trace_stderr_C"])
      assert np.all(out["trace_stderr_C"] < 0.1 * exact)  # so the check above has teeth
      head_grads = grads["params"]["head"]
      np.testing.assert_allclose(out["grad_norm_C"], np.sqrt(
          np.sum(np.asarray(head_grads["kernel"]) ** 2, 0) + np.asarray(head_grads["bias"]) ** 2),
          rtol=1e-10)
      if point is params:  # the negated diagnostics are those of -params
        neg_out = out
    np.testing.assert_allclose(neg_out["neg_exact_trace_C"], out["exact_trace_C"], rtol=1e-10)
    np.testing.assert_allclose(neg_out["neg_grad_norm_C"], out["grad_norm_C"], rtol=1e-10)
    np.testing.assert_allclose(neg_out["neg_loss"], out["loss"], rtol=1e-12)


def test_rank_correlations_and_closest_steps():
  r = study.rank_correlations([1.0, 2.0, 3.0, 4.0], [1.0, 8.0, 27.0, 64.0])
  assert r["spearman"] == pytest.approx(1.0) and r["loglog_pearson"] == pytest.approx(1.0)
  r = study.rank_correlations([1.0, 2.0, 3.0, 4.0, 0.0], [4.0, 3.0, 2.0, 1.0, 5.0])
  assert r["spearman"] == pytest.approx(-1.0) and r["num_blocks"] == 4  # zero dropped
  few = study.rank_correlations([1.0, 2.0], [1.0, 2.0])
  assert np.isnan(few["spearman"]) and np.isnan(few["loglog_pearson"]) and few["num_blocks"] == 2
  assert study.closest_steps(np.arange(0, 101, 10), [0, 12, 14, 100]) == [0, 1, 10]
  with pytest.raises(ValueError, match="grad_norm_C"):
    study.rank_correlations([1.0, 2.0], [1.0, 2.0, 3.0])
  with pytest.raises(ValueError, match="^learning_rate must be "):
    study.record_run(None, None, None, "gd", -1.0, num_steps=1, log_every=1, metrics_fn=None)
  with pytest.raises(ValueError, match="image_size"):
    data.heavy_tailed_images(jax.random.key(0), 3, 2)


def test_study_tuning_and_records_match_a_direct_tune_sweep_and_train(tmp_path):
  """`select_step_sizes(tune=True)` picks what `train.tune_sweep` of the plain run picks on one
  seed (sparse grid, then half powers, saved under tune/<run name>); `record_runs` is
  `record_run` of each run (a spec or a name), saved under run/<key>."""
  ds = data.heavy_tailed_labels(jax.random.key(0), m=3)  # 7 classes
  model = LinearSoftmax(ds.num_classes)
  params = model.init(jax.random.key(2), ds.x[:1])
  store = train.ResultStore(str(tmp_path / "checkpoints"))
  tuned = study.select_step_sizes(model.apply, params, ds, {"adam": optim.parse_run("adam+m")},
                                  {}, tune=True, num_steps=6, log=lambda *a: None, store=store)
  add_seed = lambda tree: jax.tree.map(lambda v: v[None], tree)  # noqa: E731
  direct = train.make_train(train.classification_objective(model.apply),
                            optim.injectable("adam", 0.9), num_steps=6, log_every=1)
  expected = train.tune_sweep(train.Sweep(direct), add_seed(params), add_seed(ds),
                              log=lambda *a: None)
  assert tuned == {"adam": expected.selection.learning_rate}
  assert store.load("tune/adam+m/round1") is not None
  runs, rates = {"adam": optim.parse_run("adam+m"), "gd": "gd"}, {"adam": 0.01, "gd": 0.1}
  assert study.select_step_sizes(None, None, None, runs, rates, tune=False, num_steps=1) == rates
  groups = data.frequency_groups(np.asarray(ds.class_counts), 2)
  metrics_fns = dict.fromkeys(runs, curvature.linear_curvature_metrics(groups))
  recorded = study.record_runs(model.apply, params, ds, runs, rates, metrics_fns, num_steps=4,
                               log_every=2, store=store, log=lambda *a: None)
  for key, run in runs.items():
    steps, history, final = study.record_run(model.apply, params, ds, run, rates[key],
                                             num_steps=4, log_every=2, metrics_fn=metrics_fns[key])
    assert recorded.steps.tolist() == steps.tolist() == [0, 2, 4]
    jax.tree.map(np.testing.assert_array_equal, recorded.histories[key], history)
    jax.tree.map(np.testing.assert_array_equal, recorded.final_params[key], final)
    assert store.load(f"run/{key}") is not None


def test_hutchinson_record_in_chunks_and_probe_batches_equals_one_pass():
  """A chunked full batch (whose aux drops the logits) with the probes mapped 2 at a time
  (2 + 2 + 1) records what one pass with every probe vmapped records (float64), as
  curvature_cnn's paper preset runs it."""
  with jax.enable_x64(True):
    data = _data(3)
    model = MLP(C, hidden=(6,), param_dtype=jnp.float64)
    params = model.init(jax.random.key(7), data.x)
    objective = train.classification_objective(model.apply)
    features_fn = lambda p, x: model.apply(p, x, return_features=True)[1]  # noqa: E731
    histories = []
    for chunk_size, probe_batch_size in ((None, None), (5, 2)):
      metrics_fn = curvature.hutchinson_curvature_metrics(
          objective, GROUPS, key=jax.random.key(8), num_probes=5, features_fn=features_fn,
          probe_batch_size=probe_batch_size)
      _, history, _ = study.record_run(model.apply, params, data, "adam+m", 0.01, num_steps=2,
                                       log_every=1, metrics_fn=metrics_fn,
                                       batching=train.FullBatch(chunk_size))
      histories.append(history)
    assert set(histories[0]) == set(histories[1])
    for name in histories[0]:
      np.testing.assert_allclose(histories[1][name], histories[0][name], rtol=1e-10,
                                 atol=1e-14, err_msg=name)
