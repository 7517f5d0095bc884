"""Dropping diverged sweep members between segments changes no selection and no summary."""

import jax
import numpy as np
import pytest

from conftest import make_linear_train, small_problem
from imbalance_jax import reporting, results, train
from imbalance_jax.train import driver

# Sign descent: 1e0..1e3 blow up within 3 steps. The live members run in a
# narrower vmap (width 8, then 4); XLA's reductions may then round differently
# in the last bit (seen for widths 2 -> 1 and 6 -> 4, not for 8 -> 4 here), so
# comparisons across widths allow rtol 1e-12.
RATES = 10.0**np.arange(-4, 4)
RTOL = 1e-12


def sign_problem(num_steps=12, log_every=3):
  ds, model, params_S = small_problem(num_seeds=2)
  run = make_linear_train(model, ds.class_counts[0], "sign_descent", 0.9, num_steps=num_steps,
                          log_every=log_every)
  return ds, params_S, run


@pytest.fixture(scope="module")
def problem():
  """One float64 problem and one `Sweep` whose compiled programs the tests share."""
  with jax.enable_x64(True):
    ds, params_S, run = sign_problem()
    yield ds, params_S, run, train.Sweep(run)


def test_dropped_members_hold_nan_after_the_drop_and_live_ones_are_unchanged(x64):
  ds, params_S, run = sign_problem()
  sweep = train.Sweep(run)  # fresh: its compile count is checked
  reference = train.run_sweep(sweep, params_S, ds, RATES)
  got = train.run_sweep(sweep, params_S, ds, RATES, drop_decided=True, segment_steps=3)
  at = got.dropped_at
  assert np.all(at[:, :4] == -1) and np.all(at[:, 4:] == 3)  # both outcomes occur
  assert sweep._run._cache_size() == 2  # width 8 (the grid), then bucket 4
  live = at < 0
  for name in ("initial_loss", "final_loss", "max_loss", "finite"):
    np.testing.assert_array_equal(getattr(got, name)[live], getattr(reference, name)[live])
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[live], b[live]), got.params,
               reference.params)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[live], b[live]), got.history,
               reference.history)
  # Dropped: real history before the drop (steps 0 only: logged every 3), NaN after.
  steps = run.history_steps
  for key, values in got.history.items():
    before = reference.history[key][~live][:, steps < 3]
    np.testing.assert_array_equal(values[~live][:, steps < 3], before)
    assert np.all(np.isnan(values[~live][:, steps >= 3]))
  assert np.all(np.isnan(got.final_loss[~live]))
  assert all(np.all(np.isnan(leaf[~live])) for leaf in jax.tree.leaves(got.params))
  np.testing.assert_array_equal(got.initial_loss, reference.initial_loss)
  for s in range(2):
    for l in range(len(RATES)):
      full = train.LossStats.from_result(reference, l)
      dropped = train.LossStats.from_result(got, l)
      np.testing.assert_array_equal(dropped.diverged(), full.diverged())
      assert dropped.score() == full.score()


def test_all_members_dropped_skips_the_remaining_segments(x64, problem):
  ds, params_S, _, sweep = problem
  got = train.run_sweep(sweep, params_S, ds, RATES[4:], drop_decided=True, segment_steps=3)
  assert np.all(got.dropped_at == 3)
  assert np.all(np.isnan(got.final_loss)) and np.all(np.isfinite(got.initial_loss))


def summaries(tuned_by_name, steps):
  summary = {n: reporting.summarize_run(t) for n, t in tuned_by_name.items()}
  records = [r for n, t in tuned_by_name.items() for r in reporting.history_records(n, t, steps)]
  return results.to_jsonable(summary), records


@pytest.mark.parametrize("exponents,refine_rounds", [
    ((-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0), 1),  # the winner ran to the end
    ((1.0, 2.0), 0),  # every step size diverges: the (tied, smaller) winner had dropped members
])
def test_tune_sweep_selection_and_summary_identical_to_no_dropping(x64, problem, exponents,
                                                                   refine_rounds):
  ds, params_S, run, sweep = problem
  logs = []
  kwargs = dict(exponents=exponents, refine_rounds=refine_rounds, segment_steps=3,
                log=logs.append)
  full = train.tune_sweep(sweep, params_S, ds, drop_decided=False, **kwargs)
  dropped = train.tune_sweep(sweep, params_S, ds, **kwargs)
  for field in ("exponent", "diverged", "fallback_from"):
    assert getattr(dropped.selection, field) == getattr(full.selection, field)
  assert dropped.selection.scores.keys() == full.selection.scores.keys()
  np.testing.assert_allclose(list(dropped.selection.scores.values()),
                             list(full.selection.scores.values()), rtol=RTOL)
  assert any("dropped early" in line for line in logs)
  assert any("rerunning" in line for line in logs) == (len(exponents) == 2)
  summary_full, records_full = summaries({"sign": full}, run.history_steps)
  summary_dropped, records_dropped = summaries({"sign": dropped}, run.history_steps)
  assert_close(summary_dropped, summary_full)
  assert len(records_dropped) == len(records_full)
  for a, b in zip(records_dropped, records_full):
    assert a["diverged"] == b["diverged"]
    if not a["diverged"] or a["learning_rate"] == dropped.selection.learning_rate:
      assert_close(results.to_jsonable(a), results.to_jsonable(b))


def assert_close(a, b):
  """Equal JSON trees, floats to RTOL."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    if isinstance(x, float) or isinstance(y, float):
      np.testing.assert_allclose(x, y, rtol=RTOL)
    else:
      assert x == y


def test_default_segment_steps():
  assert driver.default_segment_steps(300, 10) == 30
  assert driver.default_segment_steps(100, 100) == 100
  assert driver.default_segment_steps(12, 3) == 3
  assert driver.default_segment_steps(1000, 10) == 100


def test_bad_threshold(x64, problem):
  ds, params_S, _, sweep = problem
  with pytest.raises(ValueError, match="threshold"):
    train.run_sweep(sweep, params_S, ds, RATES, drop_decided=True, threshold=-1.0)
