"""Tune a step size by sweeping seeds x step sizes (paper H, App. A.4)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from imbalance_jax.train import checkpoint, selection
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


def tune_sweep(sweep: Sweep, params_S, data, *, exponents=selection.SPARSE_EXPONENTS,
               refine_rounds: int = 1, threshold: float = 1.5,
               store: checkpoint.ResultStore | None = None, store_key: str = "sweep",
               segment_steps: int | None = None,
               log: Callable[[str], None] = print) -> TunedSweep:
  """Runs `selection.tune` where each round is one compiled sweep over its step sizes.

  Args:
    sweep: the vmapped run.
    params_S: initial parameters, one per seed (leading axis S).
    data: the data (per seed if ``sweep.data_per_seed``).
    exponents, refine_rounds, threshold: see `selection.tune`.
    store: if given, each round's result is saved under ``store_key/round<i>``
      and reloaded on a rerun instead of recomputed.
    segment_steps: with a store, also checkpoint the sweep state every
      ``segment_steps`` steps inside a round (for long runs).
    log: progress printer.

  Example:
    >>> tuned = tune_sweep(Sweep(train), params_S, data_S)
    >>> tuned.selection.learning_rate, tuned.best_history["group_loss"].shape
  """
  histories: dict[float, Any] = {}
  rounds = iter(range(refine_rounds + 1))

  def evaluate(round_exponents):
    key = f"{store_key}/round{next(rounds)}"
    saved = store.load(key) if store is not None else None
    start = time.perf_counter()
    if saved is None:
      train = sweep.train
      log(f"{store_key}: sweeping {len(round_exponents)} step sizes x all seeds x "
          f"{train.num_steps} steps in one compiled program ...")
      segments_dir = (None if store is None or not segment_steps else
                      os.path.join(store.directory, "segments", *key.split("/")))
      result = checkpoint.run_sweep(
          sweep, params_S, data, 10.0**np.asarray(round_exponents), checkpoint_dir=segments_dir,
          segment_steps=segment_steps,
          on_segment=lambda i, n: log(f"{store_key}: segment {i}/{n} done"))
      saved = {"exponents": np.asarray(round_exponents), "initial_loss": result.initial_loss,
               "final_loss": result.final_loss, "max_loss": result.max_loss,
               "finite": result.finite, "history": result.history}
      if store is not None:
        store.save(key, saved)
        if segments_dir is not None:
          shutil.rmtree(segments_dir, ignore_errors=True)
      how = f"in {time.perf_counter() - start:.1f}s"
    else:
      how = "(restored from checkpoint)"
    out = {}
    for i, e in enumerate(np.asarray(saved["exponents"]).tolist()):
      stats = selection.LossStats(
          initial=np.asarray(saved["initial_loss"])[:, i], final=np.asarray(saved["final_loss"])[:, i],
          max=np.asarray(saved["max_loss"])[:, i], finite=np.asarray(saved["finite"])[:, i])
      histories[e] = {k: np.asarray(v)[:, i] for k, v in saved["history"].items()}
      out[e] = stats
    scores = ", ".join(f"1e{e:+.2f}: {s.score(threshold):.3g}" + ("*" if s.diverged(threshold).any()
                                                                   else "")
                       for e, s in sorted(out.items()))
    log(f"{store_key}: {len(out)} step sizes {how}; max-over-seeds final loss "
        f"(* = diverged seed) {scores}")
    return out

  chosen, stats = selection.tune(evaluate, exponents=exponents, refine_rounds=refine_rounds,
                                 threshold=threshold)
  return TunedSweep(selection=chosen, stats=stats, histories=histories)
