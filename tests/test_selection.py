import jax
import numpy as np
import optax
import pytest

from conftest import small_problem
from imbalance_jax import optim, train
from imbalance_jax.train import selection
from imbalance_jax.train.selection import LossStats


def stats(final, initial=5.0, max_loss=None, finite=True):
  final = np.atleast_1d(np.asarray(final, float))
  initial = np.full_like(final, initial)
  max_loss = initial if max_loss is None else np.maximum(np.atleast_1d(max_loss), initial)
  return LossStats(initial=initial, final=final, max=max_loss,
                   finite=np.full(final.shape, finite))


def test_picks_min_over_lrs_of_max_over_seeds():
  chosen = selection.select({-3.0: stats([1.0, 1.2]), -2.0: stats([0.5, 1.5]),
                             -1.0: stats([2.0, 2.0])})
  assert chosen.exponent == -3.0  # max over seeds: 1.2 < 1.5 < 2.0
  assert chosen.scores == {-3.0: 1.2, -2.0: 1.5, -1.0: 2.0}
  assert chosen.learning_rate == pytest.approx(1e-3)


def test_blow_up_then_collapse_does_not_win():
  # Separable data: a huge step size blows the loss up to 1e3, then collapses it to ~0.
  chosen = selection.select({-2.0: stats(1.0), 1.0: stats(1e-4, max_loss=1e3)})
  assert chosen.exponent == -2.0
  assert chosen.diverged == (1.0,) and chosen.scores[1.0] == 5.0  # scored by its initial loss


def test_nan_member_is_diverged_and_masked():
  chosen = selection.select({-2.0: stats([1.0, 1.0]), -1.0: stats([0.1, np.nan], finite=False)})
  assert chosen.exponent == -2.0 and chosen.diverged == (-1.0,)
  assert np.isfinite(chosen.scores[-1.0])


def test_threshold_is_1_5_times_initial_loss_at_any_step():
  assert not stats(1.0, max_loss=7.4).diverged().any()
  assert stats(1.0, max_loss=7.6).diverged().all()
  assert not stats(1.0, initial=2.0, max_loss=3.0).diverged().any()  # exactly 1.5 x: kept
  # The default threshold is 1.5: a seed that doubled its loss scores its initial loss.
  assert stats(1.0, max_loss=10.0).score() == 5.0
  assert stats(1.0, max_loss=10.0).score(2.5) == 1.0


def test_each_non_finite_signal_alone_is_diverged():
  finite, nan, inf = np.array([True]), np.array([np.nan]), np.array([np.inf])
  one = np.array([1.0])
  for case in (dict(initial=one, final=nan, max=one, finite=finite),  # final loss NaN
               dict(initial=one, final=one, max=one, finite=~finite),  # NaN at some step
               dict(initial=inf, final=one, max=inf, finite=finite)):  # initial loss inf
    assert LossStats(**case).diverged().all(), case


def test_unstable_winner_falls_back_to_next_smaller():
  evaluated = {-3.0: stats(2.0), -2.5: stats(1.5), -2.0: stats(1.0, max_loss=6.0)}
  chosen = selection.select(evaluated)
  assert chosen.exponent == -2.5 and chosen.fallback_from == -2.0 and chosen.winner == -2.0


def test_all_diverged_takes_smallest():
  chosen = selection.select({-1.0: stats(0.0, max_loss=1e9), 0.0: stats(0.0, max_loss=1e9)})
  assert chosen.exponent == -1.0


def test_tune_refines_with_half_then_quarter_powers():
  calls = []
  optimum = -2.3

  def evaluate(exponents):
    calls.append(list(exponents))
    return {e: stats(abs(e - optimum)) for e in exponents}

  chosen, evaluated = selection.tune(evaluate, refine_rounds=2)
  assert calls[0] == [-6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0]
  assert calls[1] == [-2.5, -1.5]
  assert calls[2] == [-2.75, -2.25]
  assert chosen.exponent == -2.25 and len(evaluated) == 12


