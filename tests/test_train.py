import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import make_linear_train, small_problem
from imbalance_jax import optim, train


def first(tree):
  return jax.tree.map(lambda a: a[0], tree)


def test_train_equals_manual_optax_loop(x64):
  ds, model, params_S = small_problem(num_seeds=1)
  data, params = first(ds), first(params_S)
  run = make_linear_train(model, data.class_counts, "adam", 0.9, num_steps=12, log_every=3)
  result = jax.jit(run)(params, data, 1e-2)

  opt = optax.adam(1e-2, b1=0.9, b2=0.999, eps=1e-8)
  state, p, losses = opt.init(params), params, []
  loss_fn = lambda p: optax.losses.softmax_cross_entropy_with_integer_labels(
      model.apply(p, data.x), data.y).mean()
  for _ in range(12):
    loss, g = jax.value_and_grad(loss_fn)(p)
    losses.append(loss)
    updates, state = opt.update(g, state, p)
    p = optax.apply_updates(p, updates)
  losses.append(loss_fn(p))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10), result.params, p)
  np.testing.assert_allclose(result.history["loss"], np.array(losses)[::3], rtol=1e-10)
  assert result.history["group_loss"].shape == (5, 3)
  np.testing.assert_array_equal(run.history_steps, [0, 3, 6, 9, 12])
  np.testing.assert_allclose(result.initial_loss, losses[0], rtol=1e-12)
  np.testing.assert_allclose(result.final_loss, losses[-1], rtol=1e-12)
  np.testing.assert_allclose(result.max_loss, max(losses), rtol=1e-12)
  assert bool(result.finite)


def test_segments_equal_one_run(x64):
  ds, model, params_S = small_problem(num_seeds=1)
  data, params = first(ds), first(params_S)
  run = make_linear_train(model, data.class_counts, "sign_descent", 0.9, num_steps=12,
                          log_every=3)
  whole = jax.jit(run)(params, data, 1e-2)
  state = run.init(params, data, 1e-2)
  state, h1 = run.run(state, data, 6)
  state, h2 = run.run(state, data, 6)
  result, final = run.finish(state, data)
  np.testing.assert_allclose(np.concatenate([h1["loss"], h2["loss"], final["loss"][None]]),
                             whole.history["loss"], rtol=1e-12)
  np.testing.assert_allclose(result.final_loss, whole.final_loss, rtol=1e-12)


def test_divergence_is_tracked(x64):
  ds, model, params_S = small_problem(num_seeds=1)
  data, params = first(ds), first(params_S)
  run = make_linear_train(model, data.class_counts, "gd", 0.0, num_steps=12, log_every=3)
  exploded = jax.jit(run)(params, data, 1e308)
  assert not bool(exploded.finite)
  calm = jax.jit(run)(params, data, 1e-3)
  assert bool(calm.finite) and np.isclose(calm.max_loss, calm.initial_loss)


def test_reweighted_objective_reports_unweighted_loss(x64):
  ds, model, params_S = small_problem(num_seeds=1)
  data, params = first(ds), first(params_S)
  objective = train.classification_objective(model.apply, "inverse")
  value, aux = objective(params, data)
  np.testing.assert_allclose(aux["loss"], aux["loss_N"].mean())
  w = np.asarray(ds.class_counts[0], float)
  w = (1 / w) / np.sum((w / w.sum()) * (1 / w))
  np.testing.assert_allclose(value, np.mean(w[np.asarray(data.y)] * np.asarray(aux["loss_N"])))


def test_make_train_validates():
  objective = lambda p, d: (jnp.sum(p), {})
  with pytest.raises(ValueError, match="num_steps"):
    train.make_train(objective, optim.injectable("gd", 0.0), num_steps=0)
  with pytest.raises(ValueError, match="log_every"):
    train.make_train(objective, optim.injectable("gd", 0.0), num_steps=10, log_every=3)
  with pytest.raises(ValueError, match="weighting"):
    train.classification_objective(lambda p, x: x, weighting="balanced")
