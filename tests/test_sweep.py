import jax
import numpy as np
import pytest

from conftest import make_linear_train, small_problem
from imbalance_jax import optim, train


def member(tree, s, l):
  return jax.tree.map(lambda a: a[s, l], tree)


def test_exploding_member_does_not_poison_the_others(x64):
  ds, model, params_S = small_problem(num_seeds=2)
  run = make_linear_train(model, ds.class_counts[0], "gd", 0.9)
  rates = np.array([1e-3, 1e-1, 1e308, 1.0])  # 1e308 overflows to inf/NaN
  result = train.Sweep(run)(params_S, ds, rates)
  assert result.final_loss.shape == (2, 4)
  assert not np.any(np.asarray(result.finite[:, 2]))
  solo = jax.jit(run)
  for s in range(2):
    for l in (0, 1, 3):
      seed = lambda tree: jax.tree.map(lambda a: a[s], tree)
      expected = solo(seed(params_S), seed(ds), rates[l])
      got = member(result, s, l)
      assert bool(got.finite)
      np.testing.assert_allclose(got.history["group_loss"], expected.history["group_loss"],
                                 rtol=1e-9)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
                   got.params, expected.params)


def test_sweep_compiles_once_for_the_whole_grid(x64):
  ds, model, params_S = small_problem(num_seeds=3)
  traces = []
  run = make_linear_train(model, ds.class_counts[0], "adam", 0.9)
  counting = run.__class__(objective_fn=lambda p, d: (traces.append(1), run.objective_fn(p, d))[1],
                           make_optimizer=run.make_optimizer, num_steps=run.num_steps,
                           log_every=run.log_every, metrics_fn=run.metrics_fn)
  sweep = train.Sweep(counting)
  sweep(params_S, ds, np.logspace(-4, -1, 8))
  first_traces = len(traces)
  sweep(params_S, ds, np.logspace(-3, 0, 8))  # new values, same shapes: no retrace
  assert sweep._full._cache_size() == 1
  assert len(traces) == first_traces


def test_shared_data_across_seeds(x64):
  ds, model, params_S = small_problem(num_seeds=2)
  shared = jax.tree.map(lambda a: a[0], ds)
  run = make_linear_train(model, shared.class_counts, "gd", 0.0)
  result = train.Sweep(run, data_per_seed=False)(params_S, shared, np.array([0.1, 0.2]))
  expected = jax.jit(run)(jax.tree.map(lambda a: a[1], params_S), shared, 0.2)
  np.testing.assert_allclose(result.final_loss[1, 1], expected.final_loss, rtol=1e-10)


@pytest.mark.parametrize("rates", [[], [0.1, -1.0], [0.0], [np.nan], [[0.1]]])
def test_bad_learning_rates(rates):
  ds, model, params_S = small_problem(num_seeds=1, dtype=np.float32)
  run = make_linear_train(model, ds.class_counts[0])
  with pytest.raises(ValueError, match="learning_rates"):
    train.Sweep(run)(params_S, ds, rates)


def test_mismatched_seed_axes():
  ds, model, params_S = small_problem(num_seeds=2, dtype=np.float32)
  _, _, params_3 = small_problem(num_seeds=3, dtype=np.float32)
  run = make_linear_train(model, ds.class_counts[0])
  with pytest.raises(ValueError, match="seeds"):
    train.Sweep(run)(params_3, ds, [0.1])


def test_member_partition():
  assert train.sweep.member_partition(3, 8, 1) == (1, 1)
  assert train.sweep.member_partition(3, 8, 2) == (1, 2)  # rates divide
  assert train.sweep.member_partition(4, 3, 2) == (2, 1)  # seeds divide
  assert train.sweep.member_partition(3, 3, 2) == (1, 2)  # pad rates, not seeds (data)
  assert train.sweep.member_partition(2, 5, 8) == (2, 4)  # 2 x 8 padded members


def test_plan_layout_padding_and_examples():
  layout = train.sweep.plan_layout(2, 5, 8)
  assert (layout.padded_seeds, layout.padded_rates, layout.num_devices) == (2, 8, 8)
  layout = train.sweep.plan_layout(3, 1, 8, example_shards=2)
  assert layout.mesh_shape == (4, 1, 2) and layout.padded_seeds == 4
  with pytest.raises(ValueError, match="example_shards"):
    train.sweep.plan_layout(2, 5, 8, example_shards=3)


# Several devices (padding, seed/rate/example sharding, processes): tests/test_multidevice.py


def test_keys_per_seed_reach_every_member(x64, tmp_path):
  """Mini-batch shuffling uses keys_S[s] for every rate of seed s, in all drivers."""
  ds, model, params_S = small_problem(num_seeds=2)
  run = train.make_train(train.classification_objective(model.apply),
                         optim.injectable("gd", 0.9),
                         num_steps=6, log_every=3, batching=train.MiniBatch(batch_size=8))
  keys_S = jax.random.split(jax.random.key(7), 2)
  rates = np.array([0.1, 0.3])
  sweep = train.Sweep(run)
  result = sweep(params_S, ds, rates, keys_S)
  seed = lambda tree, s: jax.tree.map(lambda a: a[s], tree)
  for s in range(2):
    solo = jax.jit(run)(seed(params_S, s), seed(ds, s), rates[1], keys_S[s])
    np.testing.assert_allclose(result.history["loss"][s, 1], solo.history["loss"], rtol=1e-12)
  other = sweep(params_S, ds, rates, keys_S[::-1])
  assert not np.allclose(other.history["loss"], result.history["loss"])
  one_program = train.run_sweep(sweep, params_S, ds, rates, keys_S=keys_S)
  np.testing.assert_allclose(one_program.history["loss"], result.history["loss"], rtol=1e-12)
  segmented = train.run_sweep(sweep, params_S, ds, rates, keys_S=keys_S, segment_steps=3,
                              checkpoint_dir=str(tmp_path))
  np.testing.assert_allclose(segmented.history["loss"], result.history["loss"], rtol=1e-12)
  tuned = train.tune_sweep(sweep, params_S, ds, keys_S=keys_S, exponents=(-1.0,),
                           refine_rounds=0, log=lambda _: None)
  np.testing.assert_allclose(tuned.histories[-1.0]["loss"], result.history["loss"][:, 0],
                             rtol=1e-12)
  with pytest.raises(ValueError, match="keys_S"):
    sweep(params_S, ds, rates, keys_S[:1])
