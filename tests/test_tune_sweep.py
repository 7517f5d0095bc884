"""tune_sweep bookkeeping: every round's columns, restored rounds and segmented rounds.

The reference for every number is a direct, un-swept `Train` run of one seed at one
step size; the tuned sweep must hand back exactly those numbers under the right
exponent, whether a round was computed, restored from a checkpoint or resumed from
its last segment.

Then the same bookkeeping with `driver.run_sweep` and the store replaced by
fakes: the fake sweep returns hand-built numbers per (seed, step size), so every
column, history, store key, checkpoint directory, rerun and log line of
`tune_sweep` can be compared exactly, in milliseconds.
"""

import itertools
import json
import os
import types

import jax
import numpy as np
import pytest

from conftest import make_linear_train, small_problem
from imbalance_jax import data, reporting, results, train
from imbalance_jax.train import driver, selection, tuning

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


# --- fakes for `run_sweep`, the store and the clock ---------------------------------------
# Pinned by mutation testing (docs/testing.md); in mutmut's fast selection.

INITIAL = np.array([2.0, 3.0])  # [S] initial loss of each seed, at every step size
T = 4  # logged steps


def member(e, s, *, bad_seed=None):
  """(final, max, finite) of seed s at exponent e: best at 10**-1, 10 x initial above 10**0."""
  final = INITIAL[s] * (0.2 + 0.1 * (e + 0.8)**2) + 0.01 * s
  high = 10.0 if (e > 0.25 or s == bad_seed) else 1.0
  finite = not (e >= 1.0 and s == 1)  # a NaN member, so `finite` is not all True
  return final, high * INITIAL[s], finite


def is_diverged(e, s, threshold=1.5, table=member, **kwargs):
  _, high, finite = table(e, s, **kwargs)
  return not finite or high > threshold * INITIAL[s]


def history(e, s):
  return 100.0 * s + 10.0 * e + np.arange(T)


class FakeRunSweep:
  """Stands for `driver.run_sweep`: records each call, returns the table above."""

  def __init__(self, bad_seed=None, make_dir=True, table=member):
    self.calls = []
    self.table = lambda e, s: table(e, s, bad_seed=bad_seed)
    self.make_dir = make_dir

  def __call__(self, sweep, params_S, data, learning_rates_L, **kwargs):
    exponents = np.round(np.log10(learning_rates_L), 6)
    self.calls.append(dict(sweep=sweep, params_S=params_S, data=data,
                           exponents=exponents.tolist(), **kwargs))
    if kwargs["checkpoint_dir"] is not None and self.make_dir:
      os.makedirs(kwargs["checkpoint_dir"])
    kwargs["on_segment"](1, 2)
    kwargs["on_segment"](2, 2)
    shape = (len(INITIAL), len(exponents))
    final, high, finite = np.zeros(shape), np.zeros(shape), np.zeros(shape, bool)
    dropped_at, hist = np.full(shape, -1), np.zeros(shape + (T,))
    for s, (i, e) in itertools.product(range(shape[0]), enumerate(exponents)):
      final[s, i], high[s, i], finite[s, i] = self.table(e, s)
      hist[s, i] = history(e, s)
      diverged = not finite[s, i] or high[s, i] > kwargs["threshold"] * INITIAL[s]
      if diverged and kwargs["drop_decided"]:  # as the real drop: NaN after the drop
        dropped_at[s, i] = 2
        final[s, i] = np.nan
        hist[s, i, 2:] = np.nan
    return types.SimpleNamespace(initial_loss=np.repeat(INITIAL[:, None], shape[1], 1),
                                 final_loss=final, max_loss=high, finite=finite,
                                 history={"loss": hist, "acc": -hist}, dropped_at=dropped_at)


class FakeStore:
  def __init__(self, directory, saved=None):
    self.directory = str(directory)
    self.saved = dict(saved or {})
    self.loads = []

  def load(self, key):
    self.loads.append(key)
    return self.saved.get(key)

  def save(self, key, tree):
    assert key not in self.saved
    self.saved[key] = tree


SWEEP = types.SimpleNamespace(train=types.SimpleNamespace(num_steps=12))
PARAMS, DATA, KEYS = object(), object(), object()


@pytest.fixture
def fake(monkeypatch):
  def install(**kwargs):
    run = FakeRunSweep(**kwargs)
    monkeypatch.setattr(driver, "run_sweep", run)
    # Each round takes 2.5 "seconds": start at 10 * k, end at 10 * k + 2.5.
    clock = itertools.chain.from_iterable((10.0 * k, 10.0 * k + 2.5)
                                          for k in itertools.count(1))
    monkeypatch.setattr(tuning.time, "perf_counter", lambda: next(clock))
    return run
  return install


