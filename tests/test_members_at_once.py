"""`Sweep(members_at_once=...)`: the grid in batches of members equals the full vmap.

A batched sweep is a `jax.lax.map` over batches of ``(seeds, rates)`` members
(each batch vmapped), so it holds one batch in memory; per member it runs the
same operations, so in float64 its numbers agree with the all-at-once vmap to
rounding, for whole runs, segmented runs that drop diverged members, and
batch sizes that do not divide the grid.
"""

import jax
import numpy as np
import pytest

from conftest import small_problem
from imbalance_jax import optim, train
from imbalance_jax.train import driver

RATES = np.array([1e-3, 1e-2, 1e-1, 1.0, 1e3])  # 1e3 diverges under sign descent


def _problem(optimizer):
  ds, model, params_S = small_problem(num_seeds=3)
  run = train.make_train(train.classification_objective(model.apply),
                         optim.injectable(optimizer, 0.9), num_steps=6, log_every=3)
  return run, params_S, ds


def _assert_same(full, batched):
  for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(batched)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("members_at_once", [(2, 3), (3, 5)])  # neither divides 3 x 4
def test_batched_sweep_equals_the_full_vmap(x64, members_at_once):
  run, params_S, ds = _problem("adam")
  full = train.Sweep(run)(params_S, ds, RATES[:4])
  _assert_same(full, train.Sweep(run, members_at_once=members_at_once)(params_S, ds, RATES[:4]))


def test_batched_segmented_sweep_drops_the_same_members(x64):
  run, params_S, ds = _problem("sign_descent")
  full = driver.run_sweep(train.Sweep(run), params_S, ds, RATES, segment_steps=3,
                          drop_decided=True)
  batched = driver.run_sweep(train.Sweep(run, members_at_once=(2, 2)), params_S, ds, RATES,
                             segment_steps=3, drop_decided=True)
  np.testing.assert_array_equal(batched.dropped_at, full.dropped_at)
  assert (full.dropped_at[:, -1] > 0).all()  # the divergent rate was dropped
  _assert_same(full.history, batched.history)


def test_batched_sweep_holds_one_batch_of_members(x64):
  """The compiled program's temporaries shrink with the batch (XLA's memory analysis)."""
  ds, model, params_S = small_problem(num_seeds=3, m=5)
  run = train.make_train(train.classification_objective(model.apply),
                         optim.injectable("adam", 0.9), num_steps=12, log_every=3)
  rates = np.logspace(-3, 0, 8)

  def temp_bytes(members_at_once):
    sweep = train.Sweep(run, members_at_once=members_at_once)
    layout, params, data, rates_L, keys = sweep._place(params_S, ds, rates, None)
    compiled = sweep._full.lower(params, data, rates_L, keys, layout.num_seeds,
                                 layout.num_rates).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  one, six, all_24 = temp_bytes((1, 1)), temp_bytes((3, 2)), temp_bytes(None)
  assert one < six < all_24 and one < all_24 / 2  # 0.94, 1.37 and 2.80 MB when written


@pytest.mark.parametrize("value", [(0, 1), (1,), 3, (1, -2)])
def test_bad_members_at_once_is_named(x64, value):
  run, _, _ = _problem("gd")
  with pytest.raises(ValueError, match="members_at_once"):
    train.Sweep(run, members_at_once=value)
