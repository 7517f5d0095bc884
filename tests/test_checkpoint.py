import jax
import numpy as np
import pytest

from conftest import make_linear_train, small_problem
from imbalance_jax import train


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
  kwargs = dict(segment_steps=3, drop_decided=True, return_extras=True)
  reference, ref_extras = train.run_sweep(sweep, params_S, ds, rates, **kwargs)
  assert np.all(ref_extras["dropped_at"][:, 2:] == 3)

  def crash_after_two(done, total):
    if done == 2:
      raise Interrupt

  with pytest.raises(Interrupt):
    train.run_sweep(sweep, params_S, ds, rates, checkpoint_dir=str(tmp_path),
                    on_segment=crash_after_two, **kwargs)
  seen = []
  resumed, extras = train.run_sweep(sweep, params_S, ds, rates, checkpoint_dir=str(tmp_path),
                                    on_segment=lambda d, t: seen.append(d), **kwargs)
  assert seen == [3, 4]  # resumed from the compacted state saved after segment 2
  np.testing.assert_array_equal(extras["dropped_at"], ref_extras["dropped_at"])
  jax.tree.map(np.testing.assert_array_equal, resumed, reference)