def expected_stats(e, bad_seed=None, dropped=True):
  rows = [member(e, s, bad_seed=bad_seed) for s in range(len(INITIAL))]
  final = np.array([np.nan if (dropped and is_diverged(e, s, bad_seed=bad_seed)) else row[0]
                    for s, row in enumerate(rows)])
  return (INITIAL, final, np.array([m for _, m, _ in rows]), np.array([f for _, _, f in rows]))


def assert_columns(tuned, e, bad_seed=None, dropped=True):
  stats = tuned.stats[e]
  for got, want in zip((stats.initial, stats.final, stats.max, stats.finite),
                       expected_stats(e, bad_seed, dropped)):
    np.testing.assert_array_equal(got, want, err_msg=str(e))
  assert sorted(tuned.histories[e]) == ["acc", "loss"]
  for s in range(len(INITIAL)):
    want = history(e, s)
    if dropped and is_diverged(e, s, bad_seed=bad_seed):
      want = np.where(np.arange(T) >= 2, np.nan, want)
    np.testing.assert_array_equal(tuned.histories[e]["loss"][s], want)
    np.testing.assert_array_equal(tuned.histories[e]["acc"][s], -want)


def test_rounds_columns_calls_and_log(fake):
  run = fake()
  logs = []
  tuned = tuning.tune_sweep(SWEEP, PARAMS, DATA, keys_S=KEYS, exponents=(-2, -1, 0, 1),
                            refine_rounds=1, threshold=1.5, log=logs.append)
  assert isinstance(tuned, tuning.TunedSweep)
  assert sorted(tuned.stats) == sorted(tuned.histories) == [-2.0, -1.5, -1.0, -0.5, 0.0, 1.0]
  for e in tuned.stats:
    assert_columns(tuned, e)
  assert tuned.selection == selection.select(tuned.stats, 1.5)
  assert tuned.selection.exponent == -1.0 and tuned.selection.diverged == (1.0,)
  assert tuned.best_history is tuned.histories[-1.0]
  assert [c["exponents"] for c in run.calls] == [[-2.0, -1.0, 0.0, 1.0], [-1.5, -0.5]]
  for c in run.calls:
    assert c["sweep"] is SWEEP and c["params_S"] is PARAMS and c["data"] is DATA
    assert c["keys_S"] is KEYS and c["threshold"] == 1.5 and c["drop_decided"] is True
    assert c["checkpoint_dir"] is None and c["segment_steps"] is None
    assert sorted(c) == ["checkpoint_dir", "data", "drop_decided", "exponents", "keys_S",
                         "on_segment", "params_S", "segment_steps", "sweep", "threshold"]
  assert logs == [
      "sweep: sweeping 4 step sizes x all seeds x 12 steps, dropping diverged members "
      "between segments ...",
      "sweep: segment 1/2 done", "sweep: segment 2/2 done",
      "sweep: 4 step sizes in 2.5s; max-over-seeds final loss (* = diverged seed) "
      "1e-2.00: 1.04, 1e-1.00: 0.622, 1e+0.00: 0.802, 1e+1.00: 3*; "
      "2 diverged members dropped early",
      "sweep: sweeping 2 step sizes x all seeds x 12 steps, dropping diverged members "
      "between segments ...",
      "sweep: segment 1/2 done", "sweep: segment 2/2 done",
      "sweep: 2 step sizes in 2.5s; max-over-seeds final loss (* = diverged seed) "
      "1e-1.50: 0.757, 1e-0.50: 0.637"]


def test_threshold_reaches_the_sweep_and_the_scores(fake):
  run = fake()
  # threshold 20 > max/initial = 10: only the NaN member of 1e+1 diverged.
  logs = []
  tuned = tuning.tune_sweep(SWEEP, PARAMS, DATA, exponents=(0, 1), refine_rounds=0,
                            threshold=20.0, log=logs.append)
  assert run.calls[0]["threshold"] == 20.0 and run.calls[0]["keys_S"] is None
  assert tuned.selection == selection.select(tuned.stats, 20.0)
  assert tuned.selection.diverged == (1.0,)
  assert logs[-1].endswith("1e+0.00: 0.802, 1e+1.00: 3*; 1 diverged members dropped early")


def steep(e, s, bad_seed=None):
  """10**0.5 is best but 3 x initial: diverged at threshold 1.5, only unstable at 4."""
  del bad_seed
  final = INITIAL[s] * (0.5 if e == 0.5 else 0.9)
  return final, (3.0 if e == 0.5 else 1.0) * INITIAL[s], True


