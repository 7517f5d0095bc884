"""Chunked full-batch steps, mini-batches, model state and dropout keys inside `make_train`."""

import chex
import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_data, small_problem
from imbalance_jax import data, metrics, optim, train
from imbalance_jax.train import batching


def first(tree):
  return jax.tree.map(lambda a: a[0], tree)


def linear_run(model, counts, batching_=None, num_steps=6, log_every=2, name="adam",
               weighting="none"):
  groups = data.frequency_groups(np.asarray(counts), num_groups=3)
  return train.make_train(train.classification_objective(model.apply, weighting),
                          optim.injectable(name, 0.9), num_steps=num_steps, log_every=log_every,
                          metrics_fn=metrics.classification_metrics(groups, per_class=True),
                          batching=batching_)


@pytest.mark.parametrize("chunk_size", [5, 8, 24])
def test_chunked_full_batch_equals_one_pass(x64, chunk_size):
  ds, model, params_S = small_problem(num_seeds=1)
  ds, params = first(ds), first(params_S)  # n = 24: chunks of 5 leave a remainder of 4
  one_pass = jax.jit(linear_run(model, ds.class_counts, weighting="inverse"))(params, ds, 1e-2)
  chunked = jax.jit(linear_run(model, ds.class_counts, train.FullBatch(chunk_size),
                               weighting="inverse"))(params, ds, 1e-2)
  for key in ("loss", "accuracy", "group_loss", "class_loss", "class_accuracy", "class_prob"):
    np.testing.assert_allclose(chunked.history[key], one_pass.history[key], rtol=1e-12,
                               atol=1e-14, err_msg=key)
  chex.assert_trees_all_close(chunked.params, one_pass.params, rtol=1e-12)
  for field in ("initial_loss", "final_loss", "max_loss"):
    np.testing.assert_allclose(getattr(chunked, field), getattr(one_pass, field), rtol=1e-12)


def test_accumulate_matches_gradient_of_the_whole_objective(x64):
  ds, model, params_S = small_problem(num_seeds=1)
  ds, params = first(ds), first(params_S)
  objective = train.classification_objective(model.apply, "inverse_sqrt")

  def chunk(batch, index):
    del index
    (value, aux), grads = jax.value_and_grad(objective, has_aux=True)(params, batch)
    return (value, grads), aux

  (value, grads), aux = batching.accumulate(chunk, ds, 7)
  (expected, expected_aux), expected_grads = jax.value_and_grad(objective, has_aux=True)(
      params, ds)
  np.testing.assert_allclose(value, expected, rtol=1e-12)
  chex.assert_trees_all_close(grads, expected_grads, rtol=1e-11, atol=1e-15)
  np.testing.assert_allclose(aux["loss_N"], expected_aux["loss_N"], rtol=1e-12)
  np.testing.assert_array_equal(aux["label_N"], ds.y)
  assert "logits" not in aux  # [N, C] never assembled


def reference_minibatch_params(model, params, ds, key, learning_rate, batch_size, num_steps):
  """Plain Python loop: permutation per epoch, optax Adam, no lax.scan."""
  n = ds.y.shape[0]
  shuffle_key = jax.random.fold_in(key, 2**31 - 1)
  opt = optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8)
  state = opt.init(params)
  loss_fn = lambda p, x, y: optax.losses.softmax_cross_entropy_with_integer_labels(
      model.apply(p, x), y).mean()
  steps_per_epoch = n // batch_size
  for step in range(num_steps):
    epoch, pos = divmod(step, steps_per_epoch)
    order = np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n))
    idx = order[pos * batch_size:(pos + 1) * batch_size]
    grads = jax.grad(loss_fn)(params, ds.x[idx], ds.y[idx])
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params


@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_minibatch_matches_a_python_loop(x64, accumulation_steps):
  ds, model, params_S = small_problem(num_seeds=1)
  ds, params = first(ds), first(params_S)
  key = jax.random.key(7)
  run = linear_run(model, ds.class_counts,
                   train.MiniBatch(batch_size=10, accumulation_steps=accumulation_steps),
                   num_steps=6, log_every=2)  # 2 steps an epoch: 3 epochs, 4 examples unused
  result = jax.jit(run)(params, ds, 1e-2, key)
  expected = reference_minibatch_params(model, params, ds, key, 1e-2, 10, 6)
  chex.assert_trees_all_close(result.params, expected, rtol=1e-10)
  # Recorded metrics are those of the whole training set at the logged iterates.
  full_loss = optax.losses.softmax_cross_entropy_with_integer_labels(
      model.apply(expected, ds.x), ds.y).mean()
  np.testing.assert_allclose(result.history["loss"][-1], full_loss, rtol=1e-10)
  np.testing.assert_allclose(result.final_loss, full_loss, rtol=1e-10)


