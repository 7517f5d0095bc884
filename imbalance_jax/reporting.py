"""Turn tuned sweeps into summary entries and JSONL metric records."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from imbalance_jax.train.tuning import TunedSweep


def summarize_run(tuned: TunedSweep, threshold: float = 1.5) -> dict:
  """Summary entry of one run at its selected step size (means over seeds).

  Keys: ``learning_rate``, ``final_loss``, ``final_group_losses`` (most frequent
  group first), ``diverged`` (step sizes with a diverged seed), plus the
  evidence: ``final_loss_max_over_seeds``, ``scores`` (per evaluated step
  size) and ``fallback_from`` (the unstable winner replaced, if any).
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


def history_records(run_name: str, tuned: TunedSweep, steps: Sequence[int],
                    threshold: float = 1.5) -> Iterator[dict]:
  """One record per (step size, seed, logged step) with every recorded metric."""
  for exponent in sorted(tuned.histories):
    history = tuned.histories[exponent]
    diverged = tuned.stats[exponent].diverged(threshold)
    num_seeds = next(iter(history.values())).shape[0]
    for seed in range(num_seeds):
      for t, step in enumerate(steps):
        record = {"run": run_name, "learning_rate": float(10.0**exponent), "seed": seed,
                  "step": int(step), "diverged": bool(diverged[seed])}
        for key, values in history.items():
          value = np.asarray(values[seed, t])
          record[key] = value.item() if value.ndim == 0 else value.tolist()
        yield record
