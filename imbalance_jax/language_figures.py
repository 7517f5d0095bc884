"""Figures of the language experiments (paper H Figs 10 and 26); each returns a Figure.

`validation_overview` is `imbalance_jax.plotting.plot_heavy_tailed_overview`
on the ``valid/`` metrics of the histories (Fig 10: per-group validation
loss); `curvature_snapshots` draws the per-class gradient norm against the
Hessian trace of the classifier at a few records of a run (Fig 26).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from imbalance_jax import plotting
from imbalance_jax.curvature import figures, study


def validation_overview(class_counts, groups, steps, histories: Mapping[str, dict],
                        learning_rates: Mapping[str, float], panels=("gd+m", "adam+m")):
  """Paper H Fig 10: class distribution, overall and per-group *validation* loss.

  Args:
    histories: run name -> history with ``valid/loss [S, T]`` and
      ``valid/group_loss [S, T, G]``.

  Example:
    >>> h = {"gd": {"valid/loss": np.ones((1, 2)), "valid/group_loss": np.ones((1, 2, 2))}}
    >>> fig = validation_overview([3, 1], [0, 1], [0, 5], h, {"gd": 0.1}, panels=("gd",))
    >>> len(fig.axes) >= 3
    True
  """
  valid = {name: {"loss": h["valid/loss"], "group_loss": h["valid/group_loss"]}
           for name, h in histories.items()}
  fig = plotting.plot_heavy_tailed_overview(class_counts, groups, steps, valid, learning_rates,
                                            panels=panels)
  fig.axes[1].set_ylabel("validation loss")
  return fig


def curvature_snapshots(record: Mapping[str, np.ndarray], class_to_group, *, title: str,
                        num_snapshots: int = 4):
  """Paper H Fig 26: gradient norm vs Hessian trace per class at evenly spaced records.

  Args:
    record: ``steps [T]``, ``grad_norm_C [T, C]``, ``trace_C [T, C]`` (as written by
      ``experiments/transformer_ptb.py``).

  Example:
    >>> rec = {"steps": np.arange(3), "grad_norm_C": np.random.rand(3, 5) + 0.1,
    ...        "trace_C": np.random.rand(3, 5) + 0.1}
    >>> fig = curvature_snapshots(rec, np.array([0, 0, 1, 1, 1]), title="gd")
    >>> len(fig.axes) >= 3
    True
  """
  steps = np.asarray(record["steps"])
  wanted = np.linspace(0, steps[-1], min(num_snapshots, steps.size))
  snapshots = study.closest_steps(steps, wanted)
  corr = [study.rank_correlations(record["grad_norm_C"][t], record["trace_C"][t])["spearman"]
          for t in snapshots]
  return figures.plot_block_scatter(steps, record["grad_norm_C"], record["trace_C"], snapshots,
                                    class_to_group, title=title, correlations=corr)
