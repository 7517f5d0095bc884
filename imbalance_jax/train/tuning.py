"""Tune a step size by sweeping seeds x step sizes (paper H, App. A.4).

`tune_sweep` applies `selection.tune` where each round is one `driver.run_sweep`
over the round's step sizes, all seeds at once. With a `checkpoint.ResultStore`
round ``i`` (the ``i``-th sweep the rule asks for) is saved under
``<store_key>/round<i>``, the complete rerun of a winner that had dropped
members under ``<store_key>/complete<exponent>``, and a rerun of the
experiment loads them instead of sweeping again. While a round runs, its
segments are checkpointed in ``<store.directory>/segments/<key parts>``, which
is removed once the round is saved.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from imbalance_jax.train import checkpoint, driver, selection
from imbalance_jax.train.sweep import Sweep


@dataclasses.dataclass(frozen=True)
class TunedSweep:
  """Every step size evaluated for one optimizer, and the selected one.

  ``histories[e]`` is the metric history at step size ``10**e`` with leaves
  ``[S, T', ...]`` (seeds first); ``stats[e]`` its loss tracking.
  """

  selection: selection.Selection
  stats: dict[float, selection.LossStats]
  histories: dict[float, Any]

  @property
  def best_history(self):
    return self.histories[self.selection.exponent]


def tune_sweep(sweep: Sweep, params_S, data, *, keys_S=None,
               exponents=selection.SPARSE_EXPONENTS, refine_rounds: int = 1,
               threshold: float = 1.5, store: checkpoint.ResultStore | None = None,
               store_key: str = "sweep", segment_steps: int | None = None,
               drop_decided: bool = True,
               log: Callable[[str], None] = print) -> TunedSweep:
  """Runs `selection.tune` where each round is one compiled sweep over its step sizes.

  By default members that diverged stop being computed (``drop_decided``,
  see `imbalance_jax.train.driver`): their history is NaN after the
  drop and their final loss NaN, which changes no score, no diverged set and
  no selection. If the best-scoring step size holds a dropped member (rare:
  e.g. every step size diverged for some seed), that one step size is rerun
  without dropping before the final `selection.select` (its stability check
  and the numbers reported for the selected step size need complete runs), so
  the selection and its reported numbers are those of a sweep without
  dropping up to float rounding: live members run in a narrower vmap, whose
  reductions XLA may round differently (on the heavy_tailed_linear quick
  preset, float32: bitwise equal for 6 of the 8 runs, within 1.4e-6 relative
  for adam and adam+m; same step sizes and diverged sets for all 8).

  Args:
    sweep: the vmapped run.
    params_S: initial parameters, one per seed (leading axis S).
    data: the data (per seed if ``sweep.data_per_seed``).
    keys_S: optional PRNG key per seed (see `Sweep`).
    exponents, refine_rounds, threshold: see `selection.tune`.
    store: if given, each round's result is saved under ``store_key/round<i>``
      and reloaded on a rerun instead of recomputed.
    segment_steps: steps per segment (default: `driver.default_segment_steps`
      when dropping, else one segment); with a store the sweep state is also
      checkpointed after every segment (for long runs).
    drop_decided: drop diverged members between segments (False: run every
      member to the end, as one compiled program per round).
    log: progress printer.

  Example:
    >>> from imbalance_jax import data, models, optim, train
    >>> keys = jax.random.split(jax.random.key(0), 2)
    >>> data_S = jax.vmap(lambda k: data.heavy_tailed_labels(k, m=3))(keys)
    >>> model = models.LinearSoftmax(data_S.num_classes)
    >>> params_S = jax.vmap(lambda k: model.init(k, data_S.x[0, :1]))(keys)
    >>> run = train.make_train(train.classification_objective(model.apply),
    ...                        optim.injectable("gd", 0.0), num_steps=20, log_every=5)
    >>> tuned = tune_sweep(Sweep(run), params_S, data_S, exponents=(-2.0, -1.0, 0.0, 1.0),
    ...                    refine_rounds=0, log=lambda line: None)
    >>> tuned.selection.exponent in (-2.0, -1.0, 0.0, 1.0), tuned.best_history["loss"].shape
    (True, (2, 5))
  """
  # Every round run, in order: the i-th the rule asks for is stored as round<i>, the
  # complete rerun of a winner (if any) comes last.
  rounds: list[_Round] = []

  def run_round(key: str, round_exponents, drop: bool) -> _Round:
    """One round: loaded from the store, or swept (and saved)."""
    saved = _load_round(store, key)
    how = "(restored from checkpoint)"
    if saved is None:
      start = time.perf_counter()
      log(_sweeping_line(store_key, len(round_exponents), sweep.train.num_steps, drop))
      segments_dir = _segments_dir(store, key, segment_steps)
      swept = driver.run_sweep(
          sweep, params_S, data, 10.0**np.asarray(round_exponents), keys_S=keys_S,
          checkpoint_dir=segments_dir, segment_steps=segment_steps, drop_decided=drop,
          threshold=threshold, on_segment=lambda i, n: log(f"{store_key}: segment {i}/{n} done"))
      saved = _saved_round(round_exponents, swept)
      _save_round(store, key, saved, segments_dir)
      how = f"in {time.perf_counter() - start:.1f}s"
    columns = _round_columns(saved)
    log(_round_line(store_key, columns, how, threshold))
    return columns

  def evaluate(round_exponents):
    rounds.append(run_round(_round_key(store_key, len(rounds)), round_exponents, drop_decided))
    return rounds[-1].stats

  chosen, stats = selection.tune(evaluate, exponents=exponents, refine_rounds=refine_rounds,
                                 threshold=threshold)
  winner = chosen.winner
  # A dropped member has no final loss or params: rerun the winner to the end.
  if (_latest(rounds, "dropped_at")[winner] >= 0).any():
    log(f"{store_key}: the best step size 1e{winner:+.2f} had dropped members; rerunning it "
        "to the end")
    rounds.append(run_round(_complete_key(store_key, winner), [winner], False))
    stats.update(rounds[-1].stats)
    chosen = selection.select(stats, threshold)
  return TunedSweep(selection=chosen, stats=stats, histories=_latest(rounds, "histories"))


@dataclasses.dataclass(frozen=True)
class _Round:
  """One round's columns by exponent: loss stats, histories ``[S, T', ...]``, ``dropped_at [S]``."""

  stats: dict[float, selection.LossStats]
  histories: dict[float, Any]
  dropped_at: dict[float, np.ndarray]


def _latest(rounds: list[_Round], field: str) -> dict[float, Any]:
  """``{exponent: value}`` over the rounds; a later round's value (a rerun) replaces an earlier."""
  return {e: value for r in rounds for e, value in getattr(r, field).items()}


