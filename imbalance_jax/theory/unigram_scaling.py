"""Iterations to reach eps-suboptimality on the unigram model, and their growth with d.

A sweep over step sizes is one compiled program (`imbalance_jax.train.Sweep`
of a `make_train` run), advanced in segments: it stops at the end of the first
segment in which some member reaches ``f - f* <= eps`` (no other member can
then do better), or at ``max_steps``. Members that have not reached eps when
the sweep stops are *censored* at the number of steps they ran; a method is
censored at a size d when none of its step sizes reached eps within
``max_steps``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks, optim
from imbalance_jax.data.theory_problems import zipf_distribution
from imbalance_jax.theory.unigram import (theory_iterations, theory_step_size, unigram_loss,
                                          unigram_suboptimality)
from imbalance_jax.train import Sweep, make_train

# name -> (optimizer, momentum, norm of the theory step size or None for a tuned step size)
METHODS = {
    "normalized_gd": ("normalized_gd", 0.0, None),
    "sign_descent": ("sign_descent", 0.0, None),
    "adam": ("adam", 0.9, None),
    "gd": ("gd", 0.0, None),
    "normalized_gd@theory": ("normalized_gd", 0.0, "l2"),
    "sign_descent@theory": ("sign_descent", 0.0, "linf"),
}


@dataclasses.dataclass(frozen=True)
class Reach:
  """Outcome of one sweep: steps each step size needed to reach eps.

  Attributes:
    learning_rates: ``[L]``.
    iterations: ``[L]`` first step t with ``f(theta_t) - f* <= eps``; -1 if not reached.
    steps_run: steps every member ran (their censoring time if not reached).
    final_gap: ``[L]`` suboptimality when the sweep stopped.
  """

  learning_rates: np.ndarray
  iterations: np.ndarray
  steps_run: int
  final_gap: np.ndarray

  @property
  def reached(self) -> np.ndarray:
    return self.iterations >= 0

  @property
  def best_index(self) -> int | None:
    """Fewest iterations; ties go to the smaller step size. None if nobody reached eps."""
    if not self.reached.any():
      return None
    key = np.where(self.reached, self.iterations, np.iinfo(np.int64).max)
    return int(np.lexsort((self.learning_rates, key))[0])


def iterations_to_reach(pi_D, make_optimizer: Callable, learning_rates: Sequence[float], eps: float,
                        max_steps: int, *, segment_steps: int = 50, dtype=jnp.float32) -> Reach:
  """Runs every step size from theta = 0 until one reaches ``eps`` or ``max_steps``.

  Args:
    pi_D: token distribution (positive, sums to 1).
    make_optimizer: ``learning_rate -> GradientTransformation`` (e.g.
      ``imbalance_jax.optim.injectable("sign_descent", 0.0)``).
    learning_rates: step sizes swept in one compiled program.
    eps: target suboptimality ``f - f*`` (> 0).
    max_steps: iteration cap (a multiple of ``segment_steps``).
    segment_steps: steps per compiled segment (the stopping granularity).
    dtype: parameter dtype.

  Returns:
    A `Reach`.

  Example:
    >>> reach = iterations_to_reach(zipf_distribution(10), optim.injectable("sign_descent", 0.0),
    ...                             [0.01, 0.1], eps=0.05, max_steps=100, segment_steps=20)
    >>> reach.iterations.tolist(), reach.steps_run  # 0.01 is still short of eps after 20 steps
    ([-1, 7], 20)
    >>> reach.best_index, bool(reach.final_gap[1] <= 0.05)
    (1, True)
  """
  _checks.check_positive("eps", eps)
  segment_steps = _checks.check_int("segment_steps", segment_steps, minimum=1)
  max_steps = _checks.check_int("max_steps", max_steps, minimum=segment_steps)
  if max_steps % segment_steps:
    raise ValueError(f"max_steps={max_steps} must be a multiple of segment_steps={segment_steps}")
  pi = jnp.asarray(pi_D, dtype)

  def objective(theta, pi_D):
    return unigram_loss(theta, pi_D), {"loss": unigram_suboptimality(theta, pi_D)}

  train = make_train(objective, make_optimizer, num_steps=segment_steps, log_every=1,
                     metrics_fn=lambda params, grads, aux, data: aux["loss"])
  sweep = Sweep(train, data_per_seed=False)
  rates = np.asarray(learning_rates, np.float64)
  _, state, placed = sweep.init(jnp.zeros((1,) + pi.shape, dtype), pi, rates)
  num_rates = rates.shape[0]  # members past it pad the grid to the device mesh
  iterations = np.full(rates.shape, -1, np.int64)
  steps = 0
  while steps < max_steps and not (iterations >= 0).any():
    state, gap_SLT = sweep.run(state, placed, segment_steps)
    below_LT = np.asarray(gap_SLT)[0, :num_rates] <= eps
    hit = below_LT.any(axis=1)
    iterations = np.where(hit, steps + np.argmax(below_LT, axis=1), iterations)
    steps += segment_steps
  _, final_gap = sweep.finish(state, placed)
  final_gap = np.asarray(final_gap)[0, :num_rates]
  if not (iterations >= 0).any():  # the last iterate is not in any segment's history
    iterations = np.where(final_gap <= eps, steps, iterations)
  return Reach(learning_rates=rates, iterations=iterations, steps_run=steps, final_gap=final_gap)


@dataclasses.dataclass(frozen=True)
class Tuned:
  """Best step size of a dyadic search (``10**exponent``) and every sweep behind it."""

  exponent: float | None
  iterations: int | None  # None: censored, no step size reached eps
  reaches: tuple[Reach, ...]

  @property
  def censored(self) -> bool:
    return self.iterations is None

  @property
  def steps_run(self) -> int:
    return max(r.steps_run for r in self.reaches)


def tune_iterations(pi_D, make_optimizer: Callable, exponents: Sequence[float], eps: float,
                    max_steps: int, *, segment_steps: int = 50, dtype=jnp.float32) -> Tuned:
  """Step size ``10**e`` with the fewest iterations to reach eps.

  Round 1 sweeps ``exponents`` (spacing h). Round 2 sweeps ``e* +- h/2`` around
  the best and, if the best is at an end of the grid (which would otherwise
  make it an artefact of the grid), two more points ``h, 2h`` beyond that end;
  round 2 is capped at the best count so far.
  """
  exponents = sorted(float(e) for e in exponents)
  if not exponents:
    raise ValueError("exponents must be non-empty")
  spacing = float(np.min(np.diff(exponents))) if len(exponents) > 1 else 0.5
  first = iterations_to_reach(pi_D, make_optimizer, 10.0 ** np.array(exponents), eps, max_steps,
                              segment_steps=segment_steps, dtype=dtype)
  reaches = [first]
  best = first.best_index
  if best is None:
    return Tuned(exponent=None, iterations=None, reaches=tuple(reaches))
  best_exponent, best_iterations = exponents[best], int(first.iterations[best])
  extra = [best_exponent - spacing / 2, best_exponent + spacing / 2]
  if best_exponent == exponents[-1]:
    extra += [best_exponent + spacing, best_exponent + 2 * spacing]
  if best_exponent == exponents[0] and len(exponents) > 1:
    extra += [best_exponent - spacing, best_exponent - 2 * spacing]
  cap = max(segment_steps, -(-best_iterations // segment_steps) * segment_steps)
  second = iterations_to_reach(pi_D, make_optimizer, 10.0 ** np.array(extra), eps, cap,
                               segment_steps=segment_steps, dtype=dtype)
  reaches.append(second)
  candidates = [(best_iterations, best_exponent)] + [
      (int(n), e) for n, e in zip(second.iterations, extra) if n >= 0]
  best_iterations, best_exponent = min(candidates)
  return Tuned(exponent=best_exponent, iterations=best_iterations, reaches=tuple(reaches))


def loglog_slope(sizes, iterations) -> dict:
  """Least-squares slope of ``log(iterations)`` on ``log(d)`` over the uncensored points.

  ``iterations`` entries that are None or < 1 count as censored and are left
  out. Returns ``{"slope", "intercept", "num_points"}`` (slope None with < 2 points).

  Example:
    >>> fit = loglog_slope([10, 100, 1000], [20, 200, None])  # d = 1000 is censored
    >>> round(fit["slope"], 6), fit["num_points"]
    (1.0, 2)
  """
  sizes = np.asarray(sizes, np.float64)
  values = np.array([np.nan if v is None or v < 1 else v for v in iterations], np.float64)
  keep = np.isfinite(values)
  if keep.sum() < 2:
    return {"slope": None, "intercept": None, "num_points": int(keep.sum())}
  slope, intercept = np.polyfit(np.log(sizes[keep]), np.log(values[keep]), 1)
  return {"slope": float(slope), "intercept": float(intercept), "num_points": int(keep.sum())}


def step_cap(d: int, max_steps: int, max_work: float, segment_steps: int) -> int:
  """``min(max_steps, max_work / d)`` rounded down to whole segments (at least one).

  Example:
    >>> step_cap(100, 1000, 20_000, 50), step_cap(1000, 1000, 20_000, 50)
    (200, 50)
  """
  by_work = int(max_work // d) // segment_steps * segment_steps
  return max(segment_steps, min(max_steps, by_work))


def scaling_study(sizes: Sequence[int], methods: Sequence[str], *, eps: float, max_steps: int,
                  max_work: float, exponents: Sequence[float], local_halfwidth: float = 0.5,
                  local_step: float = 0.25, segment_steps: int = 50, zipf_exponent: float = 1.0,
                  completed: Sequence[dict] = (),
                  on_record: Callable[[dict], None] | None = None,
                  log: Callable[[str], None] = print) -> list[dict]:
  """Iterations to reach eps for each method and vocabulary size (increasing d).

  Tuned methods sweep ``exponents`` at the first size and
  ``e* - h, e* - h + s, ..., e* + h`` (h = ``local_halfwidth``, s = ``local_step``
  decades) around the previous size's best afterwards, each followed by the
  refinement of `tune_iterations`. Theory methods use `theory_step_size`.
  Each size runs at most ``step_cap(d, max_steps, max_work)`` steps; once a
  method is censored at some d it is not run at larger d (recorded as
  censored with ``steps_run = 0`` and the reason).

  Args:
    completed: records of an interrupted study with the same arguments (as
      passed to ``on_record``); their (method, d) are not run again.
    on_record: called with each new record as soon as it is done (e.g. to
      save it for resuming).

  Returns:
    One record per (method, d): ``method, d, learning_rate, exponent
    (log10 of the tuned learning rate; None for theory step sizes or when
    censored), iterations (None if censored), censored, steps_run, reason,
    theory_bound, seconds``.
  """
  for name in methods:
    _checks.check_choice("methods", name, METHODS)
  done = {(r["method"], int(r["d"])): r for r in completed}
  records = []
  for name in methods:
    optimizer, momentum, norm = METHODS[name]
    make = optim.injectable(optimizer, momentum)
    previous, stop_reason = None, None
    for d in sizes:
      d = _checks.check_int("sizes", d, minimum=2)
      if (name, d) in done:  # finished before an interruption: restore the loop state
        record = done[(name, d)]
        records.append(record)
        if record["steps_run"]:
          previous = record["exponent"] if norm is None else previous
          if record["censored"]:
            stop_reason = f"skipped: censored at d={d}"
        continue
      pi = zipf_distribution(d, zipf_exponent)
      cap = step_cap(d, max_steps, max_work, segment_steps)
      record = {"method": name, "d": d, "eps": eps, "step_cap": cap, "theory_bound": None}
      if norm is not None:
        record["theory_bound"] = theory_iterations(pi, eps, norm)
      if stop_reason is not None:
        records.append(record | {"learning_rate": None, "exponent": None, "iterations": None,
                                 "censored": True, "steps_run": 0, "reason": stop_reason,
                                 "seconds": 0.0})
        if on_record is not None:
          on_record(records[-1])
        continue
      start = time.perf_counter()
      exponent = None
      if norm is not None:
        rate = theory_step_size(pi, eps, norm)
        reach = iterations_to_reach(pi, make, [rate], eps, cap, segment_steps=segment_steps)
        iterations = int(reach.iterations[0]) if reach.reached[0] else None
        steps_run = reach.steps_run
      else:
        grid = (exponents if previous is None else
                np.arange(previous - local_halfwidth, previous + local_halfwidth + 1e-9,
                          local_step))
        tuned = tune_iterations(pi, make, grid, eps, cap, segment_steps=segment_steps)
        rate = None if tuned.censored else 10.0**tuned.exponent
        iterations, steps_run, previous = tuned.iterations, tuned.steps_run, tuned.exponent
        exponent = tuned.exponent
      censored = iterations is None
      reason = f"not reached within {steps_run} steps" if censored else ""
      if censored:
        stop_reason = f"skipped: censored at d={d}"
      records.append(record | {"learning_rate": rate, "exponent": exponent,
                               "iterations": iterations, "censored": censored,
                               "steps_run": steps_run, "reason": reason,
                               "seconds": time.perf_counter() - start})
      if on_record is not None:
        on_record(records[-1])
      log(f"{name} d={d}: " + (f"{iterations} steps at lr={rate:.3g}" if not censored else reason)
          + f" ({records[-1]['seconds']:.1f}s)")
  return records


def scaling_slopes(records: Sequence[dict]) -> dict:
  """`loglog_slope` of iterations on d for each method, plus its censored sizes."""
  out = {}
  for name in dict.fromkeys(r["method"] for r in records):
    rows = [r for r in records if r["method"] == name]
    fit = loglog_slope([r["d"] for r in rows], [r["iterations"] for r in rows])
    out[name] = fit | {"censored_sizes": [r["d"] for r in rows if r["censored"]]}
  return out