def test_tune_stays_inside_bounds():
  calls = []

  def evaluate(exponents):
    calls.append(list(exponents))
    return {e: stats(-e) for e in exponents}  # larger is better: best at the edge 1e1

  selection.tune(evaluate, refine_rounds=1)
  assert calls[1] == [0.5]


def test_bad_arguments():
  with pytest.raises(ValueError, match="^stats must hold at least one evaluated step size$"):
    selection.select({})
  with pytest.raises(ValueError, match="refine_rounds"):
    selection.tune(lambda e: {}, refine_rounds=-1)


# ---------------------------------------------------------------------------------------------
# The stability fallback with several seeds (hand-built stats: every branch of the rule).


def seeds(finals, maxima, initial=5.0):
  finals = np.asarray(finals, float)
  return LossStats(initial=np.full_like(finals, initial), final=finals,
                   max=np.asarray(maxima, float), finite=np.ones(finals.shape, bool))


def test_fallback_skips_a_diverged_smaller_step_size():
  # The only smaller step size diverged (one seed of two): the unstable winner is kept.
  chosen = selection.select({-2.0: seeds([3.0, 3.0], [5.0, 9.0]),
                             -1.0: seeds([1.0, 1.5], [5.0, 6.0])})
  assert chosen.diverged == (-2.0,)
  assert chosen.exponent == -1.0 and chosen.fallback_from is None


def test_fallback_with_no_smaller_step_size_keeps_the_winner():
  chosen = selection.select({-1.0: seeds([1.0, 1.5], [5.0, 6.0]),
                             0.0: seeds([4.0, 4.0], [5.0, 5.0])})
  assert chosen.exponent == -1.0 and chosen.fallback_from is None and chosen.diverged == ()


def test_fallback_takes_the_nearest_smaller_stable_step_size_over_several_seeds():
  # Three seeds, one unstable at the winner; the nearest smaller step size -2 diverged in one
  # seed, so the fallback goes on to -2.5 (not -3, the smallest).
  chosen = selection.select({
      -3.0: seeds([4.0, 4.0, 4.0], [5.0, 5.0, 5.0]),
      -2.5: seeds([3.0, 3.5, 3.0], [5.0, 5.0, 5.0]),
      -2.0: seeds([2.0, 2.0, 2.0], [5.0, 5.0, 7.6]),
      -1.5: seeds([1.0, 1.0, 1.0], [5.0, 5.5, 5.0])})
  assert chosen.winner == -1.5 and chosen.fallback_from == -1.5
  assert chosen.exponent == -2.5 and chosen.diverged == (-2.0,)
  assert chosen.scores[-2.0] == 5.0  # the diverged seed scores its initial loss
  # Without the one unstable seed the winner would have been kept.
  calm = selection.select({-2.5: seeds([3.0, 3.5, 3.0], [5.0, 5.0, 5.0]),
                           -1.5: seeds([1.0, 1.0, 1.0], [5.0, 5.0, 5.0])})
  assert calm.exponent == -1.5 and calm.fallback_from is None


# ---------------------------------------------------------------------------------------------
# Real runs: GD on the separable heavy-tailed problem (m=3: n=24 < d=32), float64.


EXPONENTS = (-1.0, 0.0, 1 / 64, 1 / 32, 1.0)


@pytest.fixture(scope="module")
def gd_runs():
  """Three seeds x EXPONENTS, 24 steps, logged at steps 0 and 24 only: one compiled sweep."""
  with jax.enable_x64(True):
    ds, model, params_S = small_problem(num_seeds=3, m=3)
    run = train.make_train(train.classification_objective(model.apply),
                           optim.injectable("gd", 0.0), num_steps=24, log_every=24)
    result = jax.device_get(train.Sweep(run)(params_S, ds, 10.0**np.array(EXPONENTS)))
  stats = {e: LossStats.from_result(result, i) for i, e in enumerate(EXPONENTS)}
  return ds, model, params_S, result, stats


