"""tune_sweep bookkeeping: every round's columns, restored rounds and segmented rounds.

The reference for every number is a direct, un-swept `Train` run of one seed at one
step size; the tuned sweep must hand back exactly those numbers under the right
exponent, whether a round was computed, restored from a checkpoint or resumed from
its last segment.
"""

import json
import os

import jax
import numpy as np
import pytest

from conftest import make_linear_train, small_problem
from imbalance_jax import data, reporting, results, train

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
      initial=np.array([r.initial_loss for r in runs]),
      final=np.array([r.final_loss for r in runs]),
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


def _group_losses_by_hand(params, x_ND, y_N, class_to_group):
  """Mean cross-entropy over the examples of each group, from the final parameters."""
  head = params["params"]["head"]
  logits = np.asarray(x_ND) @ np.asarray(head["kernel"]) + np.asarray(head["bias"])
  top = logits.max(1, keepdims=True)
  log_z = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
  loss_N = log_z - logits[np.arange(len(y_N)), y_N]
  group_N = class_to_group[y_N]
  return np.array([loss_N[group_N == g].mean() for g in range(class_to_group.max() + 1)])


def test_summary_and_records_hold_the_numbers_of_direct_runs(problem, tmp_path):
  ds, _, sweep, tuned, direct = problem
  steps = sweep.train.history_steps
  groups = data.frequency_groups(np.asarray(ds.class_counts[0]), num_groups=3)
  is_diverged = {e: [not r.finite or r.max_loss > 1.5 * r.initial_loss for r in runs]
                 for e, runs in direct.items()}
  best = direct[0.0]

  entry = reporting.summarize_run(tuned)
  assert entry["learning_rate"] == pytest.approx(1.0)
  assert entry["final_loss"] == pytest.approx(np.mean([r.final_loss for r in best]), rel=1e-10)
  assert entry["final_loss_max_over_seeds"] == pytest.approx(max(r.final_loss for r in best),
                                                              rel=1e-10)
  by_hand = [_group_losses_by_hand(r.params, ds.x[s], np.asarray(ds.y[s]), groups)
             for s, r in enumerate(best)]
  np.testing.assert_allclose(entry["final_group_losses"], np.mean(by_hand, 0), rtol=1e-10)
  assert entry["diverged"] == pytest.approx([10**e for e, d in sorted(is_diverged.items())
                                             if any(d)])
  assert entry["diverged"] == pytest.approx([10**0.5])
  assert entry["fallback_from"] is None
  assert set(entry["scores"]) == {f"{10.0**e:.6g}" for e in direct}

  records = list(reporting.history_records("gd", tuned, steps))
  assert len(records) == len(direct) * 2 * len(steps)
  for record in records:
    e = float(np.round(np.log10(record["learning_rate"]), 6))
    seed, t = record["seed"], list(steps).index(record["step"])
    assert record["run"] == "gd"
    assert record["diverged"] == is_diverged[e][seed], record
    if not record["diverged"]:
      expected = direct[e][seed].history
      assert record["loss"] == pytest.approx(float(expected["loss"][t]), rel=1e-10)
      np.testing.assert_allclose(record["group_loss"], expected["group_loss"][t], rtol=1e-10)
  # Written and read back as strict JSON (NaN of dropped members becomes null).
  path = tmp_path / "metrics.jsonl"
  results.write_jsonl(path, records)
  lines = path.read_text().splitlines()
  back = [json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) for line in lines]
  assert len(back) == len(records)
  assert [r["diverged"] for r in back] == [r["diverged"] for r in records]