def test_minibatch_shuffling_depends_only_on_the_key(x64):
  ds, model, params_S = small_problem(num_seeds=1)
  ds, params = first(ds), first(params_S)
  run = jax.jit(linear_run(model, ds.class_counts, train.MiniBatch(batch_size=8)))
  a = run(params, ds, 1e-2, jax.random.key(1))
  b = run(params, ds, 1e-2, jax.random.key(1))
  c = run(params, ds, 1e-2, jax.random.key(2))
  np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
  assert not np.allclose(a.history["loss"][1:], c.history["loss"][1:])


def test_held_out_split_metrics_are_recorded(x64):
  ds_S, model, params_S = small_problem(num_seeds=2)
  train_ds, test_ds, params = first(ds_S), jax.tree.map(lambda a: a[1], ds_S), first(params_S)
  run = linear_run(model, train_ds.class_counts, train.MiniBatch(batch_size=8,
                                                                 eval_chunk_size=5))
  result = jax.jit(run)(params, {"train": train_ds, "test": test_ds}, 1e-2, jax.random.key(0))
  test_loss = optax.losses.softmax_cross_entropy_with_integer_labels(
      model.apply(result.params, test_ds.x), test_ds.y).mean()
  np.testing.assert_allclose(result.history["test/loss"][-1], test_loss, rtol=1e-10)
  assert result.history["test/group_loss"].shape == result.history["group_loss"].shape


class BatchNormNet(nn.Module):
  num_classes: int
  dropout: float = 0.3

  @nn.compact
  def __call__(self, x, train: bool = False):
    dtype = x.dtype  # float64 parameters under x64
    h = nn.Dense(16, param_dtype=dtype)(x)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.5, param_dtype=dtype)(h)
    h = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(h))
    return nn.Dense(self.num_classes, param_dtype=dtype)(h)


def stateful_problem(num_seeds=2, dropout=0.3, dtype=jnp.float32):
  ds, _, _ = small_problem(num_seeds=num_seeds, dtype=dtype)
  model = BatchNormNet(ds.num_classes, dropout)
  variables = jax.vmap(lambda k: model.init(k, ds.x[0, :2]))(
      jax.random.split(jax.random.key(3), num_seeds))
  groups = data.frequency_groups(np.asarray(ds.class_counts[0]), num_groups=3)
  return ds, model, variables, groups


def stateful_run(model, groups, batching_=None, num_steps=4):
  return train.make_train(train.classification_objective(model.apply, stateful=True),
                          optim.injectable("adam", 0.9), num_steps=num_steps, log_every=2,
                          metrics_fn=metrics.classification_metrics(groups), stateful=True,
                          batching=batching_)


def test_batchnorm_and_dropout_sweep_over_seeds_and_step_sizes(x64):
  ds, model, variables, groups = stateful_problem(dtype=jnp.float64)
  run = stateful_run(model, groups)
  keys = jax.random.split(jax.random.key(0), 2)
  rates = jnp.array([1e-3, 1e-2, 1e-1])
  sweep = jax.jit(jax.vmap(jax.vmap(run, (None, None, 0, None)), (0, 0, None, 0)))
  result = sweep(variables, ds, rates, keys)
  chex.assert_shape(result.history["loss"], (2, 3, 3))
  assert np.all(np.isfinite(result.history["loss"]))
  # Running averages moved away from their init and differ across step sizes.
  mean = result.params["batch_stats"]["BatchNorm_0"]["mean"]
  assert not np.allclose(mean, 0.0)
  assert not np.allclose(mean[:, 0], mean[:, 2])
  # Recorded metrics use the running averages (evaluation mode, no dropout).
  final = jax.tree.map(lambda a: a[1, 2], result.params)
  logits = model.apply(final, ds.x[1], train=False)
  eval_loss = optax.losses.softmax_cross_entropy_with_integer_labels(logits, ds.y[1]).mean()
  # The eager apply and the compiled sweep round the float32 batch statistics differently.
  np.testing.assert_allclose(result.history["loss"][1, 2, -1], eval_loss, rtol=1e-8)
  np.testing.assert_allclose(result.final_loss[1, 2], eval_loss, rtol=1e-8)
  # Each member equals its solo run.
  solo = jax.jit(run)(jax.tree.map(lambda a: a[1], variables), first_of(ds, 1), rates[2],
                      keys[1])
  # Flax keeps batch statistics in float32, so agreement is to float32 rounding.
  np.testing.assert_allclose(solo.history["loss"], result.history["loss"][1, 2], rtol=1e-6)