def _per_step_losses(model, params, ds, learning_rate, num_steps):
  """Plain GD written out step by step: the loss at every step 0..num_steps."""

  def loss_fn(p):
    logits = model.apply(p, ds.x)
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits, ds.y).mean()

  value_and_grad = jax.jit(jax.value_and_grad(loss_fn))
  values = []
  for _ in range(num_steps):
    loss, grads = value_and_grad(params)
    values.append(float(loss))
    params = jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)
  values.append(float(value_and_grad(params)[0]))
  return np.array(values)


def test_real_blow_up_between_logged_steps_is_diverged(gd_runs, x64):
  ds, model, params_S, result, all_stats = gd_runs
  stats = {e: all_stats[e] for e in (-1.0, 0.0, 1.0)}
  # Step size 10: the logged history (steps 0 and 24) shows a loss that only fell ...
  logged = np.asarray(result.history["loss"][:, EXPONENTS.index(1.0)])
  assert logged.shape == (3, 2) and np.all(logged[:, 1] < 0.2 * logged[:, 0])
  # ... but in between the loss exploded (checked step by step, independently of the library).
  for s in range(2):
    per_step = _per_step_losses(model, jax.tree.map(lambda a: a[s], params_S),
                                jax.tree.map(lambda a: a[s], ds), 10.0, 24)
    np.testing.assert_allclose(per_step[[0, -1]], logged[s], rtol=1e-9)
    assert per_step.max() > 5 * per_step[0]
    np.testing.assert_allclose(stats[1.0].max[s], per_step.max(), rtol=1e-9)
  assert stats[1.0].diverged().all()
  chosen = selection.select(stats)
  assert chosen.exponent == 0.0 and chosen.diverged == (1.0,)
  # A rule that saw only the logged losses would have picked the exploding step size.
  from_history = {e: LossStats(initial=s.initial, final=s.final,
                               max=np.asarray(result.history["loss"][:, EXPONENTS.index(e)]).max(1),
                               finite=s.finite)
                  for e, s in stats.items()}
  assert selection.select(from_history).exponent == 1.0


