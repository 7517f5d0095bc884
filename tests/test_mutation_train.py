"""Tests that kill the mutants of `imbalance_jax.train` other tests let survive.

Each test pins a detail a mutation testing run (mutmut, see docs/testing.md)
showed unchecked. They call the helpers directly on tiny arrays (no model, no
optimizer), so each takes well under a second after JAX has started.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from imbalance_jax import losses, train
from imbalance_jax.train import batching, loop, objective
from imbalance_jax.types import make_dataset


def _data(n=7, num_classes=3):
  x = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
  return make_dataset(x, np.arange(n) % num_classes, num_classes)


# --- batching -----------------------------------------------------------------------------


def test_batching_config_messages_and_defaults():
  assert batching.FullBatch().chunk_size is None
  assert batching.FullBatch(chunk_size=1).chunk_size == 1
  with pytest.raises(ValueError, match=r"^batching.chunk_size must be >= 1, got 0$"):
    batching.FullBatch(chunk_size=0)
  mb = batching.MiniBatch(batch_size=6)
  assert (mb.accumulation_steps, mb.eval_chunk_size, mb.micro_batch_size) == (1, None, 6)
  assert batching.MiniBatch(batch_size=6, accumulation_steps=3).micro_batch_size == 2
  assert batching.MiniBatch(batch_size=1, eval_chunk_size=1).eval_chunk_size == 1
  with pytest.raises(ValueError, match=r"^batching.batch_size must be >= 1, got 0$"):
    batching.MiniBatch(batch_size=0)
  with pytest.raises(ValueError, match=r"^batching.accumulation_steps must be >= 1, got 0$"):
    batching.MiniBatch(batch_size=4, accumulation_steps=0)
  with pytest.raises(ValueError, match=r"^batching.accumulation_steps=4 must divide "
                                       r"batching.batch_size=6$"):
    batching.MiniBatch(batch_size=6, accumulation_steps=4)
  with pytest.raises(ValueError, match=r"^batching.eval_chunk_size must be >= 1, got 0$"):
    batching.MiniBatch(batch_size=4, eval_chunk_size=0)


def test_take_slice_and_num_examples_touch_only_x_and_y():
  ds = _data()
  assert batching.num_examples(ds) == 7
  part = batching.take(ds, jnp.array([[4, 0]]))
  np.testing.assert_array_equal(part.y, [[1, 0]])
  np.testing.assert_array_equal(part.x, [[[8, 9], [0, 1]]])
  np.testing.assert_array_equal(part.class_counts, ds.class_counts)  # global leaf kept
  part = batching.slice_examples(ds, 2, 3)
  np.testing.assert_array_equal(part.y, [2, 0, 1])
  np.testing.assert_array_equal(part.x[:, 0], [4, 6, 8])
  np.testing.assert_array_equal(part.class_counts, ds.class_counts)


def test_chunked_shapes_and_none_parts():
  ds = _data(7)
  main, rest = batching.chunked(ds, 3)
  assert main.x.shape == (2, 3, 2) and main.y.shape == (2, 3)
  np.testing.assert_array_equal(main.y, [[0, 1, 2], [0, 1, 2]])
  np.testing.assert_array_equal(main.x[1, :, 0], [6, 8, 10])
  np.testing.assert_array_equal(rest.y, [0])
  np.testing.assert_array_equal(rest.x, [[12, 13]])
  np.testing.assert_array_equal(main.class_counts, ds.class_counts)
  main, rest = batching.chunked(ds, 7)
  assert rest is None and main.y.shape == (1, 7)
  main, rest = batching.chunked(ds, 10)  # fewer examples than one chunk
  assert main is None
  np.testing.assert_array_equal(rest.y, ds.y)


def _mean_fn(data, index):
  """Sums that are means over the chunk's examples, and aux with per-example entries."""
  sums = {"mean_x": jnp.mean(data.x[:, 0]), "mean_y": jnp.mean(data.y.astype(jnp.float32))}
  aux = {"x_N": data.x[:, 0], "index_N": jnp.full(data.y.shape, index), "dropped": index}
  return sums, aux


