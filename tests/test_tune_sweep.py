"""tune_sweep bookkeeping: every round's columns, restored rounds and segmented rounds.

The reference for every number is a direct, un-swept `Train` run of one seed at one
step size; the tuned sweep must hand back exactly those numbers under the right
exponent, whether a round was computed, restored from a checkpoint or resumed from
its last segment.
"""

import os

import jax
import numpy as np
import pytest

from conftest import make_linear_train, small_problem
from imbalance_jax import train

EXPONENTS = (-2.0, -1.0, 0.0)  # refinement adds -0.5 and 0.5 around the winner 10**0


class Interrupt(Exception):
  pass


@pytest.fixture(scope="module")
def problem():
  with jax.enable_x64(True):
    ds, model, params_S = small_problem(num_seeds=2)
    run = make_linear_train(model, ds.class_counts[0], "gd", 0.0, num_steps=12, log_every=3)
    sweep = train.Sweep(run)  # shared by the tests: one compiled program per round shape
    fresh = train.tune_sweep(sweep, params_S, ds, exponents=EXPONENTS,
                             refine_rounds=1, log=lambda line: None)
    solo = jax.jit(run)
    direct = {e: [jax.device_get(solo(jax.tree.map(lambda a: a[s], params_S),
                                      jax.tree.map(lambda a: a[s], ds), 10.0**e))
                  for s in range(2)]
              for e in fresh.histories}
  return ds, params_S, sweep, fresh, direct


def assert_same_tuned(got, expected):
  assert got.selection == expected.selection
  assert sorted(got.stats) == sorted(expected.stats) == sorted(got.histories)
  for e in expected.stats:
    for field in ("initial", "final", "max", "finite"):
      np.testing.assert_array_equal(getattr(got.stats[e], field),
                                    getattr(expected.stats[e], field), err_msg=f"{e} {field}")
    assert set(got.histories[e]) == set(expected.histories[e])
    for name in expected.histories[e]:
      np.testing.assert_array_equal(got.histories[e][name], expected.histories[e][name],
                                    err_msg=f"{e} {name}")


def test_every_evaluated_step_size_equals_a_direct_run(problem):
  _, _, sweep, tuned, direct = problem
  assert sorted(tuned.stats) == [-2.0, -1.0, -0.5, 0.0, 0.5]
  assert tuned.selection.exponent == 0.0
  assert tuned.selection.diverged == (0.5,)  # so both kinds of member are checked below
  for e, runs in direct.items():
    stats, history = tuned.stats[e], tuned.histories[e]
    for s, expected in enumerate(runs):
      np.testing.assert_allclose(stats.initial[s], expected.initial_loss, rtol=1e-10)
      diverged = not expected.finite or expected.max_loss > 1.5 * expected.initial_loss
      assert stats.diverged()[s] == diverged, (e, s)
      if diverged:  # a diverged member may be dropped early; only its verdict counts
        continue
      np.testing.assert_allclose(stats.final[s], expected.final_loss, rtol=1e-10)
      np.testing.assert_allclose(stats.max[s], expected.max_loss, rtol=1e-10)
      assert stats.finite[s] == expected.finite
      for name, values in expected.history.items():
        assert history[name].shape[1] == len(sweep.train.history_steps)
        np.testing.assert_allclose(history[name][s], values, rtol=1e-10, atol=1e-13,
                                   err_msg=f"exponent {e}, seed {s}, {name}")
  # The selected step size's history is the one reported.
  best = tuned.best_history
  for name, values in best.items():
    np.testing.assert_array_equal(values, tuned.histories[tuned.selection.exponent][name])
  # The selection is that of the rule applied to the direct runs.
  direct_stats = {e: train.LossStats(
      initial=np.array([r.initial_loss for r in runs]), final=np.array([r.final_loss for r in runs]),
      max=np.array([r.max_loss for r in runs]), finite=np.array([r.finite for r in runs]))
      for e, runs in direct.items()}
  expected = train.select(direct_stats)
  assert (expected.exponent, expected.diverged, expected.fallback_from) == (
      tuned.selection.exponent, tuned.selection.diverged, tuned.selection.fallback_from)
  assert tuned.selection.scores == pytest.approx(expected.scores, rel=1e-10)


def test_restored_rounds_equal_freshly_computed_ones(problem, tmp_path, x64):
  ds, params_S, sweep, fresh, _ = problem
  store = train.ResultStore(tmp_path)
  logs = []
  kwargs = dict(exponents=EXPONENTS, refine_rounds=1, store=store, store_key="gd",
                log=logs.append)
  computed = train.tune_sweep(sweep, params_S, ds, **kwargs)
  assert sum("restored" in line for line in logs) == 0
  logs.clear()
  restored = train.tune_sweep(sweep, params_S, ds, **kwargs)
  assert sum("restored" in line for line in logs) == 2  # both rounds
  assert not any("sweeping" in line for line in logs)  # nothing recomputed
  assert_same_tuned(computed, fresh)
  assert_same_tuned(restored, fresh)


def test_segmented_round_resumes_mid_round_and_removes_its_segments(problem, tmp_path, x64):
  ds, params_S, sweep, fresh, _ = problem
  store = train.ResultStore(tmp_path)
  segments = os.path.join(store.directory, "segments", "gd", "round0")
  kwargs = dict(exponents=EXPONENTS, refine_rounds=1, store=store, store_key="gd",
                segment_steps=3)

  def crash_after_two_segments(line):
    if "segment 2/4 done" in line:
      assert os.path.isdir(segments)  # the state after segment 2 was checkpointed
      raise Interrupt

  with pytest.raises(Interrupt):
    train.tune_sweep(sweep, params_S, ds, **kwargs, log=crash_after_two_segments)
  assert store.load("gd/round0") is None  # the round did not finish
  logs = []
  resumed = train.tune_sweep(sweep, params_S, ds, **kwargs, log=logs.append)
  done = [line.split()[2] for line in logs if "segment" in line and "done" in line]
  assert done == ["3/4", "4/4", "1/4", "2/4", "3/4", "4/4"]  # round 0 resumed after segment 2
  assert_same_tuned(resumed, fresh)
  assert not os.path.exists(segments)
  assert not os.path.exists(os.path.join(store.directory, "segments", "gd", "round1"))
  assert store.load("gd/round0") is not None and store.load("gd/round1") is not None
