"""`run_sweep` and `ResultStore`: segments, checkpoints, resuming and member dropping.

An interrupted sweep (with or without dropping) resumes to the result of an
uninterrupted one, and `tune_sweep` restores finished rounds from the store.
Then, case by case: the driver's helpers on hand-built arrays (`_bucket`,
`_blank`, key round trips, `LiveMembers`, `_drop_decided`, `default_segment_steps`,
the store's paths), `segment_step` and `SegmentCheckpoints`, and `run_sweep` on one
tiny sweep. The reference for `run_sweep`
is the same sweep as one compiled call (no segments, no dropping); a dropped
member is checked against what the module doc promises (real history up to the
drop, NaN after, stats as at the drop).
"""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import make_linear_train, small_problem
from imbalance_jax import train
from imbalance_jax.train import checkpoint, driver
from imbalance_jax.train.members import LiveMembers, _blank, _bucket, _fill_value
from imbalance_jax.train.sweep import plan_layout

RATES = np.array([1e-2, 1e-1, 1e3])  # 1e3 diverges in the first segment (sign descent)


class Interrupt(Exception):
  pass


def test_interrupted_sweep_resumes_to_the_same_result(x64, tmp_path):
  ds, model, params_S = small_problem(num_seeds=2)
  run = make_linear_train(model, ds.class_counts[0], "adam", 0.9, num_steps=12, log_every=3)
  sweep = train.Sweep(run)
  rates = np.array([1e-3, 1e-2, 1e-1])
  reference = train.run_sweep(sweep, params_S, ds, rates)

  def crash_after_two(done, total):
    if done == 2:
      raise Interrupt

  with pytest.raises(Interrupt):
    train.run_sweep(sweep, params_S, ds, rates, checkpoint_dir=str(tmp_path), segment_steps=3,
                    on_segment=crash_after_two)
  seen = []
  resumed = train.run_sweep(sweep, params_S, ds, rates, checkpoint_dir=str(tmp_path),
                            segment_steps=3, on_segment=lambda d, t: seen.append(d))
  assert seen == [3, 4]  # segments 1-2 came from the checkpoint
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), resumed.history,
               reference.history)
  np.testing.assert_allclose(resumed.final_loss, reference.final_loss, rtol=1e-12)
  np.testing.assert_array_equal(resumed.finite, reference.finite)


def _damage(directory):
  """A partial copy: every file of the checkpoint cut to its first 10 bytes."""
  import os
  for parent, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(parent, name)
      with open(path, "rb") as f:
        head = f.read(10)
      with open(path, "wb") as f:
        f.write(head)


def test_damaged_segment_checkpoint_is_set_aside_and_the_round_recomputed(x64, tmp_path):
  ds, model, params_S = small_problem(num_seeds=1)
  run = make_linear_train(model, ds.class_counts[0], "adam", 0.9, num_steps=12, log_every=3)
  sweep, rates = train.Sweep(run), np.array([1e-2, 1e-1])
  reference = train.run_sweep(sweep, params_S, ds, rates)

  def crash_after_two(done, total):
    if done == 2:
      raise Interrupt

  segments = tmp_path / "segments"
  with pytest.raises(Interrupt):
    train.run_sweep(sweep, params_S, ds, rates, checkpoint_dir=str(segments), segment_steps=3,
                    on_segment=crash_after_two)
  _damage(segments)
  seen = []
  resumed = train.run_sweep(sweep, params_S, ds, rates, checkpoint_dir=str(segments),
                            segment_steps=3, on_segment=lambda d, t: seen.append(d))
  assert seen == [1, 2, 3, 4]  # started afresh
  assert (tmp_path / "segments.damaged").is_dir()  # kept for inspection, not deleted
  np.testing.assert_allclose(resumed.final_loss, reference.final_loss, rtol=1e-12)