def first_of(tree, i):
  return jax.tree.map(lambda a: a[i], tree)


def test_dropout_keys_differ_across_steps_and_seeds_but_are_reproducible():
  ds, model, variables, groups = stateful_problem(num_seeds=1, dropout=0.5)
  ds, variables = first(ds), first(variables)
  run = stateful_run(model, groups, num_steps=2)
  state = run.init(variables, ds, 1e-2, jax.random.key(5))
  keys = [run._step_key(state.replace(step=jnp.asarray(s))) for s in (0, 1)]
  masks = [nn.Dropout(0.5).apply({}, jnp.ones(64), deterministic=False, rngs={"dropout": k})
           for k in keys]
  assert not np.array_equal(masks[0], masks[1])
  a = jax.jit(run)(variables, ds, 1e-2, jax.random.key(5))
  b = jax.jit(run)(variables, ds, 1e-2, jax.random.key(5))
  c = jax.jit(run)(variables, ds, 1e-2, jax.random.key(6))
  chex.assert_trees_all_equal(a.params, b.params)
  assert not np.allclose(a.params["params"]["Dense_0"]["kernel"],
                         c.params["params"]["Dense_0"]["kernel"])


def test_stateful_state_survives_a_checkpoint(tmp_path):
  ds, model, variables, groups = stateful_problem(num_seeds=1)
  ds, variables = first(ds), first(variables)
  run = stateful_run(model, groups, train.MiniBatch(batch_size=8), num_steps=4)
  whole = jax.jit(run)(variables, ds, 1e-2, jax.random.key(2))
  state = run.init(variables, ds, 1e-2, jax.random.key(2))
  state, _ = jax.jit(lambda s: run.run(s, ds, 2))(state)
  store = train.ResultStore(tmp_path)
  store.save("state", flax.serialization.to_state_dict(state))
  restored = flax.serialization.from_state_dict(state, store.load("state"))
  assert restored.model_state and restored.key is not None
  state, _ = jax.jit(lambda s: run.run(s, ds, 2))(restored)
  result, _ = run.finish(state, ds)
  chex.assert_trees_all_close(result.params, whole.params, rtol=1e-6)


def test_stateless_full_batch_step_draws_no_randomness():
  ds, model, params_S = small_problem(num_seeds=1, dtype=jnp.float32)
  ds, params = first(ds), first(params_S)
  run = linear_run(model, ds.class_counts)
  jaxpr = str(jax.make_jaxpr(run)(params, ds, 1e-2))
  assert "random" not in jaxpr and "threefry" not in jaxpr
  state = run.init(params, ds, 1e-2)
  assert state.model_state == {} and state.key is None


def test_bad_batching_is_rejected():
  ds, model, params_S = small_problem(num_seeds=1)
  ds, params = first(ds), first(params_S)
  with pytest.raises(ValueError, match="batching.batch_size"):
    train.MiniBatch(batch_size=0)
  with pytest.raises(ValueError, match="accumulation_steps"):
    train.MiniBatch(batch_size=10, accumulation_steps=3)
  with pytest.raises(ValueError, match="chunk_size"):
    train.FullBatch(chunk_size=0)
  with pytest.raises(ValueError, match="batch_size=100 exceeds"):
    linear_run(model, ds.class_counts, train.MiniBatch(100)).init(params, ds, 0.1,
                                                                  jax.random.key(0))
  with pytest.raises(ValueError, match="key"):
    linear_run(model, ds.class_counts, train.MiniBatch(8)).init(params, ds, 0.1)
  with pytest.raises(ValueError, match="batching"):
    train.make_train(train.classification_objective(model.apply), optim.injectable("gd", 0.0),
                     num_steps=2, batching="minibatch")
  with pytest.raises(ValueError, match="'train'"):
    linear_run(model, ds.class_counts).init(params, {"test": ds}, 0.1)


