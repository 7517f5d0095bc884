"""sweep.py, fast: layout planning, data specs and placement helpers on hand-built inputs.

The real sweeps (one compiled grid, shared data, per-seed keys) are in
`test_sweep.py`; several devices in `test_multidevice.py`. In mutmut's fast
selection (see docs/testing.md).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from imbalance_jax import train
from imbalance_jax.train import sweep as sweep_lib
from imbalance_jax.types import Dataset


def dataset(n, seeds=None, dtype=np.float32):
  lead = () if seeds is None else (seeds,)
  return Dataset(x=np.zeros(lead + (n, 3), dtype), y=np.zeros(lead + (n,), np.int32),
                 class_counts=np.ones(lead + (2,), np.int32), num_classes=2)


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


def test_leading_size():
  assert sweep_lib._leading_size({"a": np.zeros((3, 2)), "b": np.zeros(3)}) == 3
  with pytest.raises(ValueError, match=r"^expected one leading \(seed\) axis size, got sizes "
                     r"\[2, 3\]$"):
    sweep_lib._leading_size({"a": np.zeros((3, 2)), "b": np.zeros(2)})


def test_layout_padding_and_devices():
  layout = sweep_lib.Layout(3, 5, (2, 4, 2))
  assert (layout.padded_seeds, layout.padded_rates, layout.num_devices) == (4, 8, 16)
  assert [layout.pad_width(w) for w in (1, 4, 5, 8)] == [4, 4, 8, 8]
  exact = sweep_lib.Layout(4, 8, (2, 4, 1))
  assert (exact.padded_seeds, exact.padded_rates, exact.num_devices) == (4, 8, 8)
  assert sweep_lib._divisors(12) == [1, 2, 3, 4, 6, 12] and sweep_lib._divisors(1) == [1]


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


def test_data_specs_shard_examples_of_every_dataset():
  data = {"train": dataset(4, seeds=2), "scale": np.ones(2)}
  specs = sweep_lib._data_specs(data, "seeds")
  assert specs["train"].x == PartitionSpec("seeds", "examples")
  assert specs["train"].y == PartitionSpec("seeds", "examples")
  assert specs["train"].class_counts == PartitionSpec("seeds")
  assert specs["scale"] == PartitionSpec("seeds")
  shared = sweep_lib._data_specs(dataset(4), None)
  assert shared.x == PartitionSpec("examples") and shared.class_counts == PartitionSpec()


def test_example_sizes_and_bytes_per_seed():
  data = {"a": dataset(6, seeds=2), "b": dataset(4, seeds=2)}
  assert sweep_lib._example_sizes(data, True) == {6, 4}
  assert sweep_lib._example_sizes(dataset(5), False) == {5}
  assert sweep_lib._example_sizes({"w": np.ones((2, 3))}, True) == set()
  # Per seed: x 6*3*4 + y 6*4 + counts 2*4 bytes = 104, and 4*3*4 + 4*4 + 8 = 72.
  assert sweep_lib._seed_data_bytes(data, True) == 104 + 72
  assert type(sweep_lib._seed_data_bytes(data, True)) is int
  assert sweep_lib._seed_data_bytes(dataset(6), False) == 104


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


def test_distributed_flags_reach_initialize(monkeypatch):
  from absl import flags

  from imbalance_jax.train import distributed
  distributed.define_flags()
  distributed.define_flags()  # idempotent: a second call defines nothing twice
  helps = {
      "coordinator_address": "host:port of process 0 for jax.distributed.initialize "
                             "(env JAX_COORDINATOR_ADDRESS).",
      "num_processes": "Number of processes of a multi-host run (env JAX_NUM_PROCESSES).",
      "process_id": "This process's index in [0, num_processes) (env JAX_PROCESS_ID).",
      "distributed": "Initialise multi-process JAX, detecting the cluster (Slurm, Open MPI, "
                     "TPU, Kubernetes) when the other flags are not given "
                     "(env JAX_DISTRIBUTED=1).",
  }
  for name, text in helps.items():
    assert flags.FLAGS[name].help == text
    assert flags.FLAGS[name].default == (False if name == "distributed" else None)
  assert flags.FLAGS["distributed"].flag_type() == "bool"
  assert flags.FLAGS["num_processes"].flag_type() == "int"
  assert flags.FLAGS["process_id"].flag_type() == "int"

  calls = []
  monkeypatch.setattr(distributed, "initialize",
                      lambda *args, **kw: calls.append((args, kw)) or True)
  assert distributed.initialize_from_flags() is True
  assert calls.pop() == ((None, None, None), {"auto": False})
  for name, value in (("coordinator_address", "h:1"), ("num_processes", 2), ("process_id", 1),
                      ("distributed", True)):
    monkeypatch.setattr(flags.FLAGS[name], "value", value)
  distributed.initialize_from_flags()
  assert calls.pop() == (("h:1", 2, 1), {"auto": True})
  assert distributed.is_main_process() is True  # one process here: process 0
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  assert distributed.is_main_process() is False