def _round_key(store_key: str, index: int) -> str:
  return f"{store_key}/round{index}"


def _complete_key(store_key: str, exponent: float) -> str:
  return f"{store_key}/complete{exponent:+.4f}"


def _segments_dir(store: checkpoint.ResultStore | None, key: str,
                  segment_steps: int | None) -> str | None:
  """Where round ``key`` checkpoints its segments; None without a store or segments."""
  if store is None or not segment_steps:
    return None
  return os.path.join(store.directory, "segments", *key.split("/"))


def _load_round(store: checkpoint.ResultStore | None, key: str) -> dict | None:
  return store.load(key) if store is not None else None


def _save_round(store: checkpoint.ResultStore | None, key: str, saved: dict,
                segments_dir: str | None) -> None:
  """Saves a finished round; its segment checkpoints are then of no use."""
  if store is None:
    return
  store.save(key, saved)
  if segments_dir is not None:
    shutil.rmtree(segments_dir, ignore_errors=True)


def _saved_round(round_exponents, swept: driver.SweepResult) -> dict:
  """What the store keeps of a round: its exponents and the sweep's numbers ``[S, L, ...]``."""
  return {"exponents": np.asarray(round_exponents), "initial_loss": swept.initial_loss,
          "final_loss": swept.final_loss, "max_loss": swept.max_loss, "finite": swept.finite,
          "history": swept.history, "dropped_at": swept.dropped_at}


def _round_columns(saved: dict) -> _Round:
  """A saved round split into columns by exponent.

  Rounds saved before member dropping existed have no ``dropped_at``: nothing was dropped.
  """
  exponents = np.asarray(saved["exponents"]).tolist()
  column = lambda name, i: np.asarray(saved[name])[:, i]  # noqa: E731
  num_seeds = np.asarray(saved["final_loss"]).shape[0]
  stats = {e: selection.LossStats(initial=column("initial_loss", i), final=column("final_loss", i),
                                  max=column("max_loss", i), finite=column("finite", i))
           for i, e in enumerate(exponents)}
  histories = {e: {k: np.asarray(v)[:, i] for k, v in saved["history"].items()}
               for i, e in enumerate(exponents)}
  dropped_at = {e: column("dropped_at", i) if "dropped_at" in saved else np.full(num_seeds, -1)
                for i, e in enumerate(exponents)}
  return _Round(stats=stats, histories=histories, dropped_at=dropped_at)


def _sweeping_line(store_key: str, num_rates: int, num_steps: int, drop: bool) -> str:
  return (f"{store_key}: sweeping {num_rates} step sizes x all seeds x {num_steps} steps"
          + (", dropping diverged members between segments ..." if drop
             else " in one compiled program ..."))


def _round_line(store_key: str, columns: _Round, how: str, threshold: float) -> str:
  """The round's scores by step size, ``*`` marking those with a diverged seed."""
  scores = ", ".join(f"1e{e:+.2f}: {s.score(threshold):.3g}"
                     + ("*" if s.diverged(threshold).any() else "")
                     for e, s in sorted(columns.stats.items()))
  num_dropped = sum(int((at >= 0).sum()) for at in columns.dropped_at.values())
  return (f"{store_key}: {len(columns.stats)} step sizes {how}; max-over-seeds final loss "
          f"(* = diverged seed) {scores}"
          + (f"; {num_dropped} diverged members dropped early" if num_dropped else ""))
