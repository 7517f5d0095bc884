"""`make_train`: the training loop against a step-by-step optax loop and numpy.

A real linear run equals a manual optax loop, segments equal one run, divergence
is tracked. Then, on tiny least-squares problems: defaults and exact messages,
the initial state and its dtypes, the tracked initial/max loss and finiteness, full
batch (also in chunks) and mini-batches on the documented schedule against numpy
gradient descent, step keys, a stateful model's state and evaluation mode,
held-out splits and what the metrics function sees.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_data, make_linear_train, small_problem
from imbalance_jax import optim, train
from imbalance_jax.train import batching, loop
from imbalance_jax.train.state import track_loss
from imbalance_jax.types import make_dataset


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


# --- the loop on tiny least-squares problems (no model) -----------------------------------
# Pinned by mutation testing (docs/testing.md); in 32 bits only (`no_float64`), as written.


def _squares(params, data):
  """Least squares on the labels: objective and aux with a per-example loss."""
  loss_N = (data.x @ params - data.y.astype(params.dtype)) ** 2
  return jnp.mean(loss_N), {"loss_N": loss_N}


def _squares_train(**kwargs):
  kwargs.setdefault("num_steps", 4)
  kwargs.setdefault("log_every", 2)
  return train.make_train(_squares, optax.sgd, **kwargs)


@pytest.mark.no_float64
def test_make_train_defaults_and_messages():
  run = train.make_train(_squares, optax.sgd, num_steps=3)
  assert run.log_every == 1 and run.stateful is False and run.batching == batching.FullBatch()
  np.testing.assert_array_equal(run.history_steps, [0, 1, 2, 3])
  assert run.metrics_fn(None, None, {"loss": 2.5}, None) == {"loss": 2.5}
  assert not run.minibatch and not run.needs_key
  mb = _squares_train(batching=batching.MiniBatch(2))
  assert mb.minibatch and mb.needs_key
  assert train.make_train(_squares, optax.sgd, num_steps=2, stateful=1).stateful is True
  with pytest.raises(ValueError, match=r"^num_steps must be >= 1, got 0$"):
    train.make_train(_squares, optax.sgd, num_steps=0)
  with pytest.raises(ValueError, match=r"^log_every must be >= 1, got 0$"):
    train.make_train(_squares, optax.sgd, num_steps=2, log_every=0)
  with pytest.raises(ValueError, match=r"^log_every=3 must divide num_steps=4$"):
    train.make_train(_squares, optax.sgd, num_steps=4, log_every=3)
  with pytest.raises(ValueError, match=r"^batching must be a FullBatch or MiniBatch, got 'x'$"):
    train.make_train(_squares, optax.sgd, num_steps=2, batching="x")
  with pytest.raises(ValueError, match=r"^objective_fn must be callable, got 3$"):
    train.make_train(3, optax.sgd, num_steps=2)


@pytest.mark.no_float64
def test_split_data_and_its_message():
  ds = tiny_data(4)
  assert loop.split_data(ds) == (ds, {})
  got_train, held_out = loop.split_data({"train": ds, "test": 1, "val": 2})
  assert got_train is ds and held_out == {"test": 1, "val": 2}
  with pytest.raises(ValueError, match=r"^data given as a dict of splits must have a 'train' "
                                       r"entry, got \['a', 'test'\]$"):
    loop.split_data({"test": ds, "a": ds})


@pytest.mark.no_float64
def test_init_state_and_messages():
  ds = tiny_data(5)
  params = jnp.zeros(2, jnp.float32)
  state = _squares_train().init(params, ds, 0.5)
  assert state.learning_rate.dtype == jnp.float32 and float(state.learning_rate) == 0.5
  assert state.step.dtype == jnp.int32 and int(state.step) == 0
  assert np.isnan(state.initial_loss) and state.initial_loss.dtype == jnp.float32
  assert float(state.max_loss) == -np.inf and state.max_loss.dtype == jnp.float32
  assert state.finite.dtype == jnp.bool_ and bool(state.finite)
  assert state.key is None and state.model_state == {}
  keyed = _squares_train().init(params, ds, 0.5, jax.random.key(3))
  assert keyed.key.dtype == jnp.uint32  # raw key data, checkpointable
  np.testing.assert_array_equal(keyed.key, jax.random.key_data(jax.random.key(3)))
  raw = _squares_train().init(params, ds, 0.5, jax.random.PRNGKey(3))
  np.testing.assert_array_equal(raw.key, keyed.key)
  mb = _squares_train(batching=batching.MiniBatch(5))
  mb.init(params, ds, 0.5, jax.random.key(0))  # batch_size == n is fine
  with pytest.raises(ValueError, match=r"^batching.batch_size=6 exceeds the 5 training "
                                       r"examples$"):
    _squares_train(batching=batching.MiniBatch(6)).init(params, ds, 0.5, jax.random.key(0))
  with pytest.raises(ValueError, match=r"^mini-batch training shuffles with the member's key: "
                                       r"pass key \(keys_S for a Sweep\)$"):
    mb.init(params, ds, 0.5)
  with pytest.raises(ValueError, match=r"^with stateful=True, pass the model's full variables "
                                       r"dict \{'params': ..., 'batch_stats': ...\} as params$"):
    _squares_train(stateful=True).init(params, ds, 0.5)
  with pytest.raises(ValueError, match=r"^num_steps=3 must be a multiple of log_every=2$"):
    _squares_train().run(state, ds, 3)


@pytest.mark.no_float64
def test_track_initial_max_and_finite():
  state = _squares_train().init(jnp.zeros(2), tiny_data(4), 0.1)
  track = track_loss
  state = track(state, jnp.float32(2.0))
  assert (float(state.initial_loss), float(state.max_loss), bool(state.finite)) == (2, 2, True)
  later = track(state.replace(step=jnp.int32(1)), jnp.float32(5.0))
  assert (float(later.initial_loss), float(later.max_loss), bool(later.finite)) == (2, 5, True)
  lower = track(later.replace(step=jnp.int32(2)), jnp.float32(3.0))
  assert float(lower.max_loss) == 5
  blown = track(later.replace(step=jnp.int32(2)), jnp.float32(np.inf))
  assert (float(blown.initial_loss), float(blown.max_loss), bool(blown.finite)) == (2, 5, False)
  assert bool(track(blown, jnp.float32(1.0)).finite) is False  # stays False
  quiet = track(later.replace(step=jnp.int32(0)), jnp.float32(np.nan), track_value=False)
  assert (float(quiet.initial_loss), float(quiet.max_loss), bool(quiet.finite)) == (2, 5, False)
  assert bool(track(later, jnp.float32(7.0), track_value=False).finite)
  assert float(track(later, jnp.float32(7.0), track_value=False).max_loss) == 5
  assert track(later, jnp.float64(1.0)).max_loss.dtype == later.max_loss.dtype


def _gd_reference(params, x, y, lr, num_steps, batches=None):
  """Plain-numpy gradient descent on mean squared error; ``batches[t]``: step t's indices."""
  w, losses = np.asarray(params, np.float64), []
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  for t in range(num_steps + 1):
    losses.append(np.mean((x @ w - y) ** 2))
    if t == num_steps:
      break
    xb, yb = (x, y) if batches is None else (x[batches[t]], y[batches[t]])
    w = w - lr * 2 * xb.T @ (xb @ w - yb) / len(yb)
  return w, np.array(losses)