def test_damaged_result_is_set_aside_and_reads_as_missing(tmp_path, caplog):
  store = train.ResultStore(tmp_path)
  store.save("gd/round0", {"final_loss": np.array([0.5, 0.25])})
  _damage(tmp_path / "gd" / "round0")
  with caplog.at_level("WARNING"):
    assert store.load("gd/round0") is None
  assert "checkpoint 'gd/round0' at" in caplog.text and "round0.damaged" in caplog.text
  assert (tmp_path / "gd" / "round0.damaged").is_dir()
  store.save("gd/round0", {"final_loss": np.array([1.0])})  # recomputed and saved again
  np.testing.assert_array_equal(store.load("gd/round0")["final_loss"], [1.0])
  _damage(tmp_path / "gd" / "round0")
  assert store.load("gd/round0") is None
  assert (tmp_path / "gd" / "round0.damaged-2").is_dir()


def test_segment_steps_validated(x64, tmp_path):
  ds, model, params_S = small_problem(num_seeds=1)
  run = make_linear_train(model, ds.class_counts[0], num_steps=12, log_every=3)
  with pytest.raises(ValueError, match="segment_steps"):
    train.run_sweep(train.Sweep(run), params_S, ds, [0.1], checkpoint_dir=str(tmp_path),
                    segment_steps=5)


def test_result_store_roundtrip(tmp_path):
  store = train.ResultStore(tmp_path)
  assert store.load("adam+m/round0") is None
  tree = {"final": np.arange(3.0), "history": {"loss": np.ones((2, 4), np.float32)},
          "finite": np.array([True, False])}
  store.save("adam+m/round0", tree)
  back = store.load("adam+m/round0")
  jax.tree.map(np.testing.assert_array_equal, back, tree)
  with pytest.raises(ValueError, match="key"):
    store.load("/")


def test_tune_sweep_restores_rounds(x64, tmp_path):
  ds, model, params_S = small_problem(num_seeds=2)
  run = make_linear_train(model, ds.class_counts[0], "gd", 0.0, num_steps=6, log_every=3)
  store = train.ResultStore(tmp_path)
  logs = []
  first = train.tune_sweep(train.Sweep(run), params_S, ds, exponents=(-2.0, -1.0, 0.0),
                           store=store, store_key="gd", log=logs.append)
  again = train.tune_sweep(train.Sweep(run), params_S, ds, exponents=(-2.0, -1.0, 0.0),
                           store=store, store_key="gd", log=logs.append)
  assert sum("restored" in line for line in logs) == 2
  assert again.selection == first.selection
  np.testing.assert_array_equal(again.best_history["loss"], first.best_history["loss"])


def test_interrupted_dropping_sweep_resumes_to_the_same_result(x64, tmp_path):
  ds, model, params_S = small_problem(num_seeds=2)
  run = make_linear_train(model, ds.class_counts[0], "sign_descent", 0.9, num_steps=12,
                          log_every=3)
  sweep = train.Sweep(run)
  rates = 10.0**np.arange(-2, 2)  # 1e0 and 1e1 are dropped after the first segment
  kwargs = dict(segment_steps=3, drop_decided=True)
  reference = train.run_sweep(sweep, params_S, ds, rates, **kwargs)
  assert np.all(reference.dropped_at[:, 2:] == 3)

  def crash_after_two(done, total):
    if done == 2:
      raise Interrupt

  with pytest.raises(Interrupt):
    train.run_sweep(sweep, params_S, ds, rates, checkpoint_dir=str(tmp_path),
                    on_segment=crash_after_two, **kwargs)
  seen = []
  resumed = train.run_sweep(sweep, params_S, ds, rates, checkpoint_dir=str(tmp_path),
                            on_segment=lambda d, t: seen.append(d), **kwargs)
  assert seen == [3, 4]  # resumed from the compacted state saved after segment 2
  jax.tree.map(np.testing.assert_array_equal, resumed, reference)  # dropped_at included


# --- helpers on hand-built arrays, `run_sweep` case by case -------------------------------
# Pinned by mutation testing (docs/testing.md); in mutmut's fast selection.