def test_threshold_reaches_the_selection(fake):
  fake(table=steep)
  tuned = tuning.tune_sweep(SWEEP, PARAMS, DATA, exponents=(-3, 0.5), refine_rounds=0,
                            threshold=4.0, log=lambda line: None)
  assert tuned.selection == selection.select(tuned.stats, 4.0)
  assert (tuned.selection.exponent, tuned.selection.fallback_from) == (-3.0, 0.5)
  assert tuned.selection.diverged == ()


def rerun_table(e, s, bad_seed=None):
  """Seed 1 diverges everywhere; seed 0 at 10**0 ends at 5 with 3 x its initial loss."""
  del bad_seed
  if s == 1:
    return 1.0, 10.0 * INITIAL[s], True
  return (5.0, 3.0 * INITIAL[s], True) if e == 0.0 else (1.0, INITIAL[s], True)


def test_rerun_selection_uses_the_threshold(fake):
  run = fake(table=rerun_table)
  tuned = tuning.tune_sweep(SWEEP, PARAMS, DATA, exponents=(-1, 0), refine_rounds=0,
                            threshold=4.0, log=lambda line: None)
  assert [c["exponents"] for c in run.calls] == [[-1.0, 0.0], [-1.0]]  # the rerun
  assert tuned.selection == selection.select(tuned.stats, 4.0)
  assert tuned.selection.scores == {-1.0: 3.0, 0.0: 5.0}  # 1.5 would give 3.0 at 10**0


def test_no_drop_runs_every_member_to_the_end(fake):
  run = fake()
  logs = []
  tuned = tuning.tune_sweep(SWEEP, PARAMS, DATA, exponents=(-1, 1), refine_rounds=0,
                            drop_decided=False, log=logs.append)
  assert run.calls[0]["drop_decided"] is False
  for e in (-1.0, 1.0):
    assert_columns(tuned, e, dropped=False)
  assert logs[0] == "sweep: sweeping 2 step sizes x all seeds x 12 steps in one compiled program ..."
  assert logs[-1] == ("sweep: 2 step sizes in 2.5s; max-over-seeds final loss (* = diverged seed) "
                      "1e-1.00: 0.622, 1e+1.00: 3*")


def test_defaults(fake, capsys):
  run = fake()
  tuned = tuning.tune_sweep(SWEEP, PARAMS, DATA)
  # The default grid -6..1, one refinement round around the winner -1, threshold 1.5, dropping.
  assert [c["exponents"] for c in run.calls] == [[-6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0],
                                                 [-1.5, -0.5]]
  assert all(c["threshold"] == 1.5 and c["drop_decided"] is True for c in run.calls)
  assert tuned.selection.exponent == -1.0
  out = capsys.readouterr().out.splitlines()
  assert len(out) == 8 and all(line.startswith("sweep: ") for line in out)


def test_winner_with_dropped_members_is_rerun_without_dropping(fake):
  # Seed 1 diverges at every step size: all scores tie at its initial loss 3, the
  # smallest exponent wins and holds a dropped member, so it is rerun to the end.
  run = fake(bad_seed=1)
  logs = []
  tuned = tuning.tune_sweep(SWEEP, PARAMS, DATA, exponents=(-2, -1, 0), refine_rounds=0,
                            store_key="adam", log=logs.append)
  assert [(c["exponents"], c["drop_decided"]) for c in run.calls] == [
      ([-2.0, -1.0, 0.0], True), ([-2.0], False)]
  assert_columns(tuned, -2.0, bad_seed=1, dropped=False)  # the complete rerun
  for e in (-1.0, 0.0):
    assert_columns(tuned, e, bad_seed=1)
  assert tuned.selection == selection.select(tuned.stats)
  assert tuned.selection.exponent == -2.0 and tuned.selection.diverged == (-2.0, -1.0, 0.0)
  assert logs[3:] == [
      "adam: 3 step sizes in 2.5s; max-over-seeds final loss (* = diverged seed) "
      "1e-2.00: 3*, 1e-1.00: 3*, 1e+0.00: 3*; 3 diverged members dropped early",
      "adam: the best step size 1e-2.00 had dropped members; rerunning it to the end",
      "adam: sweeping 1 step sizes x all seeds x 12 steps in one compiled program ...",
      "adam: segment 1/2 done", "adam: segment 2/2 done",
      "adam: 1 step sizes in 2.5s; max-over-seeds final loss (* = diverged seed) 1e-2.00: 3*"]


