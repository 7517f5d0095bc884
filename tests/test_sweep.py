"""`Sweep`: one compiled program for a grid of seeds x step sizes, and its layout.

Every member of a swept grid equals a direct `Train` run (an exploding member
poisons none of the others), the grid compiles once, data may be shared by all
seeds, and per-seed keys reach every member in every driver. Then, on hand-built
inputs: learning-rate checks, layout planning, data specs and the placement
helpers (several devices: `test_multidevice.py`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from conftest import make_linear_train, small_problem
from imbalance_jax import optim, train
from imbalance_jax.train import sweep as sweep_lib
from imbalance_jax.types import Dataset


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


# --- learning rates, layout planning, data specs and placement on hand-built inputs -------
# Pinned by mutation testing (docs/testing.md); in mutmut's fast selection. In 32 bits only
# (`no_float64`), as they were written.


def dataset(n, seeds=None, dtype=np.float32):
  lead = () if seeds is None else (seeds,)
  return Dataset(x=np.zeros(lead + (n, 3), dtype), y=np.zeros(lead + (n,), np.int32),
                 class_counts=np.ones(lead + (2,), np.int32), num_classes=2)


@pytest.mark.no_float64
def test_check_learning_rates_messages():
  np.testing.assert_array_equal(sweep_lib.check_learning_rates([0.5, 2]), [0.5, 2.0])
  assert sweep_lib.check_learning_rates([1]).dtype == np.float64
  with pytest.raises(ValueError, match=r"^learning_rates must be a non-empty 1-d array, got "
                     r"shape \(0,\)$"):
    sweep_lib.check_learning_rates([])
  with pytest.raises(ValueError, match=r"got shape \(1, 1\)$"):
    sweep_lib.check_learning_rates([[0.1]])
  with pytest.raises(ValueError, match=r"^learning_rates must be finite and positive, got "
                     r"\[0.1, inf\]$"):
    sweep_lib.check_learning_rates([0.1, np.inf])


@pytest.mark.no_float64
def test_leading_size():
  assert sweep_lib._leading_size({"a": np.zeros((3, 2)), "b": np.zeros(3)}) == 3
  with pytest.raises(ValueError, match=r"^expected one leading \(seed\) axis size, got sizes "
                     r"\[2, 3\]$"):
    sweep_lib._leading_size({"a": np.zeros((3, 2)), "b": np.zeros(2)})


@pytest.mark.no_float64
def test_layout_padding_and_devices():
  layout = sweep_lib.Layout(3, 5, (2, 4, 2))
  assert (layout.padded_seeds, layout.padded_rates, layout.num_devices) == (4, 8, 16)
  assert [layout.pad_width(w) for w in (1, 4, 5, 8)] == [4, 4, 8, 8]
  exact = sweep_lib.Layout(4, 8, (2, 4, 1))
  assert (exact.padded_seeds, exact.padded_rates, exact.num_devices) == (4, 8, 8)
  assert sweep_lib._divisors(12) == [1, 2, 3, 4, 6, 12] and sweep_lib._divisors(1) == [1]


@pytest.mark.no_float64
@pytest.mark.parametrize("seeds, rates, devices, shards, mesh", [
    (3, 8, 2, 1, (1, 2, 1)),   # rates divide: no padding
    (4, 3, 2, 1, (2, 1, 1)),   # seeds divide
    (3, 3, 2, 1, (1, 2, 1)),   # equal padding: pad rates, not seeds (a seed copies data)
    (2, 5, 8, 1, (2, 4, 1)),   # 16 members either way: fewer padded seeds
    (4, 4, 4, 1, (4, 1, 1)),   # no padding either way: more seed shards
    (1, 1, 1, 1, (1, 1, 1)),
    (2, 5, 8, 2, (2, 2, 2)),
    (3, 1, 8, 2, (4, 1, 2)),
    (1, 3, 8, 8, (1, 1, 8)),
])
def test_plan_layout_choices(seeds, rates, devices, shards, mesh):
  layout = sweep_lib.plan_layout(seeds, rates, devices, example_shards=shards)
  assert layout.mesh_shape == mesh
  assert (layout.num_seeds, layout.num_rates) == (seeds, rates)
  assert sweep_lib.plan_layout(seeds, rates, devices, example_shards=shards) == layout


@pytest.mark.no_float64
def test_plan_layout_refuses_bad_arguments():
  with pytest.raises(ValueError, match=r"^example_shards=3 must divide the device count 8$"):
    sweep_lib.plan_layout(2, 5, 8, example_shards=3)
  for name, args in [("num_seeds", (0, 1, 1)), ("num_rates", (1, 0, 1)),
                     ("num_devices", (1, 1, 0))]:
    with pytest.raises(ValueError, match=f"^{name} must be >= 1"):
      sweep_lib.plan_layout(*args)
  with pytest.raises(ValueError, match="^example_shards must be >= 1"):
    sweep_lib.plan_layout(1, 1, 1, example_shards=0)
  assert sweep_lib.member_partition(2, 5, 8) == (2, 4)


@pytest.mark.no_float64
def test_data_specs_shard_examples_of_every_dataset():
  data = {"train": dataset(4, seeds=2), "scale": np.ones(2)}
  specs = sweep_lib._data_specs(data, "seeds")
  assert specs["train"].x == PartitionSpec("seeds", "examples")
  assert specs["train"].y == PartitionSpec("seeds", "examples")
  assert specs["train"].class_counts == PartitionSpec("seeds")
  assert specs["scale"] == PartitionSpec("seeds")
  shared = sweep_lib._data_specs(dataset(4), None)
  assert shared.x == PartitionSpec("examples") and shared.class_counts == PartitionSpec()


@pytest.mark.no_float64
def test_example_sizes_and_bytes_per_seed():
  data = {"a": dataset(6, seeds=2), "b": dataset(4, seeds=2)}
  assert sweep_lib._example_sizes(data, True) == {6, 4}
  assert sweep_lib._example_sizes(dataset(5), False) == {5}
  assert sweep_lib._example_sizes({"w": np.ones((2, 3))}, True) == set()
  # Per seed: x 6*3*4 + y 6*4 + counts 2*4 bytes = 104, and 4*3*4 + 4*4 + 8 = 72.
  assert sweep_lib._seed_data_bytes(data, True) == 104 + 72
  assert type(sweep_lib._seed_data_bytes(data, True)) is int
  assert sweep_lib._seed_data_bytes(dataset(6), False) == 104


@pytest.mark.no_float64
def test_take_rows_repeats_the_last_row():
  leaf = np.arange(6).reshape(3, 2)
  assert sweep_lib._take_rows(leaf, 3) is leaf
  np.testing.assert_array_equal(sweep_lib._take_rows(leaf, 5),
                                [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]])


@pytest.fixture
def fake_devices(monkeypatch):
  """``use(devices, memory)``: `Sweep.layout` sees that many devices of that memory."""
  def use(devices, memory):
    monkeypatch.setattr(jax, "device_count", lambda: devices)
    monkeypatch.setattr(sweep_lib, "_device_memory", lambda: memory)
  return use


@pytest.mark.no_float64
def test_layout_shards_examples_when_a_seed_outgrows_device_memory(fake_devices):
  data = dataset(8, seeds=2)  # 8*3*4 + 8*4 + 2*4 = 136 bytes per seed
  sweep = train.Sweep(train=None)
  fake_devices(8, None)
  assert sweep.layout(2, 4, data).mesh_shape == (2, 4, 1)  # no memory figure: no sharding
  fake_devices(8, 136 * 4)  # fits exactly in DATA_MEMORY_FRACTION = 1/4 of a device
  assert sweep.layout(2, 4, data).mesh_shape == (2, 4, 1)
  fake_devices(8, 136 * 4 - 4)  # just over: 2 shards
  assert sweep.layout(2, 4, data).mesh_shape == (2, 2, 2)
  fake_devices(8, 136)  # needs 4 shards
  assert sweep.layout(2, 4, data).mesh_shape == (2, 1, 4)
  fake_devices(8, 1)  # would need more shards than devices: none
  assert sweep.layout(2, 4, data).mesh_shape == (2, 4, 1)
  fake_devices(1, 1)  # one device: never
  assert sweep.layout(2, 4, data).mesh_shape == (1, 1, 1)
  fake_devices(2, 136 * 4 - 4)  # two devices are enough to shard over
  assert sweep.layout(1, 1, data).mesh_shape == (1, 1, 2)
  fake_devices(8, 136)
  odd = dataset(6, seeds=2)  # 4 shards do not divide 6 examples: 2 do (need >= 3.x: none fit)
  assert sweep.layout(2, 4, odd).mesh_shape == (2, 4, 1)
  assert train.Sweep(None, data_per_seed=False).layout(2, 4, dataset(8)).mesh_shape == (2, 1, 4)


@pytest.mark.no_float64
def test_layout_refuses_bad_example_shards(fake_devices):
  fake_devices(8, None)
  with pytest.raises(ValueError, match=r"^example_shards > 1 needs the data as a Dataset"):
    train.Sweep(None, example_shards=2).layout(2, 4, {"w": np.ones((2, 8))})
  for shards in (None, 1):  # data that is not a Dataset is fine without example sharding
    assert train.Sweep(None, example_shards=shards).layout(
        2, 4, {"w": np.ones((2, 8))}).mesh_shape == (2, 4, 1)
  with pytest.raises(ValueError, match=r"^example_shards=4 must divide every data set's number "
                     r"of examples, got \[6\]$"):
    train.Sweep(None, example_shards=4).layout(2, 4, dataset(6, seeds=2))
  with pytest.raises(ValueError, match="^example_shards must be >= 1"):
    train.Sweep(None, example_shards=0).layout(2, 4, dataset(6, seeds=2))
  assert train.Sweep(None, example_shards=2).layout(2, 4, dataset(6, seeds=2)).mesh_shape == (
      2, 2, 2)


@pytest.mark.no_float64
def test_device_memory_reads_bytes_limit(monkeypatch):
  class Device:
    def __init__(self, stats):
      self.stats = stats

    def memory_stats(self):
      if isinstance(self.stats, Exception):
        raise self.stats
      return self.stats

  for stats, expected in [({"bytes_limit": 7, "other": 1}, 7), ({}, None), (None, None),
                          ({"other": 1}, None), (RuntimeError("no stats"), None)]:
    monkeypatch.setattr(jax, "devices", lambda s=stats: [Device(s)])
    assert sweep_lib._device_memory() == expected


@pytest.mark.no_float64
def test_gather_members_and_to_host(monkeypatch):
  state = {"a": jnp.arange(8.0).reshape(2, 4), "b": jnp.arange(16).reshape(2, 4, 2)}
  got = sweep_lib.gather_members(state, np.array([[3, 0], [1, 1]]))
  np.testing.assert_array_equal(got["a"], [[3.0, 0.0], [5.0, 5.0]])
  np.testing.assert_array_equal(got["b"], [[[6, 7], [0, 1]], [[10, 11], [10, 11]]])
  host = sweep_lib.to_host(got)
  assert isinstance(host["a"], np.ndarray)
  np.testing.assert_array_equal(host["a"], got["a"])
  # Leaves that are all local (numpy arrays and scalars have no is_fully_addressable) are
  # copied without a cross-process gather.
  from jax.experimental import multihost_utils

  def no_gather(*args, **kwargs):
    raise AssertionError("to_host gathered arrays that are all local")
  monkeypatch.setattr(multihost_utils, "process_allgather", no_gather)
  host = sweep_lib.to_host({"n": np.arange(3), "x": jnp.ones(2), "f": 1.5})
  np.testing.assert_array_equal(host["n"], [0, 1, 2])
  assert isinstance(host["x"], np.ndarray) and host["f"] == 1.5
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  placed = sweep_lib.put({"x": np.ones(2)}, {"x": one})
  assert placed["x"].sharding == one
  # A mesh sharding is kept (a default placement would be a single-device sharding).
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("seeds", "rates"))
  named = jax.sharding.NamedSharding(mesh, PartitionSpec("seeds", "rates"))
  assert sweep_lib.put({"x": np.ones((2, 4))}, {"x": named})["x"].sharding == named
  gathered = sweep_lib.gather_members(state, np.array([[3, 0], [1, 1]]), named)
  assert gathered["a"].sharding == named and gathered["b"].sharding == named
  np.testing.assert_array_equal(gathered["b"], got["b"])


@pytest.mark.no_float64
def test_place_validates_and_pads_rates_to_the_params_dtype():
  params_S = {"w": np.zeros((2, 3), np.float32)}
  sweep = train.Sweep(None)
  layout, params, data, rates, keys = sweep._place(params_S, dataset(4, seeds=2), [0.1, 1.0],
                                                   None)
  assert layout.mesh_shape == (1, 1, 1) and params is params_S and keys is None
  assert rates.dtype == jnp.float32
  np.testing.assert_allclose(rates, [0.1, 1.0])
  half = {"w": np.zeros((2, 3), jnp.bfloat16)}  # not the default dtype: the rates follow it
  assert sweep._place(half, dataset(4, seeds=2), [0.1], None)[3].dtype == jnp.bfloat16
  with pytest.raises(ValueError, match=r"^data has 3 seeds but params_S has 2$"):
    sweep._place(params_S, dataset(4, seeds=3), [0.1], None)
  with pytest.raises(ValueError, match=r"^keys_S has 1 keys but params_S has 2 seeds$"):
    sweep._place(params_S, dataset(4, seeds=2), [0.1], jax.random.split(jax.random.key(0), 1))
  shared = train.Sweep(None, data_per_seed=False)
  shared._place(params_S, dataset(4), [0.1], None)  # one shared data set: no seed check
  assert shared._data_axis is None and sweep._data_axis == 0


@pytest.mark.no_float64
def test_check_learning_rates():
  from imbalance_jax.train import sweep
  got = sweep.check_learning_rates(np.array([0.5, 2.0], np.float32))
  assert got.dtype == np.float64
  np.testing.assert_array_equal(got, [0.5, 2.0])
  for bad in ([0.0, 1.0], [-1.0], [np.inf], [np.nan]):
    with pytest.raises(ValueError, match=r"^learning_rates must be finite and positive, got "):
      sweep.check_learning_rates(bad)
  for bad in ([], [[0.1]]):
    with pytest.raises(ValueError, match=r"^learning_rates must be a non-empty 1-d array"):
      sweep.check_learning_rates(bad)