def test_bucket_fill_and_blank():
  assert [_bucket(n) for n in range(0, 10)] == [1, 1, 2, 4, 4, 8, 8, 8, 8, 16]
  assert np.isnan(_fill_value(np.float32))
  assert _fill_value(np.int32) == 0 and _fill_value(np.bool_) == 0
  blank = _blank((2, 3), np.float32)
  assert blank.shape == (2, 3) and blank.dtype == np.float32 and np.isnan(blank).all()
  blank = _blank((4,), np.int64)
  assert blank.dtype == np.int64 and (blank == 0).all()


def test_keys_round_trip_through_raw_data():
  tree = {"key": jax.random.split(jax.random.key(3), 2), "x": jnp.arange(3.0)}
  assert driver._is_key(tree["key"]) and not driver._is_key(tree["x"])
  assert not driver._is_key(np.arange(2)) and not driver._is_key(None)
  raw = driver._keys_to_data(tree)
  assert raw["key"].dtype == jnp.uint32 and raw["key"].shape == (2, 2)
  np.testing.assert_array_equal(raw["key"], jax.random.key_data(tree["key"]))
  assert raw["x"] is tree["x"]
  back = driver._data_to_keys(raw, tree)
  assert driver._is_key(back["key"])
  np.testing.assert_array_equal(jax.random.key_data(back["key"]), raw["key"])
  assert back["x"] is tree["x"]
  rbg = {"key": jax.random.split(jax.random.key(3, impl="rbg"), 2)}  # not the default impl
  back = driver._data_to_keys(driver._keys_to_data(rbg), rbg)
  assert jax.random.key_impl(back["key"]) == jax.random.key_impl(rbg["key"])
  np.testing.assert_array_equal(jax.random.key_data(back["key"]), jax.random.key_data(rbg["key"]))
  abstract = driver._abstract({"a": np.zeros((2, 3), np.int16)})
  assert abstract == {"a": jax.ShapeDtypeStruct((2, 3), np.int16)}


def test_members_slots_scatter_compact():
  cols = np.array([[0, -1, 2], [-1, 1, -1]])
  members = LiveMembers(cols.copy(), dropped={})
  s, j, col = members.slots()
  assert s.tolist() == [0, 0, 1] and j.tolist() == [0, 2, 1] and col.tolist() == [0, 2, 1]
  out = np.zeros((2, 3, 2))
  values = np.arange(12.0).reshape(2, 3, 2) + 1
  members.scatter(out, values)
  expected = np.zeros((2, 3, 2))
  expected[0, 0], expected[0, 2], expected[1, 1] = values[0, 0], values[0, 2], values[1, 1]
  np.testing.assert_array_equal(out, expected)
  index, compacted = members.compact(2)
  assert index.tolist() == [[0, 2], [1, 1]]  # live slots first; padding repeats slot 0
  assert compacted.cols.tolist() == [[0, 2], [1, -1]]
  assert members.cols.tolist() == cols.tolist()  # a new record: the old one is unchanged


def test_default_segment_steps():
  assert driver.default_segment_steps(300, 10) == 30
  assert driver.default_segment_steps(12, 3) == 3  # 4 segments
  assert driver.default_segment_steps(22, 1) == 11  # divisors of 22 up to 10: 1, 2
  assert driver.default_segment_steps(7, 7) == 7
  assert driver.default_segment_steps(300, 10, max_segments=3) == 100
  assert driver.default_segment_steps(20, 1) == 2  # 10 segments: the bound is inclusive


State = collections.namedtuple("State", "initial_loss max_loss finite")


def fresh_dropped():
  return {"initial": np.full((2, 4), np.nan), "max": np.full((2, 4), np.nan),
          "finite": np.ones((2, 4), bool), "at": np.full((2, 4), -1)}