# --- the batching helpers on tiny arrays (no model, no optimizer) -------------------------
# Pinned by mutation testing (docs/testing.md); in 32 bits only (`no_float64`), as written.


@pytest.mark.no_float64
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


@pytest.mark.no_float64
def test_take_slice_and_num_examples_touch_only_x_and_y():
  ds = tiny_data()
  assert batching.num_examples(ds) == 7
  part = batching.take(ds, jnp.array([[4, 0]]))
  np.testing.assert_array_equal(part.y, [[1, 0]])
  np.testing.assert_array_equal(part.x, [[[8, 9], [0, 1]]])
  np.testing.assert_array_equal(part.class_counts, ds.class_counts)  # global leaf kept
  part = batching.slice_examples(ds, 2, 3)
  np.testing.assert_array_equal(part.y, [2, 0, 1])
  np.testing.assert_array_equal(part.x[:, 0], [4, 6, 8])
  np.testing.assert_array_equal(part.class_counts, ds.class_counts)


@pytest.mark.no_float64
def test_chunked_shapes_and_none_parts():
  ds = tiny_data(7)
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


@pytest.mark.no_float64
@pytest.mark.parametrize("chunk_size", [2, 3, 7, 4])
def test_accumulate_equals_one_pass_and_keeps_per_example_entries(chunk_size):
  ds = tiny_data(7)
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


@pytest.mark.no_float64
def test_accumulate_without_chunks_is_one_call_with_index_zero():
  ds = tiny_data(5)
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


@pytest.mark.no_float64
def test_chunked_and_accumulate_keep_the_token_axis_of_sequence_labels():
  ds = tiny_data(5)
  ds = ds.replace(y=jnp.stack([ds.y, ds.y + 10], axis=1))  # labels [N, T=2]
  main, rest = batching.chunked(ds, 2)
  assert main.y.shape == (2, 2, 2) and rest.y.shape == (1, 2)
  np.testing.assert_array_equal(main.y[1], [[2, 12], [0, 10]])
  _, aux = batching.accumulate(lambda d, i: (jnp.mean(d.x), {"y_N": d.y.reshape(-1)}), ds, 2)
  np.testing.assert_array_equal(aux["y_N"], np.asarray(ds.y).reshape(-1))


@pytest.mark.no_float64
def test_accumulate_of_sequence_outputs_flattens_tokens_in_order():
  ds = tiny_data(5)

  def fn(data, index):
    tokens = jnp.stack([data.x[:, 0], data.x[:, 1]], axis=1)  # [n, T=2]
    return jnp.mean(tokens), {"token_N": tokens.reshape(-1)}

  mean, aux = batching.accumulate(fn, ds, 2)
  np.testing.assert_allclose(mean, np.mean(np.asarray(ds.x)), rtol=1e-6)
  np.testing.assert_array_equal(aux["token_N"], np.asarray(ds.x).reshape(-1))


@pytest.mark.no_float64
def test_accumulate_passes_an_integer_chunk_index_and_the_chunk_shapes():
  # fn looks up a per-chunk value (needs an integer index) and returns sums whose shapes
  # follow x's feature axis and y's one-hot classes: the scan's initial carry must match.
  ds = tiny_data(5)
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
    ds = tiny_data(5)
    means, _ = batching.accumulate(lambda d, i: (jnp.mean(d.x, dtype=jnp.float32), {}), ds, 2)
    assert means.dtype == jnp.float32




def test_accumulate_chunk_indices_are_int32_under_x64_and_trailing_axes_are_kept():
  with jax.enable_x64(True):
    ds = tiny_data(5)

    def fn(data, index):
      return jnp.mean(data.x), {"index_N": jnp.full(data.y.shape, index), "x_N": data.x}

    _, aux = batching.accumulate(fn, ds, 2)  # two scanned chunks and a remainder
    assert aux["index_N"].dtype == jnp.int32
    np.testing.assert_array_equal(aux["index_N"], [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(aux["x_N"], ds.x)  # [n, 2]: the feature axis is kept



def test_accumulate_gives_fn_int32_indices_under_x64():
  seen = []

  def fn(data, index):
    seen.append(index.dtype)
    return jnp.mean(data.x), {}

  with jax.enable_x64(True):
    batching.accumulate(fn, tiny_data(5), 2)  # scanned chunks, then the remainder
  assert seen and all(dtype == jnp.int32 for dtype in seen), seen