@pytest.mark.parametrize("chunk_size", [2, 3, 7, 4])
def test_accumulate_equals_one_pass_and_keeps_per_example_entries(chunk_size):
  ds = _data(7)
  means, aux = batching.accumulate(_mean_fn, ds, chunk_size)
  np.testing.assert_allclose(means["mean_x"], np.mean(np.asarray(ds.x[:, 0])), rtol=1e-6)
  np.testing.assert_allclose(means["mean_y"], np.mean(np.asarray(ds.y)), rtol=1e-6)
  np.testing.assert_array_equal(aux["x_N"], ds.x[:, 0])  # example order kept
  # Each example carries the index of its chunk (the remainder's is the next one).
  np.testing.assert_array_equal(aux["index_N"], np.arange(7) // chunk_size)
  if chunk_size < 7:
    assert sorted(aux) == ["index_N", "x_N"]  # entries without the _N suffix are dropped
  else:
    assert sorted(aux) == ["dropped", "index_N", "x_N"]  # one call, aux unchanged


def test_accumulate_without_chunks_is_one_call_with_index_zero():
  ds = _data(5)
  calls = []

  def fn(data, index):
    calls.append((data.y.shape, index.dtype, int(index)))
    return _mean_fn(data, index)

  for chunk_size in (None, 5, 9):
    calls.clear()
    means, aux = batching.accumulate(fn, ds, chunk_size)
    assert calls == [((5,), jnp.int32, 0)]
    assert aux["dropped"] == 0
  # Only a remainder-free split: the scan runs, fn sees int32 chunk indices.
  means, aux = batching.accumulate(_mean_fn, ds, 1)
  assert aux["index_N"].dtype == jnp.int32
  np.testing.assert_array_equal(aux["index_N"], np.arange(5))


def test_chunked_and_accumulate_keep_the_token_axis_of_sequence_labels():
  ds = _data(5)
  ds = ds.replace(y=jnp.stack([ds.y, ds.y + 10], axis=1))  # labels [N, T=2]
  main, rest = batching.chunked(ds, 2)
  assert main.y.shape == (2, 2, 2) and rest.y.shape == (1, 2)
  np.testing.assert_array_equal(main.y[1], [[2, 12], [0, 10]])
  _, aux = batching.accumulate(lambda d, i: (jnp.mean(d.x), {"y_N": d.y.reshape(-1)}), ds, 2)
  np.testing.assert_array_equal(aux["y_N"], np.asarray(ds.y).reshape(-1))


def test_accumulate_of_sequence_outputs_flattens_tokens_in_order():
  ds = _data(5)

  def fn(data, index):
    tokens = jnp.stack([data.x[:, 0], data.x[:, 1]], axis=1)  # [n, T=2]
    return jnp.mean(tokens), {"token_N": tokens.reshape(-1)}

  mean, aux = batching.accumulate(fn, ds, 2)
  np.testing.assert_allclose(mean, np.mean(np.asarray(ds.x)), rtol=1e-6)
  np.testing.assert_array_equal(aux["token_N"], np.asarray(ds.x).reshape(-1))


# --- objective ----------------------------------------------------------------------------


def _linear_apply(params, x):
  return x @ params


def _objective_data():
  x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]], np.float32)
  return make_dataset(x, np.array([0, 0, 0, 1]), 2)


def test_objective_outputs_by_hand():
  ds = _objective_data()
  params = jnp.array([[1.0, -1.0], [0.5, 2.0]])
  value, aux = objective.classification_objective(_linear_apply)(params, ds)
  logits = np.asarray(ds.x) @ np.asarray(params)
  log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  loss_N = -log_probs[np.arange(4), np.asarray(ds.y)]
  assert sorted(aux) == ["label_N", "logits", "loss", "loss_N", "prediction_N"]
  np.testing.assert_allclose(value, loss_N.mean(), rtol=1e-6)
  np.testing.assert_allclose(aux["loss"], loss_N.mean(), rtol=1e-6)
  np.testing.assert_allclose(aux["loss_N"], loss_N, rtol=1e-6)
  np.testing.assert_allclose(aux["logits"], logits, rtol=1e-6)
  np.testing.assert_array_equal(aux["label_N"], ds.y)
  np.testing.assert_array_equal(aux["prediction_N"], logits.argmax(1))


@pytest.mark.parametrize("weighting", ["inverse", "inverse_sqrt"])
def test_weighted_objective_reports_the_unweighted_loss(weighting):
  ds = _objective_data()
  params = jnp.array([[1.0, -1.0], [0.5, 2.0]])
  value, aux = objective.classification_objective(_linear_apply, weighting)(params, ds)
  _, plain = objective.classification_objective(_linear_apply)(params, ds)
  weights = losses.class_weights(ds.class_counts, weighting)
  expected = losses.weighted_mean_loss(plain["loss_N"], ds.y, weights)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  assert abs(float(value) - float(plain["loss"])) > 1e-3  # the weighting matters here
  np.testing.assert_allclose(aux["loss"], plain["loss"], rtol=1e-6)  # unweighted
  assert value.dtype == aux["loss_N"].dtype


def test_objective_rejects_an_unknown_weighting_eagerly():
  with pytest.raises(ValueError, match="weighting"):
    objective.classification_objective(_linear_apply, "squared")
  with pytest.raises(ValueError, match="weighting"):
    objective.classification_objective(_linear_apply, "squared", stateful=True)