def test_drop_marks_decided_members_and_keeps_the_width():
  state = State(initial_loss=np.array([[1.0, 1.0, 1.0, 1.0], [2.0, np.nan, 2.0, 2.0]]),
                max_loss=np.array([[1.5, 1.6, 0.5, 1.0], [3.0, 1.0, 1.0, 2.0]]),
                finite=np.array([[True, True, True, False], [True] * 4]))
  before = LiveMembers(np.tile(np.arange(4), (2, 1)), fresh_dropped())
  # Decided: (0, 1) above 1.5 x initial, (0, 3) not finite, (1, 1) NaN initial loss;
  # exactly 1.5 x initial (0, 0) and (1, 0) is not. Seed 1 keeps 3 members: width stays 4.
  got, members = driver._drop_decided(state, before, 1.5, 6, plan_layout(2, 4, 1), None)
  assert got is state
  assert members.cols.tolist() == [[0, -1, 2, -1], [0, -1, 2, 3]]
  jax.tree.map(np.testing.assert_array_equal, before.dropped, fresh_dropped())  # unchanged
  assert before.cols.tolist() == [list(range(4))] * 2
  dropped = members.dropped
  assert dropped["at"].tolist() == [[-1, 6, -1, 6], [-1, 6, -1, -1]]
  nan = np.nan
  np.testing.assert_array_equal(dropped["initial"], [[nan, 1, nan, 1], [nan, nan, nan, nan]])
  np.testing.assert_array_equal(dropped["max"], [[nan, 1.6, nan, 1], [nan, 1, nan, nan]])
  assert dropped["finite"].tolist() == [[True, True, True, False], [True] * 4]


def test_drop_compacts_to_the_next_power_of_two():
  state = State(initial_loss=np.ones((2, 4)),
                max_loss=np.array([[1.0, 9.0, 1.0, 9.0], [9.0, 1.0, 9.0, 9.0]]),
                finite=np.ones((2, 4), bool))
  members = LiveMembers(np.tile(np.arange(4), (2, 1)), fresh_dropped())
  got, members = driver._drop_decided(state, members, 2.0, 3, plan_layout(2, 4, 1), None)
  assert members.cols.tolist() == [[0, 2], [1, -1]]
  assert members.dropped["at"].tolist() == [[-1, 3, -1, 3], [3, -1, 3, 3]]
  np.testing.assert_array_equal(got.max_loss, [[1.0, 1.0], [1.0, 1.0]])
  np.testing.assert_array_equal(got.initial_loss, np.ones((2, 2)))
  # One live member left in all: width 1.
  got, members = driver._drop_decided(State(np.ones((2, 2)), np.array([[1.0, 5.0], [1.0, 1.0]]),
                                            np.ones((2, 2), bool)), members, 2.0, 6,
                                      plan_layout(2, 4, 1), None)
  assert members.cols.tolist() == [[0], [1]]
  assert members.dropped["at"].tolist() == [[-1, 3, 6, 3], [3, -1, 3, 3]]


def test_result_store_paths_and_round_trip(tmp_path):
  store = checkpoint.ResultStore(tmp_path / "rel" / ".." / "store")
  assert store.directory == str(tmp_path / "store")
  assert store._path("adam+m/round0") == str(tmp_path / "store" / "adam_m" / "round0")
  assert store._path("//a b//c=1.5-x_y") == str(tmp_path / "store" / "a_b" / "c=1.5-x_y")
  with pytest.raises(ValueError, match=r"^key must name a checkpoint, got '/'$"):
    store.load("/")
  assert store.load("a/b") is None
  tree = {"final": np.arange(3.0), "ok": np.array([True, False])}
  store.save("a/b", tree)
  store.save("a/b", {"final": np.arange(3.0) + 1, "ok": np.array([False, False])})  # overwrites
  back = store.load("a/b")
  np.testing.assert_array_equal(back["final"], np.arange(3.0) + 1)
  np.testing.assert_array_equal(back["ok"], [False, False])


