"""Paper-style matplotlib figures (Agg backend, PNG files).

Colours follow paper H: Adam red, GD black, normalized GD yellow, sign descent
blue; solid lines with momentum, dashed without; frequency groups in viridis,
most frequent darkest.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imbalance_jax import results  # noqa: E402

OPTIMIZER_COLORS = {
    "adam": (187 / 255, 85 / 255, 102 / 255),
    "gd": (0.0, 0.0, 0.0),
    "normalized_gd": (221 / 255, 170 / 255, 51 / 255),
    "sign_descent": (0.0, 68 / 255, 136 / 255),
}
OPTIMIZER_LABELS = {"adam": "Adam", "gd": "GD", "normalized_gd": "Normalized GD",
                    "sign_descent": "Sign descent"}


def run_style(run_name: str) -> dict:
  """Line colour/style for a run name like ``"adam+m"`` or ``"gd+m@inverse_sqrt"``."""
  base = run_name.split("@")[0]
  optimizer = base.removesuffix("+m")
  style = {"color": OPTIMIZER_COLORS.get(optimizer, "tab:gray"),
           "linestyle": "-" if base.endswith("+m") else "--"}
  if "@" in run_name:  # reweighted runs: same colour family, dotted markers
    style["linestyle"] = "-." if run_name.endswith("inverse_sqrt") else ":"
  return style


def run_label(run_name: str) -> str:
  base, _, weighting = run_name.partition("@")
  optimizer = base.removesuffix("+m")
  label = OPTIMIZER_LABELS.get(optimizer, optimizer) + (" (+m)" if base.endswith("+m") else " (-m)")
  if weighting:
    label += {"inverse": r" w=1/$\pi_k$", "inverse_sqrt": r" w=1/$\sqrt{\pi_k}$"}.get(
        weighting, f" w={weighting}")
  return label


def group_colors(num_groups: int) -> np.ndarray:
  """``[G, 4]`` RGBA colours, group 0 (most frequent) darkest."""
  return plt.get_cmap("viridis")(np.linspace(0.0, 0.92, max(num_groups, 1)))


def plot_class_distribution(ax, class_counts, groups) -> None:
  """Class counts sorted by frequency (log-log), coloured by frequency group."""
  counts = np.asarray(class_counts)
  groups = np.asarray(groups)
  order = np.argsort(-counts, kind="stable")
  ranks = np.arange(1, counts.size + 1)
  colors = group_colors(int(groups.max()) + 1)
  for g in range(int(groups.max()) + 1):
    mask = groups[order] == g
    ax.bar(ranks[mask], counts[order][mask], width=1.0, color=colors[g], linewidth=0)
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("class (sorted by frequency)")
  ax.set_ylabel("examples per class")


def plot_group_curves(ax, steps, group_values_TG, *, ylabel: str = "training loss") -> None:
  """One line per frequency group (most frequent darkest)."""
  values = np.asarray(group_values_TG)
  colors = group_colors(values.shape[-1])
  for g in range(values.shape[-1]):
    ax.plot(steps, values[:, g], color=colors[g], linewidth=1.4)
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)


def add_group_colorbar(fig, axes, num_groups: int) -> None:
  cmap = matplotlib.colors.ListedColormap(group_colors(num_groups))
  norm = matplotlib.colors.BoundaryNorm(np.arange(num_groups + 1) - 0.5, num_groups)
  bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes,
                     ticks=[0, num_groups - 1], fraction=0.02, pad=0.01)
  bar.ax.set_yticklabels(["frequent", "rare"])


def save_figure(fig, path: str | os.PathLike, dpi: int = 130) -> str:
  """Saves ``fig`` as a PNG atomically and closes it; returns the path."""
  with results.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
  plt.close(fig)
  return os.fspath(path)


def _mean_over_seeds(values):
  return np.mean(np.asarray(values), axis=0)


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
  """
  panels = [p for p in panels if p in histories] or list(histories)[:2]
  fig, axes = plt.subplots(1, 2 + len(panels), figsize=(4.2 * (2 + len(panels)), 3.6),
                           constrained_layout=True)
  plot_class_distribution(axes[0], class_counts, groups)
  axes[0].set_title("(a) class frequencies")
  for name, history in histories.items():
    axes[1].plot(steps, _mean_over_seeds(history["loss"]), label=run_label(name), **run_style(name))
  axes[1].set(xlabel="step", ylabel="training loss", title="(b) overall loss")
  axes[1].legend(fontsize=7)
  group_axes = axes[2:]
  for i, (ax, name) in enumerate(zip(group_axes, panels)):
    plot_group_curves(ax, steps, _mean_over_seeds(histories[name]["group_loss"]))
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
  order = lambda item: ("@" in item[0], item[0].startswith("+m"), item[0])
  for r, (row, names) in enumerate(sorted(rows.items(), key=order)):
    for name in names:
      axes[r, 0].plot(steps, _mean_over_seeds(histories[name]["loss"]), label=run_label(name),
                      **run_style(name))
    axes[r, 0].set(title=f"overall loss ({row})", xlabel="step", ylabel="training loss")
    axes[r, 0].legend(fontsize=7)
    for c, name in enumerate(names, start=1):
      plot_group_curves(axes[r, c], steps, _mean_over_seeds(histories[name]["group_loss"]))
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
    group_loss = _mean_over_seeds(history["group_loss"])
    num_groups = group_loss.shape[-1]
    for c, horizon in enumerate(horizons):
      keep = steps <= horizon
      ax = axes[r, c]
      plot_group_curves(ax, steps[keep], group_loss[keep])
      ax.axhline(_mean_over_seeds(history["loss"])[0], color="gray", linestyle=":", linewidth=1)
      ax.set_title(f"{run_label(name)}, lr={learning_rates[name]:.2g}, {horizon:,} steps",
                   fontsize=9)
  add_group_colorbar(fig, axes, num_groups)
  return fig
