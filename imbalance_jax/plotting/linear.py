"""Figures of the heavy-tailed linear experiments (paper H Figs 4, 16, 19, 21).

Also the overview / all-runs layout of the language binaries, which train the
same kind of runs. Every function takes the logged ``steps`` and histories
with a leading seed axis (means over seeds are plotted) and returns a Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from imbalance_jax.plotting.common import (add_group_colorbar, mean_over_seeds,
                                           plot_class_distribution, plot_group_curves, run_label,
                                           run_style)


def plot_heavy_tailed_overview(class_counts, groups, steps, histories: dict,
                               learning_rates: dict, panels=("gd+m", "adam+m")):
  """Paper H Fig. 4: (a) class distribution with groups, (b) overall loss of
  every run, (c, d...) loss per frequency group for the runs named in ``panels``.

  Args:
    class_counts: ``[C]``; groups: ``[C]`` group ids.
    steps: ``[T]`` logged steps.
    histories: run name -> history dict with ``loss [S, T]`` and
      ``group_loss [S, T, G]`` (means over seeds are plotted).
    learning_rates: run name -> selected step size (shown in titles).
    panels: runs given a per-group panel (missing ones are skipped).

  Returns:
    The matplotlib figure.

  Example:
    >>> h = {"gd": {"loss": np.ones((1, 2)), "group_loss": np.ones((1, 2, 2))}}
    >>> fig = plot_heavy_tailed_overview([3, 1], [0, 1], [0, 5], h, {"gd": 0.1}, panels=("gd",))
    >>> len(fig.axes)
    4
  """
  panels = [p for p in panels if p in histories] or list(histories)[:2]
  fig, axes = plt.subplots(1, 2 + len(panels), figsize=(4.2 * (2 + len(panels)), 3.6),
                           constrained_layout=True)
  plot_class_distribution(axes[0], class_counts, groups)
  axes[0].set_title("(a) class frequencies")
  for name, history in histories.items():
    axes[1].plot(steps, mean_over_seeds(history["loss"]), label=run_label(name), **run_style(name))
  axes[1].set(xlabel="step", ylabel="training loss", title="(b) overall loss")
  axes[1].legend(fontsize=7)
  group_axes = axes[2:]
  for i, (ax, name) in enumerate(zip(group_axes, panels)):
    plot_group_curves(ax, steps, mean_over_seeds(histories[name]["group_loss"]))
    ax.set_title(f"({chr(ord('c') + i)}) {run_label(name)}, lr={learning_rates[name]:.2g}")
  if len(group_axes):
    top = max(ax.get_ylim()[1] for ax in group_axes)
    for ax in group_axes:
      ax.set_ylim(0, top)
  add_group_colorbar(fig, axes, int(np.max(groups)) + 1)
  return fig


def plot_group_grid(steps, histories: dict, learning_rates: dict, num_groups: int):
  """Paper H Figs. 19/21: overall loss, then per-group loss of every run.

  Runs without momentum go in the top row and with momentum (``+m``) below;
  reweighted runs (``@...``) get their own row.
  """
  rows = {}
  for name in histories:
    base, _, weighting = name.partition("@")
    row = "+m" if base.endswith("+m") else "-m"
    rows.setdefault(row + ("@" + weighting if weighting else ""), []).append(name)
  num_cols = 1 + max(len(r) for r in rows.values())
  fig, axes = plt.subplots(len(rows), num_cols, figsize=(3.4 * num_cols, 2.9 * len(rows)),
                           squeeze=False, sharey=True, constrained_layout=True)
  # No momentum on top, as in paper H Fig. 21; reweighted rows last.
  order = lambda item: ("@" in item[0], item[0].startswith("+m"), item[0])  # noqa: E731
  for r, (row, names) in enumerate(sorted(rows.items(), key=order)):
    for name in names:
      axes[r, 0].plot(steps, mean_over_seeds(histories[name]["loss"]), label=run_label(name),
                      **run_style(name))
    axes[r, 0].set(title=f"overall loss ({row})", xlabel="step", ylabel="training loss")
    axes[r, 0].legend(fontsize=7)
    for c, name in enumerate(names, start=1):
      plot_group_curves(axes[r, c], steps, mean_over_seeds(histories[name]["group_loss"]))
      axes[r, c].set_title(f"{run_label(name)}, lr={learning_rates[name]:.2g}", fontsize=9)
    for c in range(len(names) + 1, num_cols):
      axes[r, c].axis("off")
  add_group_colorbar(fig, axes, num_groups)
  return fig


def plot_horizons(steps, histories: dict, learning_rates: dict):
  """Paper H Fig. 16: per-group loss of each run over horizons 100, 1000, ... steps.

  One row per run, one column per horizon (powers of ten from 100 up to the
  last logged step); a dotted line marks the initial loss.
  """
  steps = np.asarray(steps)
  horizons = [h for h in 10 ** np.arange(2, 8) if h <= steps[-1]] or [int(steps[-1])]
  fig, axes = plt.subplots(len(histories), len(horizons), squeeze=False, sharey="row",
                           figsize=(3.6 * len(horizons), 2.9 * len(histories)),
                           constrained_layout=True)
  num_groups = 1
  for r, (name, history) in enumerate(histories.items()):
    group_loss = mean_over_seeds(history["group_loss"])
    num_groups = group_loss.shape[-1]
    for c, horizon in enumerate(horizons):
      keep = steps <= horizon
      ax = axes[r, c]
      plot_group_curves(ax, steps[keep], group_loss[keep])
      ax.axhline(mean_over_seeds(history["loss"])[0], color="gray", linestyle=":", linewidth=1)
      ax.set_title(f"{run_label(name)}, lr={learning_rates[name]:.2g}, {horizon:,} steps",
                   fontsize=9)
  add_group_colorbar(fig, axes, num_groups)
  return fig