@pytest.fixture(scope="module")
def tiny():
  """2 seeds x 3 step sizes, sign descent, 12 steps logged every 3, float64."""
  with jax.enable_x64(True):
    ds, model, params_S = small_problem(num_seeds=2)
    run = make_linear_train(model, ds.class_counts[0], "sign_descent", 0.0, num_steps=12,
                            log_every=3)
    sweep = train.Sweep(run)
    reference = jax.device_get(sweep(params_S, ds, RATES))
    first3 = train.Sweep(make_linear_train(model, ds.class_counts[0], "sign_descent", 0.0,
                                           num_steps=3, log_every=3))
    head = jax.device_get(first3(params_S, ds, RATES))
    yield ds, params_S, sweep, reference, head


def assert_live_equal(got, reference, live):
  for name in ("initial_loss", "final_loss", "max_loss", "finite"):
    np.testing.assert_allclose(np.asarray(getattr(got, name))[live],
                               np.asarray(getattr(reference, name))[live], rtol=1e-12)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a[live], b[live], rtol=1e-12, atol=1e-14),
               got.history, jax.device_get(reference.history))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a[live], b[live], rtol=1e-12, atol=1e-14),
               got.params, jax.device_get(reference.params))


def test_run_sweep_one_program_and_dropped_at(tiny):
  ds, params_S, sweep, reference, _ = tiny
  with jax.enable_x64(True):
    got = driver.run_sweep(sweep, params_S, ds, RATES)
    assert isinstance(got, train.SweepResult) and isinstance(got, train.TrainResult)
    assert_live_equal(got, reference, np.ones((2, 3), bool))
    assert got.dropped_at.tolist() == [[-1] * 3] * 2
    with pytest.raises(ValueError, match=r"^segment_steps=5 must divide num_steps=12 and be a "
                       r"multiple of log_every=3$"):
      driver.run_sweep(sweep, params_S, ds, RATES, segment_steps=5)
    with pytest.raises(ValueError, match="segment_steps=2 must divide"):
      driver.run_sweep(sweep, params_S, ds, RATES, segment_steps=2)
    with pytest.raises(ValueError, match="^threshold must be"):
      driver.run_sweep(sweep, params_S, ds, RATES, threshold=0.0)
    with pytest.raises(ValueError, match=r"^segment_steps=1 must divide num_steps=12 and be a "
                       r"multiple of log_every=3$"):  # 1 is an allowed count, not a multiple
      driver.run_sweep(sweep, params_S, ds, RATES, segment_steps=1)
    with pytest.raises(ValueError, match=r"^segment_steps must be >= 1, got 0$"):
      driver.run_sweep(sweep, params_S, ds, RATES, segment_steps=0)


def test_run_sweep_dropping_members(tiny, monkeypatch):
  ds, params_S, sweep, reference, head = tiny
  seen, drops, real_drop = [], [], driver._drop_decided
  monkeypatch.setattr(driver, "_drop_decided", lambda *a: drops.append(a[3]) or real_drop(*a))
  with jax.enable_x64(True):
    got = driver.run_sweep(sweep, params_S, ds, RATES, drop_decided=True,
                           on_segment=lambda *a: seen.append(a))
  assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # default segments: 12 / 3
  assert drops == [3, 6, 9]  # decided after every segment but the last (it runs to the end)
  assert got.dropped_at.tolist() == [[-1, -1, 3], [-1, -1, 3]]
  live = got.dropped_at < 0
  assert_live_equal(got, reference, live)
  gone = ~live
  np.testing.assert_allclose(got.initial_loss[gone], reference.initial_loss[gone], rtol=1e-12)
  # max_loss as at the drop: above the threshold, below the whole run's maximum.
  assert (got.max_loss[gone] > 1.5 * got.initial_loss[gone]).all()
  assert (got.max_loss[gone] <= reference.max_loss[gone]).all()
  np.testing.assert_array_equal(got.finite[gone], head.finite[gone])
  assert np.isnan(got.final_loss[gone]).all()
  assert all(np.isnan(leaf[gone]).all() for leaf in jax.tree.leaves(got.params))
  for name, leaf in got.history.items():
    ref = np.asarray(reference.history[name])
    np.testing.assert_allclose(leaf[gone][:, 0], ref[gone][:, 0], rtol=1e-12, err_msg=name)
    if np.issubdtype(leaf.dtype, np.inexact):
      assert np.isnan(leaf[gone][:, 1:]).all(), name
    else:
      assert (leaf[gone][:, 1:] == 0).all(), name
  # A threshold above the blow-up keeps every member.
  with jax.enable_x64(True):
    kept = driver.run_sweep(sweep, params_S, ds, RATES, drop_decided=True, threshold=1e30,
                            segment_steps=6)
  assert kept.dropped_at.tolist() == [[-1] * 3] * 2