def test_objective_flattens_sequence_labels():
  ds = _objective_data()
  seq = ds.replace(x=jnp.stack([ds.x, 2 * ds.x], axis=1), y=jnp.stack([ds.y, 1 - ds.y], axis=1))
  params = jnp.array([[1.0, -1.0], [0.5, 2.0]])
  value, aux = objective.classification_objective(_linear_apply)(params, seq)  # logits [4, 2, 2]
  assert aux["loss_N"].shape == aux["label_N"].shape == aux["prediction_N"].shape == (8,)
  np.testing.assert_array_equal(aux["label_N"], np.asarray(seq.y).reshape(-1))
  np.testing.assert_array_equal(aux["prediction_N"],
                                np.asarray(aux["logits"]).argmax(-1).reshape(-1))
  np.testing.assert_allclose(value, np.mean(np.asarray(aux["loss_N"])), rtol=1e-6)


class _RecordingApply:
  """A stand-in for Flax's ``Module.apply`` that records how it was called."""

  def __init__(self):
    self.calls = []

  def __call__(self, variables, x, *, train, rngs, mutable=None):
    self.calls.append({"keys": sorted(variables), "train": train, "rngs": sorted(rngs),
                       "mutable": mutable})
    logits = x @ variables["params"]
    if mutable is not None:
      return logits, {"batch_stats": {"mean": variables["batch_stats"]["mean"] + 1.0}}
    return logits


def test_stateful_objective_passes_train_mutable_and_rngs():
  ds = _objective_data()
  params = jnp.array([[1.0, -1.0], [0.5, 2.0]])
  state = {"batch_stats": {"mean": jnp.zeros(2)}}
  key = jax.random.key(0)
  apply = _RecordingApply()
  fn = objective.classification_objective(apply, stateful=True)
  value, aux = fn(params, ds, state, key, True)  # training with state: mutable, dropout rng
  assert apply.calls[-1] == {"keys": ["batch_stats", "params"], "train": True,
                             "rngs": ["dropout"], "mutable": ["batch_stats"]}
  assert isinstance(aux["model_state"], dict)
  np.testing.assert_array_equal(aux["model_state"]["batch_stats"]["mean"], [1.0, 1.0])
  _, plain = objective.classification_objective(_linear_apply)(params, ds)
  np.testing.assert_allclose(value, plain["loss"], rtol=1e-6)
  np.testing.assert_allclose(aux["loss_N"], plain["loss_N"], rtol=1e-6)

  _, aux = fn(params, ds, state, key, False)  # evaluation: no rng, state unchanged
  assert apply.calls[-1] == {"keys": ["batch_stats", "params"], "train": False, "rngs": [],
                             "mutable": None}
  assert aux["model_state"] is state
  _, aux = fn(params, ds, state, None, True)  # training without a key: no dropout rng
  assert apply.calls[-1]["rngs"] == [] and apply.calls[-1]["mutable"] == ["batch_stats"]
  _, aux = fn(params, ds, {}, key, True)  # training without state (dropout only)
  assert apply.calls[-1] == {"keys": ["params"], "train": True, "rngs": ["dropout"],
                             "mutable": None}
  assert aux["model_state"] == {}


# --- loop ---------------------------------------------------------------------------------


def _squares(params, data):
  """Least squares on the labels: objective and aux with a per-example loss."""
  loss_N = (data.x @ params - data.y.astype(params.dtype)) ** 2
  return jnp.mean(loss_N), {"loss_N": loss_N}


def _squares_train(**kwargs):
  kwargs.setdefault("num_steps", 4)
  kwargs.setdefault("log_every", 2)
  return train.make_train(_squares, optax.sgd, **kwargs)


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


def test_split_data_and_its_message():
  ds = _data(4)
  assert loop.split_data(ds) == (ds, {})
  got_train, held_out = loop.split_data({"train": ds, "test": 1, "val": 2})
  assert got_train is ds and held_out == {"test": 1, "val": 2}
  with pytest.raises(ValueError, match=r"^data given as a dict of splits must have a 'train' "
                                       r"entry, got \['a', 'test'\]$"):
    loop.split_data({"test": ds, "a": ds})


def test_init_state_and_messages():
  ds = _data(5)
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


def test_track_initial_max_and_finite():
  state = _squares_train().init(jnp.zeros(2), _data(4), 0.1)
  track = train.Train._track
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


def test_step_keys_fold_in_the_step():
  run = _squares_train(batching=batching.MiniBatch(2))
  key = jax.random.key(9)
  state = run.init(jnp.zeros(2), _data(4), 0.1, key)
  got = run._step_key(state.replace(step=jnp.int32(3)))
  np.testing.assert_array_equal(jax.random.key_data(got),
                                jax.random.key_data(jax.random.fold_in(key, 3)))
  assert _squares_train()._step_key(_squares_train().init(jnp.zeros(2), _data(4), 0.1)) is None


