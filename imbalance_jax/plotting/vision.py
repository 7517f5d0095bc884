"""Figures of the vision experiments (paper H Figs 2, 3, 11, 13, 14; paper R Figs 1, 3).

Every function takes results (logged steps and histories with a leading seed
axis, means over seeds are plotted) and returns a matplotlib Figure; save it
with `imbalance_jax.plotting.save_figure`. Colours follow
`imbalance_jax.plotting.common`: Adam red, GD black; groups in viridis, most
frequent darkest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from imbalance_jax.plotting.common import group_colors, mean_over_seeds, run_label, run_style

_GROUP_STYLES = ("-", "--", ":", "-.")


def _pick(runs: Sequence[str], prefixes=("gd", "adam")) -> list[str]:
  """The first run of each optimizer family in ``prefixes`` (e.g. ``gd+m``, ``adam+m``)."""
  picked = []
  for prefix in prefixes:
    for pattern in (f"{prefix}+m", prefix):
      if pattern in runs:
        picked.append(pattern)
        break
  return picked or list(runs)[:2]


def plot_group_lines(ax, steps, group_loss_SG, names: Sequence[str], *, ylabel="training loss"):
  """One line per group (``group_loss_SG``: ``[seeds, T, G]``), labelled by ``names``."""
  values = mean_over_seeds(group_loss_SG)
  colors = group_colors(values.shape[-1])
  for g in range(values.shape[-1]):
    ax.plot(steps, values[:, g], color=colors[g], linewidth=1.6,
            label=names[g] if g < len(names) else f"group {g}")
  ax.set(xlabel="step", ylabel=ylabel)
  ax.legend(fontsize=7)


def plot_two_group_overview(steps, histories: Mapping[str, Mapping[str, dict]],
                            learning_rates: Mapping[str, Mapping[str, float]],
                            group_names: Mapping[str, Sequence[str]], heavy_tailed: str,
                            balanced: str = "mnist"):
  """Paper H Fig. 2 / 3: overall loss on a balanced and a heavy-tailed set, then the
  per-group loss of GD and Adam on the heavy-tailed set.

  Args:
    steps: ``[T]`` logged steps.
    histories: data set -> run -> history (``loss [S, T]``, ``group_loss [S, T, G]``).
    learning_rates: data set -> run -> selected step size.
    group_names: data set -> names of its groups (group 0 = most frequent).
    heavy_tailed, balanced: the data sets of panels (b) and (a) (a missing
      ``balanced`` set leaves panel (a) out).

  Example:
    >>> h = {"loss": np.ones((1, 3)), "group_loss": np.ones((1, 3, 2))}
    >>> fig = plot_two_group_overview([0, 1, 2], {"ht": {"gd+m": h, "adam+m": h}},
    ...                               {"ht": {"gd+m": 0.1, "adam+m": 0.001}},
    ...                               {"ht": ["frequent", "rare"]}, "ht")
    >>> len(fig.axes)
    3
  """
  sets = [s for s in (balanced, heavy_tailed) if s in histories]
  pair = _pick(list(histories[heavy_tailed]))
  fig, axes = plt.subplots(1, len(sets) + len(pair), figsize=(3.8 * (len(sets) + len(pair)), 3.3),
                           constrained_layout=True)
  axes = np.atleast_1d(axes)
  letters = iter("abcdefgh")
  for ax, name in zip(axes, sets):
    for run in _pick(list(histories[name])):
      ax.plot(steps, mean_over_seeds(histories[name][run]["loss"]), label=run_label(run),
              **run_style(run))
    ax.set(xlabel="step", ylabel="training loss", title=f"({next(letters)}) {name}")
    ax.legend(fontsize=7)
  group_axes = axes[len(sets):]
  for ax, run in zip(group_axes, pair):
    plot_group_lines(ax, steps, histories[heavy_tailed][run]["group_loss"],
                     group_names[heavy_tailed])
    ax.set_title(f"({next(letters)}) {run_label(run)} on {heavy_tailed}, "
                 f"lr={learning_rates[heavy_tailed][run]:.2g}", fontsize=9)
  top = max(ax.get_ylim()[1] for ax in group_axes)
  for ax in group_axes:
    ax.set_ylim(0, top)
  return fig


def plot_data_sets(steps, histories: Mapping[str, Mapping[str, dict]],
                   learning_rates: Mapping[str, Mapping[str, float]],
                   group_names: Mapping[str, Sequence[str]]):
  """Paper H Fig. 14: one column per data set; top: overall loss of every run,
  bottom: per-group loss (group 0 solid, group 1 dashed, ...) of GD and Adam.

  Example:
    >>> h = {"loss": np.ones((1, 3)), "group_loss": np.ones((1, 3, 2))}
    >>> fig = plot_data_sets([0, 1, 2], {"a": {"gd": h}, "b": {"gd": h}},
    ...                      {"a": {"gd": 0.1}, "b": {"gd": 0.1}},
    ...                      {"a": ["x", "y"], "b": ["x", "y"]})
    >>> len(fig.axes)
    4
  """
  names = list(histories)
  fig, axes = plt.subplots(2, len(names), figsize=(3.9 * len(names), 6.0), squeeze=False,
                           constrained_layout=True)
  for c, name in enumerate(names):
    for run, history in histories[name].items():
      axes[0, c].plot(steps, mean_over_seeds(history["loss"]),
                      label=f"{run_label(run)} ({learning_rates[name][run]:.2g})",
                      **run_style(run))
    axes[0, c].set(title=name, xlabel="step", ylabel="training loss")
    axes[0, c].legend(fontsize=7)
    for run in _pick(list(histories[name])):
      values = mean_over_seeds(histories[name][run]["group_loss"])
      for g in range(values.shape[-1]):
        label = group_names[name][g] if g < len(group_names[name]) else f"group {g}"
        axes[1, c].plot(steps, values[:, g], color=run_style(run)["color"],
                        linestyle=_GROUP_STYLES[g % len(_GROUP_STYLES)],
                        label=f"{run_label(run)}: {label}")
    axes[1, c].set(xlabel="step", ylabel="training loss per group")
    axes[1, c].legend(fontsize=6)
  top = max(ax.get_ylim()[1] for ax in axes.ravel())
  for ax in axes.ravel():
    ax.set_ylim(0, top)
  return fig


def _closest(steps, wanted) -> list[int]:
  steps = np.asarray(steps)
  return [int(np.argmin(np.abs(steps - w))) for w in wanted]


def plot_confusion_grid(steps, confusions: Mapping[str, Mapping[str, np.ndarray]],
                        snapshot_steps: Sequence[int]):
  """Paper R Fig. 1: confusion matrices over training, one row per (run, split).

  Args:
    steps: ``[T]`` logged steps.
    confusions: run -> split (``"train"``, ``"test"``) -> ``[T, C, C]`` row-normalised
      confusion matrices (rows: true class).
    snapshot_steps: steps shown as columns (the closest logged steps).

  Example:
    >>> conf = np.tile(np.eye(2), (3, 1, 1))
    >>> fig = plot_confusion_grid([0, 5, 10], {"erm": {"train": conf, "test": conf}}, [0, 10])
    >>> len(fig.axes)
    5
  """
  columns = _closest(steps, snapshot_steps)
  rows = [(run, split) for run in confusions for split in confusions[run]]
  fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                           figsize=(1.9 * len(columns) + 0.8, 1.9 * len(rows)),
                           constrained_layout=True)
  image = None
  for r, (run, split) in enumerate(rows):
    matrices = np.asarray(confusions[run][split])
    for c, t in enumerate(columns):
      ax = axes[r, c]
      matrix = matrices[t]
      image = ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
      for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                color="white" if value > 0.6 else "black")
      ax.set_xticks(range(matrix.shape[1]))
      ax.set_yticks(range(matrix.shape[0]))
      ax.tick_params(labelsize=6)
      if r == 0:
        ax.set_title(f"step {int(np.asarray(steps)[t])}", fontsize=9)
      if c == 0:
        ax.set_ylabel(f"{run}, {split}\ntrue class", fontsize=8)
      if r == len(rows) - 1:
        ax.set_xlabel("predicted", fontsize=8)
  fig.colorbar(image, ax=axes, fraction=0.02, pad=0.01)
  return fig


def plot_majority_minority(steps, summary: Mapping[str, Mapping]):
  """Paper R Fig. 3: (a, b) majority/minority loss under ERM and reweighting, (c, d) accuracy.

  Args:
    steps: ``[T]`` logged steps.
    summary: run (``"erm"``, ``"reweighted"``) -> entry with ``train`` and
      ``test`` dicts of curves ``majority_loss``, ``minority_loss``,
      ``majority_accuracy``, ``minority_accuracy`` (``[T]`` each).

  Example:
    >>> curves = {f"{g}_{m}": [1.0, 0.5] for g in ("majority", "minority")
    ...           for m in ("loss", "accuracy")}
    >>> fig = plot_majority_minority([0, 10], {"erm": {"train": curves, "test": curves}})
    >>> len(fig.axes)
    2
  """
  runs = list(summary)
  fig, axes = plt.subplots(2, len(runs), squeeze=False, figsize=(4.2 * len(runs), 6.2),
                           constrained_layout=True)
  colors = {"majority": group_colors(2)[0], "minority": group_colors(2)[1]}
  letters = iter("abcdefgh")
  for r, metric in enumerate(("loss", "accuracy")):
    for c, run in enumerate(runs):
      ax = axes[r, c]
      for split, style in (("train", "-"), ("test", "--")):
        for group in ("majority", "minority"):
          ax.plot(steps, summary[run][split][f"{group}_{metric}"], color=colors[group],
                  linestyle=style, label=f"{group}, {split}")
      ax.set(xlabel="step", ylabel=metric, title=f"({next(letters)}) {run}: {metric}")
      ax.legend(fontsize=7)
    top = max(axes[r, c].get_ylim()[1] for c in range(len(runs)))
    for c in range(len(runs)):
      axes[r, c].set_ylim(0, top if metric == "loss" else 1.02)
  return fig
