"""Step-size selection of paper H, App. A.4.

Step sizes are ``10**e`` with ``e`` on a dyadic grid: first the sparse grid
``e = -6, ..., 1``, then ``e* ± 1/2`` around the best (``refine_rounds=2``
adds ``e* ± 1/4``). A member (one seed at one step size) *diverged* if its
loss was ever NaN/inf or exceeded ``threshold`` (1.5) times its initial loss;
its score is then its initial loss. A step size's score is the maximum over
seeds of the members' scores (final loss, or initial loss if diverged); the
best minimises it. If the winner is *unstable* (some seed's loss went above
its initial loss at some step) the next smaller evaluated step size without a
diverged seed is taken instead.

On separable data (d > n) huge step sizes first blow the loss up to 1e2-1e4
and then collapse it to ~0; the "at ANY step" rule keeps them from winning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

SPARSE_EXPONENTS = tuple(float(e) for e in range(-6, 2))


def diverged_so_far(initial, max_loss, finite, threshold: float = 1.5) -> np.ndarray:
  """Elementwise: the loss was NaN/inf, or above ``threshold`` x its initial loss, at some step.

  The rule that `LossStats.diverged` applies at the end of a run and
  `run_sweep`'s member dropping applies after each segment.
  """
  return ~finite | ~np.isfinite(initial) | (max_loss > threshold * initial)


@dataclasses.dataclass(frozen=True)
class LossStats:
  """Loss tracking of the seeds run at one step size, each field ``[S]``."""

  initial: np.ndarray
  final: np.ndarray
  max: np.ndarray
  finite: np.ndarray

  @classmethod
  def from_result(cls, result, index: int) -> "LossStats":
    """Stats of learning-rate column ``index`` of a sweep `TrainResult` ``[S, L]``."""
    get = lambda a: np.asarray(a)[:, index]
    return cls(initial=get(result.initial_loss), final=get(result.final_loss),
               max=get(result.max_loss), finite=get(result.finite))

  def diverged(self, threshold: float = 1.5) -> np.ndarray:
    """``[S]`` bool: NaN/inf at any step, or loss above threshold x initial at any step."""
    return (diverged_so_far(self.initial, self.max, self.finite, threshold)
            | ~np.isfinite(self.final))

  def unstable(self) -> np.ndarray:
    """``[S]`` bool: the loss went above its initial value at some step."""
    return self.max > self.initial

  def score(self, threshold: float = 1.5) -> float:
    """Max over seeds of the final loss (the initial loss for diverged seeds)."""
    return float(np.max(np.where(self.diverged(threshold), self.initial, self.final)))


@dataclasses.dataclass(frozen=True)
class Selection:
  """The chosen step size and the evidence for it."""

  exponent: float
  scores: dict[float, float]
  diverged: tuple[float, ...]  # exponents with at least one diverged seed
  fallback_from: float | None  # the unstable winner that was replaced, if any
  threshold: float = 1.5  # the divergence threshold the selection used

  @property
  def winner(self) -> float:
    """The best exponent by score, before the stability fallback."""
    return self.exponent if self.fallback_from is None else self.fallback_from

  @property
  def learning_rate(self) -> float:
    return float(10.0**self.exponent)

  @property
  def diverged_learning_rates(self) -> list[float]:
    return [float(10.0**e) for e in self.diverged]


def select(stats: Mapping[float, LossStats], threshold: float = 1.5) -> Selection:
  """Applies the paper's rule to step sizes already evaluated (keys: exponents)."""
  if not stats:
    raise ValueError("stats must hold at least one evaluated step size")
  exponents = sorted(stats)
  scores = {e: stats[e].score(threshold) for e in exponents}
  diverged = tuple(e for e in exponents if stats[e].diverged(threshold).any())
  # Ties (e.g. everything diverged) go to the smaller, safer step size.
  best = min(exponents, key=lambda e: (scores[e], e))
  fallback_from = None
  if stats[best].unstable().any():
    smaller = [e for e in exponents if e < best and e not in diverged]
    if smaller:
      fallback_from, best = best, smaller[-1]
  return Selection(exponent=best, scores=scores, diverged=diverged, fallback_from=fallback_from,
                   threshold=threshold)


def refinement(best: float, round_index: int, evaluated, bounds=(-6.0, 1.0)) -> list[float]:
  """Exponents ``best ± 2**-round_index`` inside ``bounds`` not yet evaluated."""
  offset = 2.0**-round_index
  return [e for e in (best - offset, best + offset)
          if bounds[0] <= e <= bounds[1] and e not in evaluated]


def tune(evaluate: Callable[[list[float]], Mapping[float, LossStats]], *,
         exponents=SPARSE_EXPONENTS, refine_rounds: int = 1, threshold: float = 1.5,
         bounds=(-6.0, 1.0)) -> tuple[Selection, dict[float, LossStats]]:
  """Grid search with dyadic refinement around the best step size.

  Args:
    evaluate: ``exponents -> {exponent: LossStats}``; one call is one compiled
      sweep over those step sizes (all seeds at once).
    exponents: the sparse grid (default ``-6..1``).
    refine_rounds: rounds of refinement (1: half powers, 2: also quarters).
    threshold: divergence threshold on loss / initial loss.
    bounds: exponents outside are never evaluated.

  Returns:
    ``(selection, stats)`` with the stats of every evaluated step size.

  Example (a toy loss that is best at step size 10**-2 and diverges above 10**0):
    >>> def evaluate(exponents):
    ...   return {e: LossStats(initial=np.array([1.0]), final=np.array([abs(e + 2) / 8]),
    ...                        max=np.array([1.0 if e <= 0 else 9.0]),
    ...                        finite=np.array([True])) for e in exponents}
    >>> selection, stats = tune(evaluate, refine_rounds=1)
    >>> selection.exponent, sorted(stats)[:3], selection.diverged
    (-2.0, [-6.0, -5.0, -4.0], (1.0,))
  """
  if refine_rounds < 0:
    raise ValueError(f"refine_rounds must be >= 0, got {refine_rounds}")
  stats = dict(evaluate([float(e) for e in exponents]))
  for round_index in range(1, refine_rounds + 1):
    todo = refinement(select(stats, threshold).winner, round_index, stats, bounds)
    if todo:
      stats.update(evaluate(todo))
  return select(stats, threshold), stats
