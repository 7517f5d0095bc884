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


def tune_sweep(sweep: Sweep, params_S, data, *, keys_S=None,
               exponents=selection.SPARSE_EXPONENTS, refine_rounds: int = 1,
               threshold: float = 1.5, store: checkpoint.ResultStore | None = None,
               store_key: str = "sweep", segment_steps: int | None = None,
               drop_decided: bool = True,
               log: Callable[[str], None] = print) -> TunedSweep:
  """Runs `selection.tune` where each round is one compiled sweep over its step sizes.

  By default members that diverged stop being computed (``drop_decided``,
  see `imbalance_jax.train.checkpoint`): their history is NaN after the
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
    segment_steps: steps per segment (default: `checkpoint.default_segment_steps`
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
  histories: dict[float, Any] = {}
  dropped_at: dict[float, np.ndarray] = {}
  rounds = iter(range(refine_rounds + 1))

  def run_round(round_exponents, key, drop):
    saved = store.load(key) if store is not None else None
    start = time.perf_counter()
    if saved is None:
      train = sweep.train
      log(f"{store_key}: sweeping {len(round_exponents)} step sizes x all seeds x "
          f"{train.num_steps} steps" + (", dropping diverged members between segments ..."
                                         if drop else " in one compiled program ..."))
      segments_dir = (None if store is None or not segment_steps else
                      os.path.join(store.directory, "segments", *key.split("/")))
      result, extras = checkpoint.run_sweep(
          sweep, params_S, data, 10.0**np.asarray(round_exponents), keys_S=keys_S,
          checkpoint_dir=segments_dir, segment_steps=segment_steps, drop_decided=drop,
          threshold=threshold, return_extras=True,
          on_segment=lambda i, n: log(f"{store_key}: segment {i}/{n} done"))
      saved = {"exponents": np.asarray(round_exponents), "initial_loss": result.initial_loss,
               "final_loss": result.final_loss, "max_loss": result.max_loss,
               "finite": result.finite, "history": result.history,
               "dropped_at": extras["dropped_at"]}
      if store is not None:
        store.save(key, saved)
        if segments_dir is not None:
          shutil.rmtree(segments_dir, ignore_errors=True)
      how = f"in {time.perf_counter() - start:.1f}s"
    else:
      how = "(restored from checkpoint)"
    out = {}
    num_seeds = np.asarray(saved["final_loss"]).shape[0]
    for i, e in enumerate(np.asarray(saved["exponents"]).tolist()):
      column = lambda name: np.asarray(saved[name])[:, i]  # noqa: B023
      stats = selection.LossStats(initial=column("initial_loss"), final=column("final_loss"),
                                  max=column("max_loss"), finite=column("finite"))
      histories[e] = {k: np.asarray(v)[:, i] for k, v in saved["history"].items()}
      dropped_at[e] = (np.asarray(saved["dropped_at"])[:, i] if "dropped_at" in saved
                       else np.full(num_seeds, -1))
      out[e] = stats
    scores = ", ".join(f"1e{e:+.2f}: {s.score(threshold):.3g}" + ("*" if s.diverged(threshold).any()
                                                                   else "")
                       for e, s in sorted(out.items()))
    num_dropped = sum(int((dropped_at[e] >= 0).sum()) for e in out)
    log(f"{store_key}: {len(out)} step sizes {how}; max-over-seeds final loss "
        f"(* = diverged seed) {scores}"
        + (f"; {num_dropped} diverged members dropped early" if num_dropped else ""))
    return out

  def evaluate(round_exponents):
    return run_round(round_exponents, f"{store_key}/round{next(rounds)}", drop_decided)

  chosen, stats = selection.tune(evaluate, exponents=exponents, refine_rounds=refine_rounds,
                                 threshold=threshold)
  winner = chosen.winner
  if (dropped_at[winner] >= 0).any():
    log(f"{store_key}: the best step size 1e{winner:+.2f} had dropped members; rerunning it "
        "to the end")
    stats.update(run_round([winner], f"{store_key}/complete{winner:+.4f}", False))
    chosen = selection.select(stats, threshold)
  return TunedSweep(selection=chosen, stats=stats, histories=histories)