def test_run_sweep_resumes_from_a_checkpointed_segment(tiny, tmp_path):
  ds, params_S, sweep, _, _ = tiny

  def crash_after_two(done, total):
    if done == 2:
      raise Interrupt

  with jax.enable_x64(True):
    expected = driver.run_sweep(sweep, params_S, ds, RATES, drop_decided=True)
    with pytest.raises(Interrupt):
      driver.run_sweep(sweep, params_S, ds, RATES, drop_decided=True,
                           checkpoint_dir=str(tmp_path), on_segment=crash_after_two)
    seen = []
    got = driver.run_sweep(sweep, params_S, ds, RATES, drop_decided=True,
                           checkpoint_dir=str(tmp_path), on_segment=lambda d, t: seen.append(d))
  assert seen == [3, 4]
  np.testing.assert_array_equal(got.dropped_at, expected.dropped_at)
  for name in ("initial_loss", "final_loss", "max_loss", "finite"):
    np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
  jax.tree.map(np.testing.assert_array_equal, got.history, expected.history)
  jax.tree.map(np.testing.assert_array_equal, got.params, expected.params)


def test_run_sweep_saves_one_checkpoint_per_segment(tiny, tmp_path, monkeypatch):
  # `SegmentCheckpoints.save` is the unit of work a kill-and-resume harness counts.
  ds, params_S, sweep, _, _ = tiny
  events, real_save = [], driver.SegmentCheckpoints.save
  monkeypatch.setattr(driver.SegmentCheckpoints, "save",
                      lambda self, n, progress: events.append(("save", n))
                      or real_save(self, n, progress))
  kwargs = dict(drop_decided=True, checkpoint_dir=str(tmp_path),
                on_segment=lambda done, total: events.append(("segment", done)))
  with jax.enable_x64(True):
    first = driver.run_sweep(sweep, params_S, ds, RATES, **kwargs)
    assert events == [(kind, n) for n in range(1, 5) for kind in ("save", "segment")]
    events.clear()
    again = driver.run_sweep(sweep, params_S, ds, RATES, **kwargs)  # all 4 segments restored
  assert events == []
  jax.tree.map(np.testing.assert_array_equal, again, first)


def test_segment_step_leaves_its_input_and_checkpoints_round_trip(tiny, tmp_path):
  ds, params_S, sweep, _, _ = tiny
  with jax.enable_x64(True):
    layout, state, placed = sweep.init(params_S, ds, RATES)
    plan = driver.SegmentPlan(segment_steps=3, num_segments=4, logs_per_segment=1,
                              drop_decided=True, threshold=1.5, layout=layout, sharding=None)
    fresh = driver._start(sweep, state, placed, plan)
    host = lambda p: jax.tree.map(np.copy, (p.history, p.members.cols, p.members.dropped))
    before = host(fresh)
    after = driver.segment_step(sweep, placed, fresh, 0, plan)
    jax.tree.map(np.testing.assert_array_equal, host(fresh), before)
    assert after.members.dropped["at"].tolist() == [[-1, -1, 3]] * 2  # 1e3, after 3 steps
    assert after.members.width == 2 and fresh.members.width == 3
    assert np.isfinite(after.history["loss"][:, :2, 0]).all()  # step 0 logged, live or not
    checkpoints = driver.SegmentCheckpoints(tmp_path)
    done, restored = checkpoints.restore(fresh)
    assert done == 0 and restored is fresh
    checkpoints.save(1, after)
    done, restored = checkpoints.restore(fresh)
    checkpoints.close()
  assert done == 1
  jax.tree.map(np.testing.assert_array_equal, host(restored), host(after))
  jax.tree.map(np.testing.assert_array_equal, restored.state, after.state)


