"""Seeds x learning rates as ONE compiled program.

``Sweep(train)(params_S, data_S, learning_rates_L)`` vmaps `Train` over
learning rates (inner axis; the data set is shared, so it is held once per
seed) and over seeds (outer axis; one data set and one initialisation per
seed). Members never interact: a member whose loss explodes or turns NaN
leaves every other member's numbers exactly as in a solo run.

On several devices the sweep axis is sharded over a 1-d ``Mesh`` with
``NamedSharding``; the code is the same for 1 and N devices.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from imbalance_jax.train.loop import Train, TrainResult, TrainState


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
class Sweep:
  """A `Train` vmapped over ``[seeds, learning rates]``.

  Attributes:
    train: the run to sweep.
    data_per_seed: ``True`` if ``data`` has a leading seed axis (a data set per
      seed), ``False`` if all seeds share one data set.

  Example:
    >>> sweep = Sweep(train)
    >>> result = sweep(params_S, data_S, jnp.logspace(-4, 0, 5))
    >>> result.final_loss.shape          # [seeds, learning rates]
    (3, 5)
  """

  train: Train
  data_per_seed: bool = True

  @property
  def _data_axis(self):
    return 0 if self.data_per_seed else None

  @functools.cached_property
  def _full(self):
    fn = jax.vmap(jax.vmap(self.train, in_axes=(None, None, 0)),
                  in_axes=(0, self._data_axis, None))
    return jax.jit(fn)

  @functools.cached_property
  def _init(self):
    fn = jax.vmap(jax.vmap(self.train.init, in_axes=(None, None, 0)),
                  in_axes=(0, self._data_axis, None))
    return jax.jit(fn)

  @functools.cached_property
  def _run(self):
    def run(state, data, num_steps):
      inner = jax.vmap(lambda s, d: self.train.run(s, d, num_steps), in_axes=(0, None))
      return jax.vmap(inner, in_axes=(0, self._data_axis))(state, data)
    return jax.jit(run, static_argnums=2)

  @functools.cached_property
  def _finish(self):
    inner = jax.vmap(self.train.finish, in_axes=(0, None))
    return jax.jit(jax.vmap(inner, in_axes=(0, self._data_axis)))

  def _place(self, params_S, data, learning_rates_L):
    """Validates shapes and shards the sweep over local devices."""
    rates = check_learning_rates(learning_rates_L)
    num_seeds = _leading_size(params_S)
    if self.data_per_seed and _leading_size(data) != num_seeds:
      raise ValueError(f"data has {_leading_size(data)} seeds but params_S has {num_seeds}")
    dtype = jnp.result_type(*jax.tree.leaves(params_S))
    rates = jnp.asarray(rates, dtype)
    spec = member_partition(num_seeds, rates.shape[0], jax.device_count())
    if spec is None:
      return params_S, data, rates
    mesh = Mesh(np.array(jax.devices()), ("members",))
    seeds_sharding = NamedSharding(mesh, PartitionSpec(spec[0]))
    rates_sharding = NamedSharding(mesh, PartitionSpec(spec[1]))
    params_S = jax.device_put(params_S, seeds_sharding)
    if self.data_per_seed:
      data = jax.device_put(data, seeds_sharding)
    return params_S, data, jax.device_put(rates, rates_sharding)

  def __call__(self, params_S, data, learning_rates_L) -> TrainResult:
    """Runs every member to the end; leaves of the result are ``[S, L, ...]``."""
    return self._full(*self._place(params_S, data, learning_rates_L))

  def init(self, params_S, data, learning_rates_L) -> TrainState:
    return self._init(*self._place(params_S, data, learning_rates_L))

  def run(self, state: TrainState, data, num_steps: int):
    """Advances every member ``num_steps`` steps: ``(state, history [S, L, T', ...])``."""
    return self._run(state, data, num_steps)

  def finish(self, state: TrainState, data):
    return self._finish(state, data)


def member_partition(num_seeds: int, num_rates: int, num_devices: int):
  """Which sweep axis to shard: ``(seed_spec, rate_spec)`` or None for one device.

  Learning rates are preferred (seeds keep their data set local); seeds are used
  when only they divide evenly; otherwise everything stays on device 0.
  """
  if num_devices <= 1:
    return None
  if num_rates % num_devices == 0:
    return (None, "members")
  if num_seeds % num_devices == 0:
    return ("members", None)
  return None
