import numpy as np
import pytest

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
  with pytest.raises(ValueError, match="stats"):
    selection.select({})
  with pytest.raises(ValueError, match="refine_rounds"):
    selection.tune(lambda e: {}, refine_rounds=-1)
