"""Turn tuned sweeps into summary entries and JSONL metric records."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from imbalance_jax.train.tuning import TunedSweep


def summarize_run(tuned: TunedSweep) -> dict:
  """Summary entry of one run at its selected step size (means over seeds).

  Keys: ``learning_rate``, ``final_loss``, ``final_group_losses`` (most frequent
  group first), ``diverged`` (step sizes with a diverged seed), plus the
  evidence: ``final_loss_max_over_seeds``, ``scores`` (per evaluated step
  size) and ``fallback_from`` (the unstable winner replaced, if any).
  Divergence is as decided by the selection (its ``threshold``, the one given
  to `tune_sweep`).

  Example:
    Two seeds at step sizes 0.1 and 1; at 1 the first seed's loss reached 9 > 1.5 x 2.

    >>> from imbalance_jax.train import LossStats, TunedSweep, select
    >>> stats = {e: LossStats(initial=np.full(2, 2.0), final=np.array(final),
    ...                       max=np.array(peak), finite=np.ones(2, bool))
    ...          for e, final, peak in [(-1.0, [0.5, 0.75], [2.0, 2.0]),
    ...                                 (0.0, [0.125, 0.125], [9.0, 2.0])]}
    >>> group_loss = np.array([[[2.0, 2.0], [0.25, 0.5]], [[2.0, 2.0], [0.75, 1.0]]])
    >>> tuned = TunedSweep(selection=select(stats), stats=stats,
    ...                    histories={e: {"group_loss": group_loss} for e in stats})
    >>> entry = summarize_run(tuned)  # group_loss: [seeds, logged steps, groups]
    >>> entry["learning_rate"], entry["final_loss"], entry["final_group_losses"]
    (0.1, 0.625, [0.5, 0.75])
    >>> entry["diverged"], entry["scores"]
    ([1.0], {'0.1': 0.75, '1': 2.0})
  """
  sel = tuned.selection
  history = tuned.best_history
  stats = tuned.stats[sel.exponent]
  entry = {
      "learning_rate": sel.learning_rate,
      "final_loss": float(np.mean(stats.final)),
      "final_group_losses": np.mean(history["group_loss"][:, -1], axis=0).tolist(),
      "diverged": sel.diverged_learning_rates,
      "final_loss_max_over_seeds": float(np.max(stats.final)),
      "scores": {f"{10.0**e:.6g}": s for e, s in sorted(sel.scores.items())},
      "fallback_from": None if sel.fallback_from is None else float(10.0**sel.fallback_from),
  }
  if "group_accuracy" in history:
    entry["final_group_accuracy"] = np.mean(history["group_accuracy"][:, -1], axis=0).tolist()
  return entry


def history_records(run_name: str, tuned: TunedSweep, steps: Sequence[int]) -> Iterator[dict]:
  """One record per (step size, seed, logged step) with every recorded metric.

  ``diverged`` is the member's verdict under the selection's threshold.

  Example:
    With ``tuned`` as in `summarize_run` (2 step sizes, 2 seeds, 2 logged steps):

    >>> from imbalance_jax.train import LossStats, TunedSweep, select
    >>> stats = {e: LossStats(initial=np.full(2, 2.0), final=np.full(2, 1.0), max=np.full(2, 2.0),
    ...                       finite=np.ones(2, bool)) for e in (-1.0, 0.0)}
    >>> loss = np.array([[2.0, 1.0], [2.0, 1.0]])  # [seeds, logged steps]
    >>> tuned = TunedSweep(selection=select(stats), stats=stats,
    ...                    histories={e: {"loss": loss} for e in stats})
    >>> records = list(history_records("gd", tuned, steps=[0, 10]))
    >>> len(records), records[1]
    (8, {'run': 'gd', 'learning_rate': 0.1, 'seed': 0, 'step': 10, 'diverged': False, 'loss': 1.0})
  """
  for exponent in sorted(tuned.histories):
    history = tuned.histories[exponent]
    diverged = tuned.stats[exponent].diverged(tuned.selection.threshold)
    num_seeds = next(iter(history.values())).shape[0]
    for seed in range(num_seeds):
      for t, step in enumerate(steps):
        record = {"run": run_name, "learning_rate": float(10.0**exponent), "seed": seed,
                  "step": int(step), "diverged": bool(diverged[seed])}
        for key, values in history.items():
          value = np.asarray(values[seed, t])
          record[key] = value.item() if value.ndim == 0 else value.tolist()
        yield record