@pytest.mark.no_float64
def test_full_batch_run_equals_numpy_gradient_descent():
  ds = make_dataset(np.array([[1.0, 0.5], [0.2, 1.0], [1.0, 1.0], [0.3, 0.1]], np.float32),
                    np.array([0, 1, 2, 1]), 3)
  params = jnp.array([0.1, -0.2])
  for chunk_size in (None, 3):
    run = _squares_train(batching=batching.FullBatch(chunk_size))
    result = jax.jit(run)(params, ds, 0.1)
    w, losses = _gd_reference(params, ds.x, ds.y, 0.1, 4)
    np.testing.assert_allclose(result.params, w, rtol=1e-5)
    np.testing.assert_allclose(result.history["loss"], losses[::2], rtol=1e-5)
    np.testing.assert_allclose(result.initial_loss, losses[0], rtol=1e-5)
    np.testing.assert_allclose(result.final_loss, losses[-1], rtol=1e-5)
    np.testing.assert_allclose(result.max_loss, losses.max(), rtol=1e-5)
    assert bool(result.finite)


def _minibatch_order(key, step, n, batch_size):
  """The documented schedule: epoch e permutes with fold_in(shuffle_key, e)."""
  shuffle_key = jax.random.fold_in(key, 2**31 - 1)
  epoch, position = divmod(step, n // batch_size)
  order = np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n))
  return order[position * batch_size:(position + 1) * batch_size]