def _counting_objective(params, data, model_state, key, training):
  """Least squares whose state counts training passes (as a float, stored as int)."""
  value, aux = _squares(params, data)
  stats = model_state["stats"]
  aux["model_state"] = {"stats": {"count": stats["count"] + (1.0 if training else 100.0),
                                  "keyed": stats["keyed"] + (0 if key is None else 1)}}
  return value, aux


def test_stateful_run_carries_state_with_its_dtypes_and_records_in_eval_mode():
  ds = _data(4)
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


def test_weighted_objective_keeps_float32_under_x64():
  # Class weights come out in the default float dtype (float64 under x64); the objective
  # keeps the dtype of the per-example losses, so float32 runs stay float32.
  with jax.enable_x64(True):
    ds = _objective_data()
    params = jnp.array([[1.0, -1.0], [0.5, 2.0]], jnp.float32)
    value, aux = objective.classification_objective(_linear_apply, "inverse")(params, ds)
    assert aux["loss_N"].dtype == jnp.float32 and value.dtype == jnp.float32


def test_accumulate_passes_an_integer_chunk_index_and_the_chunk_shapes():
  # fn looks up a per-chunk value (needs an integer index) and returns sums whose shapes
  # follow x's feature axis and y's one-hot classes: the scan's initial carry must match.
  ds = _data(5)
  per_chunk = jnp.array([10.0, 20.0, 30.0])

  def fn(data, index):
    sums = {"x_mean": jnp.mean(data.x, axis=0),
            "y_freq": jnp.mean(jax.nn.one_hot(data.y, 3), axis=0),
            "weight": per_chunk[index] * jnp.ones(())}
    return sums, {}

  means, _ = batching.accumulate(fn, ds, 2)  # chunks of 2, 2 and a remainder of 1
  np.testing.assert_allclose(means["x_mean"], np.asarray(ds.x).mean(0), rtol=1e-6)
  np.testing.assert_allclose(means["y_freq"], [0.4, 0.4, 0.2], rtol=1e-6)
  np.testing.assert_allclose(means["weight"], (2 * 10 + 2 * 20 + 30) / 5, rtol=1e-6)


def test_accumulate_keeps_the_dtype_of_the_sums_under_x64():
  with jax.enable_x64(True):
    ds = _data(5)
    means, _ = batching.accumulate(lambda d, i: (jnp.mean(d.x, dtype=jnp.float32), {}), ds, 2)
    assert means.dtype == jnp.float32



def test_accumulate_chunk_indices_are_int32_under_x64_and_trailing_axes_are_kept():
  with jax.enable_x64(True):
    ds = _data(5)

    def fn(data, index):
      return jnp.mean(data.x), {"index_N": jnp.full(data.y.shape, index), "x_N": data.x}

    _, aux = batching.accumulate(fn, ds, 2)  # two scanned chunks and a remainder
    assert aux["index_N"].dtype == jnp.int32
    np.testing.assert_array_equal(aux["index_N"], [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(aux["x_N"], ds.x)  # [n, 2]: the feature axis is kept


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


def test_tracked_loss_is_aux_loss_and_aux_may_be_anything():
  ds = _data(4)
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


def test_stateful_evaluation_runs_in_eval_mode_and_keeps_state_without_updates():
  ds = _data(4)
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
    ds = _data(4)
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


def test_accumulate_gives_fn_int32_indices_under_x64():
  seen = []

  def fn(data, index):
    seen.append(index.dtype)
    return jnp.mean(data.x), {}

  with jax.enable_x64(True):
    batching.accumulate(fn, _data(5), 2)  # scanned chunks, then the remainder
  assert seen and all(dtype == jnp.int32 for dtype in seen), seen


def test_init_state_dtypes_follow_float32_params_under_x64():
  with jax.enable_x64(True):
    state = _squares_train().init(jnp.zeros(2, jnp.float32), _data(4), 0.1)
    assert state.initial_loss.dtype == state.max_loss.dtype == jnp.float32


def test_optimizer_update_sees_the_parameters():
  # Weight decay reads the parameters in `update`: w <- w - lr (grad + 0.5 w).
  ds = _data(4)
  params = jnp.array([0.1, -0.2])
  run = train.make_train(_squares, lambda lr: optax.chain(optax.add_decayed_weights(0.5),
                                                          optax.sgd(lr)), num_steps=1)
  result = jax.jit(run)(params, ds, 0.1)
  x, y, w = np.asarray(ds.x, np.float64), np.asarray(ds.y, np.float64), np.asarray(params)
  grad = 2 * x.T @ (x @ w - y) / 4
  np.testing.assert_allclose(result.params, w - 0.1 * (grad + 0.5 * w), rtol=1e-5)


def test_stateful_held_out_evaluation_uses_the_model_state():
  ds, test = _data(4), _data(3)
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