def test_real_run_one_unstable_seed_of_three_falls_back(gd_runs):
  # Found by a scan of this deterministic problem: at 10**(1/32) seed 2 goes 1.6% above its
  # initial loss (unstable, not diverged) while having the best max-over-seeds final loss.
  stats = {e: gd_runs[-1][e] for e in (0.0, 1 / 64, 1 / 32)}
  np.testing.assert_array_equal(stats[1 / 32].unstable(), [False, False, True])
  assert not any(s.diverged().any() for s in stats.values())
  assert not stats[1 / 64].unstable().any()
  scores = {e: float(np.max(s.final)) for e, s in stats.items()}
  assert min(scores, key=scores.get) == 1 / 32
  chosen = selection.select(stats)
  assert chosen.fallback_from == 1 / 32 and chosen.exponent == 1 / 64
  assert chosen.scores == pytest.approx(scores, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# tune's arguments (found by mutation testing: each of these was once ignorable).


def test_refinement_bounds_are_inclusive():
  assert selection.refinement(-5.5, 1, {}) == [-6.0, -5.0]
  assert selection.refinement(0.5, 1, {}) == [0.0, 1.0]
  assert selection.refinement(0.5, 1, {}, bounds=(-6.0, 0.9)) == [0.0]
  assert selection.refinement(-2.0, 2, {-2.25: None}) == [-1.75]


def _recording(optimum, calls, peak_at=None, peak=None):
  def evaluate(exponents):
    calls.append(list(exponents))
    return {e: stats(abs(e - optimum), max_loss=peak if e == peak_at else None)
            for e in exponents}
  return evaluate


def test_tune_defaults_one_refinement_round_and_threshold_1_5():
  calls = []
  chosen, _ = selection.tune(_recording(-2.3, calls, peak_at=-2.0, peak=8.0))  # 1.6 x initial
  assert len(calls) == 2
  assert chosen.diverged == (-2.0,)  # 8 > 1.5 x 5 at the default threshold


def test_tune_threshold_reaches_every_selection():
  calls = []
  # -2.0 peaks at 1.6 x initial: diverged at 1.5, merely unstable at 2.0. With threshold 2 it
  # wins the sparse round, so the refinement is around -2.0.
  chosen, _ = selection.tune(_recording(-2.1, calls, peak_at=-2.0, peak=8.0), threshold=2.0)
  assert calls[1] == [-2.5, -1.5]
  assert chosen.diverged == () and chosen.winner == -2.0


def test_tune_zero_rounds_and_a_single_exponent_grid():
  calls = []
  chosen, evaluated = selection.tune(_recording(-2.3, calls), exponents=(-2.0,), refine_rounds=0)
  assert calls == [[-2.0]] and chosen.exponent == -2.0 and list(evaluated) == [-2.0]
  calls.clear()
  selection.tune(_recording(-2.3, calls), exponents=(-2.0,), refine_rounds=1)
  assert calls == [[-2.0], [-2.5, -1.5]]  # the first refinement is by half powers


def test_tune_skips_evaluated_exponents_and_respects_custom_bounds():
  calls = []
  selection.tune(_recording(-2.1, calls), exponents=(-3.0, -2.5, -2.0), refine_rounds=1)
  assert calls[1] == [-1.5]  # -2.5 was already evaluated
  calls.clear()
  selection.tune(_recording(-1.0, calls), exponents=(-3.0, -2.0, -1.0), refine_rounds=1,
                 bounds=(-3.0, -1.0))
  assert calls[1] == [-1.5]  # -0.5 lies outside the bounds


def test_reports_use_the_threshold_of_the_selection():
  from imbalance_jax import reporting
  # One seed at 0.1 whose loss peaked at 1.6 x initial: diverged at 1.5, not at 2.
  by_exponent = {-1.0: stats([1.0], max_loss=8.0), -2.0: stats([2.0])}
  histories = {e: {"loss": np.array([[5.0, 1.0]]), "group_loss": np.ones((1, 2, 2))}
               for e in by_exponent}
  for threshold, diverged in ((1.5, True), (2.0, False)):
    chosen = selection.select(by_exponent, threshold)
    assert chosen.threshold == threshold
    tuned = train.TunedSweep(selection=chosen, stats=by_exponent, histories=histories)
    entry = reporting.summarize_run(tuned)
    assert entry["diverged"] == ([0.1] if diverged else [])
    # Diverged: 0.1 scores its initial loss and loses. Not diverged: it wins on its final
    # loss but, unstable, falls back to 0.01.
    assert entry["learning_rate"] == pytest.approx(0.01)
    assert entry["fallback_from"] == (None if diverged else pytest.approx(0.1))
    flags = {(r["learning_rate"], r["step"]): r["diverged"]
             for r in reporting.history_records("gd", tuned, steps=[0, 5])}
    assert flags == {(0.01, 0): False, (0.01, 5): False, (0.1, 0): diverged, (0.1, 5): diverged}
  assert selection.select(by_exponent).threshold == 1.5


def test_summary_reports_group_accuracy_at_the_last_logged_step():
  from imbalance_jax import reporting
  by_exponent = {-1.0: stats([1.0, 1.0])}
  # [seeds, logged steps, groups]: the summary averages the last step over seeds.
  accuracy = np.array([[[0.0, 0.0], [0.1, 0.1], [0.5, 0.25]],
                       [[0.0, 0.0], [0.2, 0.2], [1.0, 0.75]]])
  history = {"group_loss": np.ones((2, 3, 2)), "group_accuracy": accuracy}
  tuned = train.TunedSweep(selection=selection.select(by_exponent), stats=by_exponent,
                           histories={-1.0: history})
  assert reporting.summarize_run(tuned)["final_group_accuracy"] == [0.75, 0.5]
  del history["group_accuracy"]
  assert "final_group_accuracy" not in reporting.summarize_run(tuned)
