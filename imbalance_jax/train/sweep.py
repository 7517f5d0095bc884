"""Seeds x learning rates as ONE compiled program, on one device or many.

``Sweep(train)(params_S, data_S, learning_rates_L)`` vmaps `Train` over
learning rates (inner axis; the data set is shared, so it is held once per
seed) and over seeds (outer axis; one data set and one initialisation per
seed). Members never interact: a member whose loss explodes or turns NaN
leaves every other member's numbers exactly as in a solo run.

On several devices (all of ``jax.devices()``, across hosts after
`imbalance_jax.train.distributed.initialize`) the grid sits on a 3-d
``Mesh`` with axes ``("seeds", "rates", "examples")`` chosen by `plan_layout`:
members are sharded over seeds and learning rates, and each seed's data set
over examples when it is larger than one device's share (or when
``example_shards`` asks for it); GSPMD then reduces the loss and gradient over
the example shards inside the compiled step. A grid that does not divide the
devices is padded with masked members (copies of the last seed / last
learning rate whose results are sliced off), so the real members' numbers do
not depend on the device count. The code is the same for 1 and N devices.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from imbalance_jax import _checks
from imbalance_jax.train.loop import Train, TrainResult, TrainState
from imbalance_jax.types import Dataset

MESH_AXES = ("seeds", "rates", "examples")
# A seed's data set is sharded over examples when it exceeds this fraction of
# one device's memory (devices that report no memory limit, e.g. CPUs, never
# trigger the automatic rule; set `Sweep.example_shards` there).
DATA_MEMORY_FRACTION = 0.25


def _leading_size(tree) -> int:
  sizes = {leaf.shape[0] for leaf in jax.tree.leaves(tree)}
  if len(sizes) != 1:
    raise ValueError(f"expected one leading (seed) axis size, got sizes {sorted(sizes)}")
  return sizes.pop()


def check_learning_rates(learning_rates) -> np.ndarray:
  """Validates a 1-d grid of finite, positive learning rates."""
  rates = np.asarray(learning_rates, dtype=np.float64)
  if rates.ndim != 1 or rates.size == 0:
    raise ValueError(f"learning_rates must be a non-empty 1-d array, got shape {rates.shape}")
  if not np.all(np.isfinite(rates) & (rates > 0)):
    raise ValueError(f"learning_rates must be finite and positive, got {rates.tolist()}")
  return rates


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where a ``[seeds, learning rates]`` grid sits on the device mesh.

  Attributes:
    num_seeds, num_rates: the real grid ``S x L``.
    mesh_shape: devices along ``("seeds", "rates", "examples")``; their
      product is the device count.

  Example:
    >>> layout = plan_layout(2, 5, 8)
    >>> layout.mesh_shape, layout.padded_seeds, layout.padded_rates
    ((2, 4, 1), 2, 8)
  """

  num_seeds: int
  num_rates: int
  mesh_shape: tuple[int, int, int]

  @property
  def padded_seeds(self) -> int:
    """Seeds rounded up to a multiple of the devices along ``"seeds"``."""
    return -(-self.num_seeds // self.mesh_shape[0]) * self.mesh_shape[0]

  @property
  def padded_rates(self) -> int:
    """Learning rates rounded up to a multiple of the devices along ``"rates"``."""
    return self.pad_width(self.num_rates)

  def pad_width(self, width: int) -> int:
    """``width`` members per seed rounded up to the devices along ``"rates"``."""
    return -(-width // self.mesh_shape[1]) * self.mesh_shape[1]

  @property
  def num_devices(self) -> int:
    return math.prod(self.mesh_shape)


def _divisors(n: int) -> list[int]:
  return [d for d in range(1, n + 1) if n % d == 0]


def plan_layout(num_seeds: int, num_rates: int, num_devices: int, *,
                example_shards: int = 1) -> Layout:
  """Picks the mesh for an ``S x L`` grid on ``num_devices`` devices.

  ``example_shards`` devices hold one seed's data between them; the other
  ``num_devices / example_shards`` factor is split between seeds and learning
  rates so that the padded grid has the fewest members, then the fewest padded
  seeds (a padded seed copies a data set), then the most seed shards (less
  data per device).

  Example:
    >>> plan_layout(3, 8, 2).mesh_shape      # rates divide: no padding
    (1, 2, 1)
    >>> plan_layout(2, 5, 8, example_shards=2).mesh_shape
    (2, 2, 2)
  """
  num_seeds = _checks.check_int("num_seeds", num_seeds, minimum=1)
  num_rates = _checks.check_int("num_rates", num_rates, minimum=1)
  num_devices = _checks.check_int("num_devices", num_devices, minimum=1)
  example_shards = _checks.check_int("example_shards", example_shards, minimum=1)
  if num_devices % example_shards:
    raise ValueError(f"example_shards={example_shards} must divide the device count "
                     f"{num_devices}")
  member_devices = num_devices // example_shards

  def cost(seed_devices):
    layout = Layout(num_seeds, num_rates,
                    (seed_devices, member_devices // seed_devices, example_shards))
    return (layout.padded_seeds * layout.padded_rates, layout.padded_seeds - num_seeds,
            -seed_devices), layout

  return min((cost(a) for a in _divisors(member_devices)), key=lambda c: c[0])[1]


def member_partition(num_seeds: int, num_rates: int, num_devices: int):
  """Mesh shape ``(seed devices, rate devices)`` of `plan_layout` (no example sharding)."""
  return plan_layout(num_seeds, num_rates, num_devices).mesh_shape[:2]


def _is_dataset(node) -> bool:
  return isinstance(node, Dataset)


def _data_specs(data, seed_axis):
  """A PartitionSpec per data leaf: example axis of every `Dataset`'s x and y."""
  lead = (seed_axis,) if seed_axis is not None else ()

  def spec(node):
    if _is_dataset(node):
      ex = PartitionSpec(*lead, "examples")
      return node.replace(x=ex, y=ex, class_counts=PartitionSpec(*lead))
    return PartitionSpec(*lead)

  return jax.tree.map(spec, data, is_leaf=_is_dataset)


def _example_sizes(data, per_seed: bool) -> set[int]:
  sizes = set()
  for node in jax.tree.leaves(data, is_leaf=_is_dataset):
    if _is_dataset(node):
      sizes.add(node.y.shape[1 if per_seed else 0])
  return sizes


def _seed_data_bytes(data, per_seed: bool) -> int:
  total = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(data))
  return total // _leading_size(data) if per_seed else total


def _device_memory() -> int | None:
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:  # noqa: BLE001 (backends without memory stats)
    return None
  return None if not stats else stats.get("bytes_limit")


def _take_rows(leaf, size: int):
  """``leaf`` with its leading axis padded to ``size`` by repeating the last row."""
  n = leaf.shape[0]
  return leaf if n == size else leaf[np.minimum(np.arange(size), n - 1)]


def put(tree, sharding_tree):
  """`jax.device_put` that also works when the mesh spans several processes.

  Every process must pass the same values (host data, or arrays not yet
  committed to a device), as after a seeded `jax.random` construction.
  """
  def one(leaf, sharding):
    if sharding.is_fully_addressable or jax.process_count() == 1:
      return jax.device_put(leaf, sharding)
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(put(jax.random.key_data(leaf), sharding),
                                      impl=jax.random.key_impl(leaf))
    return jax.device_put(np.asarray(leaf), sharding)
  return jax.tree.map(one, tree, sharding_tree)


def to_host(tree):
  """Numpy copy of ``tree``, gathering arrays that live on other processes too."""
  leaves = jax.tree.leaves(tree)
  if all(getattr(leaf, "is_fully_addressable", True) for leaf in leaves):
    return jax.device_get(tree)
  from jax.experimental import multihost_utils
  return multihost_utils.process_allgather(tree, tiled=True)


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A `Train` vmapped over ``[seeds, learning rates]``.

  Attributes:
    train: the run to sweep.
    data_per_seed: ``True`` if ``data`` has a leading seed axis (a data set per
      seed), ``False`` if all seeds share one data set.
    members_at_once: ``(seeds, rates)`` computed at once on one device, or None
      (all): the grid is then a scan over batches of that many members
      (`jax.lax.map` with ``batch_size``), one compiled program whose memory
      holds one batch, for members that do not all fit (the paper presets' CNNs
      and ResNets on one GPU: see docs/paper_scale.md). Results equal the full
      vmap's up to floating-point reassociation.
    example_shards: devices that split one data set along its examples (the
      ``x`` and ``y`` of every `Dataset` in ``data``); must divide the device
      count and each data set's size. ``None``: 1, unless a seed's data exceed
      ``DATA_MEMORY_FRACTION`` of a device's memory, then the fewest shards
      that fit.

  Example:
    >>> from imbalance_jax import data, models, optim, train
    >>> keys = jax.random.split(jax.random.key(0), 3)
    >>> data_S = jax.vmap(lambda k: data.heavy_tailed_labels(k, m=3))(keys)
    >>> model = models.LinearSoftmax(data_S.num_classes)
    >>> params_S = jax.vmap(lambda k: model.init(k, data_S.x[0, :1]))(keys)
    >>> run = train.make_train(train.classification_objective(model.apply),
    ...                        optim.injectable("gd", 0.0), num_steps=10)
    >>> result = Sweep(run)(params_S, data_S, jnp.logspace(-4, 0, 5))
    >>> result.final_loss.shape          # [seeds, learning rates]
    (3, 5)
  """

  train: Train
  data_per_seed: bool = True
  example_shards: int | None = None
  members_at_once: tuple[int, int] | None = None

  def __post_init__(self):
    if self.members_at_once is not None:
      if not isinstance(self.members_at_once, tuple | list) or len(self.members_at_once) != 2:
        raise ValueError(f"members_at_once must be (seeds at once, rates at once), got "
                         f"{self.members_at_once!r}")
      _checks.check_int("members_at_once[0] (seeds at once)", self.members_at_once[0], minimum=1)
      _checks.check_int("members_at_once[1] (rates at once)", self.members_at_once[1], minimum=1)

  @property
  def _data_axis(self):
    return 0 if self.data_per_seed else None

  def _batch_sizes(self) -> tuple[int | None, int | None]:
    return (None, None) if self.members_at_once is None else tuple(self.members_at_once)

  def _vmap(self, fn, rate_axis_inner):
    """vmap over rates (inner) and seeds (outer) of ``fn(params, data, lr, key)``."""
    seeds_at_once, rates_at_once = self._batch_sizes()
    inner = _map(fn, (None, None, rate_axis_inner, None), rates_at_once)
    return _map(inner, (0, self._data_axis, None, 0), seeds_at_once)

  @staticmethod
  def _with_key(fn):
    return lambda p, d, lr, k: fn(p, d, lr) if k is None else fn(p, d, lr, key=k)

  @functools.cached_property
  def _full(self):
    vmapped = self._vmap(self._with_key(self.train), 0)

    def full(params, data, rates, keys, num_seeds, num_rates):
      result = vmapped(params, data, rates, keys)
      return jax.tree.map(lambda a: a[:num_seeds, :num_rates], result)
    return jax.jit(full, static_argnums=(4, 5))

  @functools.cached_property
  def _init(self):
    return jax.jit(self._vmap(self._with_key(self.train.init), 0))

  @functools.cached_property
  def _run(self):
    seeds_at_once, rates_at_once = self._batch_sizes()

    def run(state, data, num_steps):
      inner = _map(lambda s, d: self.train.run(s, d, num_steps), (0, None), rates_at_once)
      return _map(inner, (0, self._data_axis), seeds_at_once)(state, data)
    return jax.jit(run, static_argnums=2)

  @functools.cached_property
  def _finish(self):
    seeds_at_once, rates_at_once = self._batch_sizes()
    inner = _map(self.train.finish, (0, None), rates_at_once)
    return jax.jit(_map(inner, (0, self._data_axis), seeds_at_once))

  def layout(self, num_seeds: int, num_rates: int, data) -> Layout:
    """`plan_layout` of this sweep on ``jax.devices()`` for ``data``."""
    num_devices = jax.device_count()
    sizes = _example_sizes(data, self.data_per_seed)
    shards = self.example_shards
    if shards is None:
      shards, memory = 1, _device_memory()
      if memory and num_devices > 1 and sizes:
        need = _seed_data_bytes(data, self.data_per_seed) / (DATA_MEMORY_FRACTION * memory)
        fits = [c for c in _divisors(num_devices) if c >= need and all(n % c == 0 for n in sizes)]
        shards = fits[0] if fits else 1
    shards = _checks.check_int("example_shards", shards, minimum=1)
    if shards > 1:
      if not sizes:
        raise ValueError("example_shards > 1 needs the data as a Dataset (or a dict of them)")
      if any(n % shards for n in sizes):
        raise ValueError(f"example_shards={shards} must divide every data set's number of "
                         f"examples, got {sorted(sizes)}")
    return plan_layout(num_seeds, num_rates, num_devices, example_shards=shards)

  @staticmethod
  def mesh(layout: Layout) -> Mesh:
    return Mesh(np.array(jax.devices()).reshape(layout.mesh_shape), MESH_AXES)

  @staticmethod
  def member_sharding(layout: Layout) -> NamedSharding:
    """Sharding of state/result leaves ``[padded seeds, members per seed, ...]``."""
    return NamedSharding(Sweep.mesh(layout), PartitionSpec("seeds", "rates"))

  def _place(self, params_S, data, learning_rates_L, keys_S):
    """Validates shapes, pads the grid to the mesh and shards it over devices."""
    rates = check_learning_rates(learning_rates_L)
    num_seeds = _leading_size(params_S)
    if self.data_per_seed and _leading_size(data) != num_seeds:
      raise ValueError(f"data has {_leading_size(data)} seeds but params_S has {num_seeds}")
    if keys_S is not None and _leading_size(keys_S) != num_seeds:
      raise ValueError(f"keys_S has {_leading_size(keys_S)} keys but params_S has {num_seeds} "
                       "seeds")
    dtype = jnp.result_type(*jax.tree.leaves(params_S))
    layout = self.layout(num_seeds, rates.shape[0], data)
    if self.members_at_once is not None and layout.num_devices > 1:
      raise ValueError("members_at_once batches members on one device; on several devices the "
                       "members are sharded instead (leave it None)")
    rates = jnp.asarray(rates[np.minimum(np.arange(layout.padded_rates), rates.shape[0] - 1)],
                        dtype)
    if layout.num_devices == 1:
      return layout, params_S, data, rates, keys_S
    pad_seeds = lambda tree: jax.tree.map(lambda a: _take_rows(a, layout.padded_seeds), tree)
    mesh = self.mesh(layout)
    by_seed = lambda tree: jax.tree.map(lambda _: NamedSharding(mesh, PartitionSpec("seeds")),
                                        tree)
    params_S = put(pad_seeds(params_S), by_seed(params_S))
    if keys_S is not None:
      keys_S = put(pad_seeds(keys_S), by_seed(keys_S))
    if self.data_per_seed:
      data = pad_seeds(data)
    specs = _data_specs(data, "seeds" if self.data_per_seed else None)
    data = put(data, jax.tree.map(lambda s: NamedSharding(mesh, s), specs))
    rates = put(rates, NamedSharding(mesh, PartitionSpec("rates")))
    return layout, params_S, data, rates, keys_S

  def __call__(self, params_S, data, learning_rates_L, keys_S=None) -> TrainResult:
    """Runs every member to the end; leaves of the result are ``[S, L, ...]``.

    ``keys_S`` (optional): one PRNG key per seed, shared by the seed's
    learning rates (the run's dropout / shuffling key).
    """
    layout, params_S, data, rates, keys_S = self._place(params_S, data, learning_rates_L,
                                                         keys_S)
    return self._full(params_S, data, rates, keys_S, layout.num_seeds, layout.num_rates)

  def init(self, params_S, data, learning_rates_L, keys_S=None):
    """Starts a segmented sweep: ``(layout, state, placed data)``.

    ``state`` leaves are ``[layout.padded_seeds, layout.padded_rates, ...]``
    (members past ``num_seeds`` / ``num_rates`` are padding); pass the placed
    data to `run` and `finish`.
    """
    layout, params_S, data, rates, keys_S = self._place(params_S, data, learning_rates_L,
                                                         keys_S)
    return layout, self._init(params_S, data, rates, keys_S), data

  def run(self, state: TrainState, data, num_steps: int):
    """Advances every member ``num_steps`` steps: ``(state, history [S, L, T', ...])``."""
    return self._run(state, data, num_steps)

  def finish(self, state: TrainState, data):
    return self._finish(state, data)


def _map(fn, in_axes, batch_size: int | None):
  """``jax.vmap(fn, in_axes)`` (every in_axis 0 or None), or with ``batch_size`` the same
  map computed ``batch_size`` members at a time (`jax.lax.map`: a scan over vmapped
  batches, so peak memory holds ``batch_size`` members, not all)."""
  if batch_size is None:
    return jax.vmap(fn, in_axes=in_axes)
  mapped = [i for i, axis in enumerate(in_axes) if axis is not None]

  def batched(*args):
    def one(xs):
      full = list(args)
      for i, x in zip(mapped, xs):
        full[i] = x
      return fn(*full)
    return jax.lax.map(one, tuple(args[i] for i in mapped), batch_size=batch_size)
  return batched


def _gather_rows(state, index_SW):
  take = jax.vmap(lambda leaf_W, idx_W: leaf_W[idx_W])
  return jax.tree.map(lambda leaf: take(leaf, index_SW), state)


@functools.lru_cache(maxsize=None)
def _gather_fn(sharding):
  return jax.jit(_gather_rows, out_shardings=sharding)


def gather_members(state: Any, index_SW, sharding: NamedSharding | None = None):
  """``state[s, index_SW[s, j]]`` for every leaf ``[S, W, ...]``: keeps W' members per seed.

  Used to drop decided members between segments without touching the data;
  ``sharding`` (e.g. `Sweep.member_sharding`) places the result.
  """
  return _gather_fn(sharding)(state, jnp.asarray(index_SW, jnp.int32))