def test_store_keys_segment_directories_and_restore(fake, tmp_path):
  run = fake(bad_seed=1)
  store = FakeStore(tmp_path)
  kwargs = dict(exponents=(-2, -1, 0), refine_rounds=1, store=store, store_key="gd/x",
                segment_steps=3)
  first = tuning.tune_sweep(SWEEP, PARAMS, DATA, **kwargs, log=lambda line: None)
  assert sorted(store.saved) == ["gd/x/complete-2.5000", "gd/x/round0", "gd/x/round1"]
  assert store.loads == ["gd/x/round0", "gd/x/round1", "gd/x/complete-2.5000"]
  seg = os.path.join(str(tmp_path), "segments")
  assert [c["checkpoint_dir"] for c in run.calls] == [
      os.path.join(seg, "gd", "x", "round0"), os.path.join(seg, "gd", "x", "round1"),
      os.path.join(seg, "gd", "x", "complete-2.5000")]
  assert all(c["segment_steps"] == 3 for c in run.calls)
  assert not os.path.exists(os.path.join(seg, "gd", "x", "round0"))  # removed once saved
  assert os.path.isdir(os.path.join(seg, "gd", "x"))
  saved = store.saved["gd/x/round1"]
  assert sorted(saved) == ["dropped_at", "exponents", "final_loss", "finite", "history",
                           "initial_loss", "max_loss"]
  np.testing.assert_array_equal(saved["exponents"], [-2.5, -1.5])
  np.testing.assert_array_equal(saved["dropped_at"], [[-1, -1], [2, 2]])
  # A rerun restores every round (the complete rerun included) and computes nothing.
  calls, logs = len(run.calls), []
  again = tuning.tune_sweep(SWEEP, PARAMS, DATA, **kwargs, log=logs.append)
  assert len(run.calls) == calls
  assert again.selection == first.selection
  for e in first.stats:
    for field in ("initial", "final", "max", "finite"):
      np.testing.assert_array_equal(getattr(again.stats[e], field), getattr(first.stats[e], field))
    np.testing.assert_array_equal(again.histories[e]["loss"], first.histories[e]["loss"])
  assert logs[0] == ("gd/x: 3 step sizes (restored from checkpoint); max-over-seeds final loss "
                     "(* = diverged seed) 1e-2.00: 3*, 1e-1.00: 3*, 1e+0.00: 3*; "
                     "3 diverged members dropped early")
  assert len(logs) == 4


def test_segments_without_store_or_directory(fake, tmp_path):
  run = fake(make_dir=False)
  tuning.tune_sweep(SWEEP, PARAMS, DATA, exponents=(-1,), refine_rounds=0, segment_steps=3,
                    log=lambda line: None)
  assert run.calls[-1]["checkpoint_dir"] is None  # no store: nowhere to checkpoint
  store = FakeStore(tmp_path)
  tuning.tune_sweep(SWEEP, PARAMS, DATA, exponents=(-1,), refine_rounds=0, store=store,
                    log=lambda line: None)
  assert run.calls[-1]["checkpoint_dir"] is None  # no segment_steps: one segment
  # The segment directory was never made (a single segment): removing it is no error.
  tuning.tune_sweep(SWEEP, PARAMS, DATA, exponents=(-1,), refine_rounds=0,
                    store=FakeStore(tmp_path), segment_steps=12, log=lambda line: None)
  assert run.calls[-1]["checkpoint_dir"] == os.path.join(str(tmp_path), "segments", "sweep",
                                                         "round0")


def test_restores_a_round_saved_without_dropped_at(fake, tmp_path):
  # Checkpoints written before dropping existed have no "dropped_at": nothing was dropped.
  run = fake()
  f = [member(e, s)[0] for s in range(2) for e in (-1.0, 0.0)]
  saved = {"exponents": np.array([-1.0, 0.0]), "initial_loss": np.repeat(INITIAL[:, None], 2, 1),
           "final_loss": np.array(f).reshape(2, 2), "max_loss": np.repeat(INITIAL[:, None], 2, 1),
           "finite": np.ones((2, 2), bool), "history": {"loss": np.zeros((2, 2, T))}}
  store = FakeStore(tmp_path, {"sweep/round0": saved})
  logs = []
  tuned = tuning.tune_sweep(SWEEP, PARAMS, DATA, exponents=(-1, 0), refine_rounds=0,
                            store=store, log=logs.append)
  assert run.calls == []
  assert tuned.selection.exponent == -1.0
  np.testing.assert_array_equal(tuned.stats[0.0].final, [f[1], f[3]])
  assert logs == ["sweep: 2 step sizes (restored from checkpoint); max-over-seeds final loss "
                  "(* = diverged seed) 1e-1.00: 0.622, 1e+0.00: 0.802"]