def test_run_sweep_without_dropping_is_one_program_even_with_a_directory(tiny, tmp_path):
  ds, params_S, sweep, reference, _ = tiny
  seen = []
  with jax.enable_x64(True):
    got = driver.run_sweep(sweep, params_S, ds, RATES, checkpoint_dir=str(tmp_path / "c"),
                               on_segment=lambda *a: seen.append(a))
  assert seen == []  # one segment: the direct call, nothing checkpointed
  assert not (tmp_path / "c").exists()
  assert_live_equal(got, reference, np.ones((2, 3), bool))


def test_run_sweep_default_threshold_is_1_5(tiny):
  # At step size 0.25 both seeds' loss rises to about 2.2 and 1.7 x initial: diverged at 1.5.
  ds, params_S, sweep, _, _ = tiny
  with jax.enable_x64(True):
    strict = driver.run_sweep(sweep, params_S, ds, [0.25], drop_decided=True)
    loose = driver.run_sweep(sweep, params_S, ds, [0.25], drop_decided=True, threshold=2.5)
  assert (strict.dropped_at > 0).any()
  assert (loose.dropped_at == -1).all()


def test_run_sweep_segment_paths(tiny, tmp_path):
  ds, params_S, sweep, reference, _ = tiny
  seen = []
  with jax.enable_x64(True):
    # One segment with dropping: the direct call (nothing to drop between segments).
    one = driver.run_sweep(sweep, params_S, ds, RATES, drop_decided=True, segment_steps=12,
                           on_segment=lambda *a: seen.append(a))
    assert seen == [] and (one.dropped_at == -1).all()
    # Two segments with dropping: the blown-up member is dropped after the first.
    two = driver.run_sweep(sweep, params_S, ds, RATES, drop_decided=True, segment_steps=6)
    assert two.dropped_at.tolist() == [[-1, -1, 6], [-1, -1, 6]]
    # No dropping but a directory: segmented and checkpointed, same numbers.
    got = driver.run_sweep(sweep, params_S, ds, RATES, segment_steps=6,
                               checkpoint_dir=str(tmp_path), on_segment=lambda *a: seen.append(a))
  assert seen == [(1, 2), (2, 2)]
  assert_live_equal(got, reference, np.ones((2, 3), bool))


def test_run_sweep_keeps_dtypes_and_one_checkpoint(tmp_path):
  """float32 sweep, members dropped: the result's dtypes are the state's (not numpy's float64
  defaults), and the checkpoint directory keeps only the last segment."""
  ds, model, params_S = small_problem(num_seeds=2, dtype=np.float32)
  run = make_linear_train(model, ds.class_counts[0], "sign_descent", 0.0, num_steps=12,
                          log_every=3)
  sweep = train.Sweep(run)
  got = driver.run_sweep(sweep, params_S, ds, RATES, drop_decided=True,
                         checkpoint_dir=str(tmp_path))
  assert got.dropped_at.tolist() == [[-1, -1, 3], [-1, -1, 3]]
  for name in ("initial_loss", "final_loss", "max_loss"):
    assert getattr(got, name).dtype == np.float32, name
  assert got.finite.dtype == np.bool_ and got.finite.all()  # 1e3 blows up, but finitely
  assert got.history["loss"].dtype == np.float32
  assert {leaf.dtype for leaf in jax.tree.leaves(got.params)} == {np.dtype(np.float32)}
  assert got.dropped_at.dtype.kind == "i"
  reference = jax.device_get(sweep(params_S, ds, RATES))
  live = got.dropped_at < 0
  np.testing.assert_allclose(got.final_loss[live], reference.final_loss[live], rtol=1e-5)
  np.testing.assert_allclose(got.initial_loss, reference.initial_loss, rtol=1e-6)
  assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["4"]