@pytest.mark.no_float64
def test_minibatch_run_equals_numpy_gradient_descent_on_the_documented_batches():
  x = np.array([[1.0, 0.5], [0.2, 1.0], [1.0, 1.0], [0.3, 0.1], [0.7, 0.2]], np.float32)
  ds = make_dataset(x, np.array([0, 1, 2, 1, 0]), 3)
  params, key = jnp.array([0.1, -0.2]), jax.random.key(4)
  for accumulation_steps in (1, 2):
    run = _squares_train(num_steps=6, batching=batching.MiniBatch(
        2, accumulation_steps=accumulation_steps, eval_chunk_size=3))
    state = run.init(params, ds, 0.1, key)
    for step in (0, 1, 2, 5):
      index = run._batch(state.replace(step=jnp.int32(step)), ds)
      assert index.shape == (accumulation_steps, 2 // accumulation_steps)
      np.testing.assert_array_equal(index.reshape(-1), _minibatch_order(key, step, 5, 2))
    result = jax.jit(run)(params, ds, 0.1, key)
    batches = [_minibatch_order(key, t, 5, 2) for t in range(6)]
    w, losses = _gd_reference(params, ds.x, ds.y, 0.1, 6, batches)
    np.testing.assert_allclose(result.params, w, rtol=1e-5)
    # Logged losses are full-set evaluations at steps 0, 2, 4, 6.
    np.testing.assert_allclose(result.history["loss"], losses[::2], rtol=1e-5)
    np.testing.assert_allclose(result.initial_loss, losses[0], rtol=1e-5)
    np.testing.assert_allclose(result.max_loss, losses[::2].max(), rtol=1e-5)


@pytest.mark.no_float64
def test_step_keys_fold_in_the_step():
  run = _squares_train(batching=batching.MiniBatch(2))
  key = jax.random.key(9)
  state = run.init(jnp.zeros(2), tiny_data(4), 0.1, key)
  got = run._step_key(state.replace(step=jnp.int32(3)))
  np.testing.assert_array_equal(jax.random.key_data(got),
                                jax.random.key_data(jax.random.fold_in(key, 3)))
  assert _squares_train()._step_key(_squares_train().init(jnp.zeros(2), tiny_data(4), 0.1)) is None


def _counting_objective(params, data, model_state, key, training):
  """Least squares whose state counts training passes (as a float, stored as int)."""
  value, aux = _squares(params, data)
  stats = model_state["stats"]
  aux["model_state"] = {"stats": {"count": stats["count"] + (1.0 if training else 100.0),
                                  "keyed": stats["keyed"] + (0 if key is None else 1)}}
  return value, aux


@pytest.mark.no_float64
def test_stateful_run_carries_state_with_its_dtypes_and_records_in_eval_mode():
  ds = tiny_data(4)
  variables = {"params": jnp.array([0.1, -0.2]),
               "stats": {"count": jnp.int32(0), "keyed": jnp.int32(0)}}
  for batching_, passes in ((batching.FullBatch(), 4), (batching.MiniBatch(2, 2), 8)):
    run = train.make_train(_counting_objective, optax.sgd, num_steps=4, log_every=2,
                           stateful=True, batching=batching_)
    result = jax.jit(run)(variables, ds, 0.01, jax.random.key(0))
    # Evaluation passes (the recorded metrics) do not change the state.
    assert int(result.params["stats"]["count"]) == passes
    assert int(result.params["stats"]["keyed"]) == passes  # every training pass has a key
    assert result.params["stats"]["count"].dtype == jnp.int32
    assert sorted(result.params) == ["params", "stats"]
  run = train.make_train(_counting_objective, optax.sgd, num_steps=2, stateful=True)
  result = jax.jit(run)(variables, ds, 0.01)  # no key: full batch needs none
  assert int(result.params["stats"]["keyed"]) == 0 and int(result.params["stats"]["count"]) == 2


def _max_objective(params, data):
  """A loss that is not a mean over examples, so chunking it is visible: the max."""
  loss_N = (data.x @ params - data.y.astype(params.dtype)) ** 2
  return jnp.max(loss_N), {"loss_N": loss_N}


def _chunked_max(params, x, y, chunk_size):
  """What chunked evaluation of `_max_objective` gives: the size-weighted mean of chunk maxes."""
  loss = (np.asarray(x, np.float64) @ np.asarray(params, np.float64) - np.asarray(y)) ** 2
  chunks = [loss[i:i + chunk_size] for i in range(0, len(loss), chunk_size)]
  return sum(c.max() * len(c) for c in chunks) / len(loss)


def _param_metrics(params, grads, aux, data):
  return {"loss": aux["loss"], "w0": params[0], "n": jnp.asarray(data.y.shape[0])}


@pytest.mark.no_float64
def test_chunk_sizes_reach_every_pass_and_held_out_splits_are_recorded():
  x = np.array([[1.0, 0.5], [0.2, 1.0], [1.0, 1.0], [0.3, 0.1], [0.7, 0.2]], np.float32)
  ds = make_dataset(x, np.array([0, 1, 2, 1, 0]), 3)
  test = make_dataset(x[:3] * 2, np.array([2, 0, 1]), 3)
  params = jnp.array([0.1, -0.2])
  # Full batch in chunks of 2: the step (objective, tracked loss) and the held-out
  # evaluation both see the chunks.
  run = train.make_train(_max_objective, optax.sgd, num_steps=2, log_every=2,
                         batching=batching.FullBatch(2), metrics_fn=_param_metrics)
  result = jax.jit(run)(params, {"train": ds, "test": test}, 0.0)  # lr 0: params stay
  np.testing.assert_allclose(result.initial_loss, _chunked_max(params, x, ds.y, 2), rtol=1e-6)
  np.testing.assert_allclose(result.history["loss"], _chunked_max(params, x, ds.y, 2), rtol=1e-6)
  np.testing.assert_allclose(result.history["test/loss"],
                             _chunked_max(params, test.x, test.y, 2), rtol=1e-6)
  np.testing.assert_array_equal(result.history["test/n"], [3, 3])  # the split's own data
  np.testing.assert_allclose(result.history["test/w0"], [0.1, 0.1], rtol=1e-6)
  assert sorted(result.history) == ["loss", "n", "test/loss", "test/n", "test/w0", "w0"]
  # Mini-batches: recorded values are evaluations in chunks of eval_chunk_size.
  run = train.make_train(_max_objective, optax.sgd, num_steps=2, log_every=2,
                         batching=batching.MiniBatch(2, eval_chunk_size=3),
                         metrics_fn=_param_metrics)
  result = jax.jit(run)(params, {"train": ds, "test": test}, 0.0, jax.random.key(0))
  np.testing.assert_allclose(result.history["loss"], _chunked_max(params, x, ds.y, 3), rtol=1e-6)
  np.testing.assert_allclose(result.history["test/loss"],
                             _chunked_max(params, test.x, test.y, 3), rtol=1e-6)
  np.testing.assert_allclose(result.final_loss, _chunked_max(params, x, ds.y, 3), rtol=1e-6)
  np.testing.assert_array_equal(result.history["n"], [5, 5])
  np.testing.assert_allclose(result.history["w0"], [0.1, 0.1], rtol=1e-6)


@pytest.mark.no_float64
def test_tracked_loss_is_aux_loss_and_aux_may_be_anything():
  ds = tiny_data(4)
  params = jnp.array([0.1, -0.2])

  def doubled(params, data):  # objective 2 x mse, reported loss mse (like a weighted loss)
    value, aux = _squares(params, data)
    return 2 * value, {"loss": value}

  result = jax.jit(train.make_train(doubled, optax.sgd, num_steps=2, log_every=2))(params, ds, 0.0)
  mse = float(_squares(params, ds)[0])
  np.testing.assert_allclose([result.initial_loss, result.final_loss, result.max_loss],
                             [mse] * 3, rtol=1e-6)
  np.testing.assert_allclose(result.history["loss"], [mse, mse], rtol=1e-6)
  # An objective without an aux dict: the objective is the tracked loss.
  plain = train.make_train(lambda p, d: (_squares(p, d)[0], None), optax.sgd, num_steps=2,
                           metrics_fn=lambda p, g, aux, d: aux["loss"])
  result = jax.jit(plain)(params, ds, 0.0)
  np.testing.assert_allclose(result.history, [mse] * 3, rtol=1e-6)


@pytest.mark.no_float64
def test_stateful_evaluation_runs_in_eval_mode_and_keeps_state_without_updates():
  ds = tiny_data(4)
  params = jnp.array([0.1, -0.2])

  def noisy(params, data, model_state, key, training):
    # Training passes see "dropout" (+1); evaluation passes must not. No state update.
    value, aux = _squares(params, data)
    return value + (1.0 if training else 0.0), {"loss": value + (1.0 if training else 0.0)}

  variables = {"params": params, "stats": {"mean": jnp.float32(3.0)}}
  run = train.make_train(noisy, optax.sgd, num_steps=2, log_every=2, stateful=True)
  result = jax.jit(run)(variables, ds, 0.0, jax.random.key(0))
  mse = float(_squares(params, ds)[0])
  np.testing.assert_allclose(result.history["loss"], [mse, mse], rtol=1e-6)
  np.testing.assert_allclose(result.final_loss, mse, rtol=1e-6)
  assert float(result.params["stats"]["mean"]) == 3.0


@pytest.mark.no_float64
def test_full_batch_metrics_see_the_step_gradient_and_parameters():
  x = np.array([[1.0, 0.5], [0.2, 1.0], [1.0, 1.0], [0.3, 0.1]], np.float32)
  ds = make_dataset(x, np.array([0, 1, 2, 1]), 3)
  params = jnp.array([0.1, -0.2])

  def metrics_fn(params, grads, aux, data):
    return {"grad": grads, "w": params, "loss": aux["loss"]}

  run = train.make_train(_squares, optax.sgd, num_steps=2, log_every=2, metrics_fn=metrics_fn)
  result = jax.jit(run)(params, {"train": ds}, 0.1)
  w, _ = _gd_reference(params, x, ds.y, 0.1, 2)
  w0 = np.asarray(params, np.float64)
  grad0 = 2 * x.T @ (x @ w0 - np.asarray(ds.y)) / 4
  np.testing.assert_allclose(result.history["grad"][0], grad0, rtol=1e-5)
  np.testing.assert_allclose(result.history["w"][0], w0, rtol=1e-6)
  np.testing.assert_allclose(result.history["w"][1], w, rtol=1e-5)
  grad2 = 2 * x.T @ (x @ w - np.asarray(ds.y)) / 4  # the final iterate's gradient
  np.testing.assert_allclose(result.history["grad"][1], grad2, rtol=1e-4)


def test_float32_run_stays_float32_under_x64():
  with jax.enable_x64(True):
    ds = tiny_data(4)
    ds = ds.replace(x=ds.x.astype(jnp.float32))
    result = jax.jit(_squares_train())(jnp.array([0.1, -0.2], jnp.float32), ds, 0.01)
    for name in ("initial_loss", "final_loss", "max_loss"):
      assert getattr(result, name).dtype == jnp.float32, name


def test_minibatch_tracks_the_loss_only_at_logged_steps():
  # With batches of one the full-set loss peaks at the unlogged step 3 (3.6, against
  # 1.36, 1.18 and 2.04 at the logged steps 0, 2, 4): max_loss covers the logged ones.
  x = np.array([[1.0, 0.5], [0.2, 1.0], [1.0, 1.0], [0.3, 0.1], [0.7, 0.2]], np.float32)
  ds = make_dataset(x, np.array([0, 1, 2, 1, 0]), 3)
  params, key = jnp.array([0.1, -0.2], jnp.float32), jax.random.key(0)
  run = _squares_train(num_steps=4, batching=batching.MiniBatch(1))
  result = jax.jit(run)(params, ds, 0.5, key)
  batches = [_minibatch_order(key, t, 5, 1) for t in range(4)]
  _, losses = _gd_reference(params, x, ds.y, 0.5, 4, batches)
  assert losses[3] > 1.5 * losses[[0, 2, 4]].max()
  np.testing.assert_allclose(result.max_loss, losses[[0, 2, 4]].max(), rtol=1e-5)
  np.testing.assert_allclose(result.history["loss"], losses[::2], rtol=1e-5)
  assert run.init(params, ds, 0.5, key).learning_rate.dtype == jnp.float32
  with jax.enable_x64(True):
    assert run.init(params, ds, 0.5, key).learning_rate.dtype == jnp.float32


def test_init_state_dtypes_follow_float32_params_under_x64():
  with jax.enable_x64(True):
    state = _squares_train().init(jnp.zeros(2, jnp.float32), tiny_data(4), 0.1)
    assert state.initial_loss.dtype == state.max_loss.dtype == jnp.float32


@pytest.mark.no_float64
def test_optimizer_update_sees_the_parameters():
  # Weight decay reads the parameters in `update`: w <- w - lr (grad + 0.5 w).
  ds = tiny_data(4)
  params = jnp.array([0.1, -0.2])
  run = train.make_train(_squares, lambda lr: optax.chain(optax.add_decayed_weights(0.5),
                                                          optax.sgd(lr)), num_steps=1)
  result = jax.jit(run)(params, ds, 0.1)
  x, y, w = np.asarray(ds.x, np.float64), np.asarray(ds.y, np.float64), np.asarray(params)
  grad = 2 * x.T @ (x @ w - y) / 4
  np.testing.assert_allclose(result.params, w - 0.1 * (grad + 0.5 * w), rtol=1e-5)


@pytest.mark.no_float64
def test_stateful_held_out_evaluation_uses_the_model_state():
  ds, test = tiny_data(4), tiny_data(3)
  params = jnp.array([0.1, -0.2])

  def shifted(params, data, model_state, key, training):
    # In evaluation mode the loss is shifted by a stored statistic (as BatchNorm uses its
    # running averages); nothing is updated.
    value, aux = _squares(params, data)
    value = value + (0.0 if training else model_state["stats"]["shift"])
    return value, {"loss": value}

  variables = {"params": params, "stats": {"shift": jnp.float32(3.0)}}
  run = train.make_train(shifted, optax.sgd, num_steps=2, log_every=2, stateful=True)
  result = jax.jit(run)(variables, {"train": ds, "test": test}, 0.0)
  np.testing.assert_allclose(result.history["test/loss"],
                             [float(_squares(params, test)[0]) + 3.0] * 2, rtol=1e-6)
