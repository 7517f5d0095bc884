"""What every figure family shares: paper colours, run labels, group colours, colour bars, PNGs.

Colours follow paper H: Adam red, GD black, normalized GD yellow, sign descent
blue; solid lines with momentum, dashed without; frequency groups in viridis,
most frequent darkest. Importing this module selects matplotlib's Agg backend.
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
  """Line colour/style for a run name like ``"adam+m"`` or ``"gd+m@inverse_sqrt"``.

  Example:
    >>> run_style("gd")
    {'color': (0.0, 0.0, 0.0), 'linestyle': '--'}
  """
  base = run_name.split("@")[0]
  optimizer = base.removesuffix("+m")
  style = {"color": OPTIMIZER_COLORS.get(optimizer, "tab:gray"),
           "linestyle": "-" if base.endswith("+m") else "--"}
  if "@" in run_name:  # reweighted runs: same colour family, dotted markers
    style["linestyle"] = "-." if run_name.endswith("inverse_sqrt") else ":"
  return style


def run_label(run_name: str) -> str:
  """Legend text of a run name.

  Example:
    >>> run_label("adam+m")
    'Adam (+m)'
  """
  base, _, weighting = run_name.partition("@")
  optimizer = base.removesuffix("+m")
  label = OPTIMIZER_LABELS.get(optimizer, optimizer) + (" (+m)" if base.endswith("+m") else " (-m)")
  if weighting:
    label += {"inverse": r" w=1/$\pi_k$", "inverse_sqrt": r" w=1/$\sqrt{\pi_k}$"}.get(
        weighting, f" w={weighting}")
  return label


def group_colors(num_groups: int) -> np.ndarray:
  """``[G, 4]`` RGBA colours, group 0 (most frequent) darkest.

  Example:
    >>> group_colors(3).shape
    (3, 4)
  """
  return plt.get_cmap("viridis")(np.linspace(0.0, 0.92, max(num_groups, 1)))


def mean_over_seeds(values) -> np.ndarray:
  """Mean over the leading seed axis: ``[S, T, ...]`` -> ``[T, ...]``."""
  return np.mean(np.asarray(values), axis=0)


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
  """A discrete colour bar of the ``num_groups`` frequency groups, "frequent" to "rare"."""
  cmap = matplotlib.colors.ListedColormap(group_colors(num_groups))
  norm = matplotlib.colors.BoundaryNorm(np.arange(num_groups + 1) - 0.5, num_groups)
  bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes,
                     ticks=[0, num_groups - 1], fraction=0.02, pad=0.01)
  bar.ax.set_yticklabels(["frequent", "rare"])


def add_class_colorbar(fig, axes, num_classes: int) -> None:
  """A colour bar of class rank ``k`` (Zipf classes): discrete up to 20 classes, log above."""
  if num_classes <= 20:  # one colour per class, integer ticks
    norm = matplotlib.colors.BoundaryNorm(np.arange(num_classes + 1) + 0.5, num_classes)
    cmap = matplotlib.colors.ListedColormap(
        plt.get_cmap("viridis")(np.linspace(0, 0.92, num_classes)))
    ticks = np.arange(1, num_classes + 1)
  else:
    norm, cmap, ticks = matplotlib.colors.LogNorm(1, num_classes), "viridis", None
  bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes,
                     fraction=0.025, pad=0.01, ticks=ticks)
  bar.set_label(r"class rank $k$ ($\pi_k \propto 1/k$)")


def save_figure(fig, path: str | os.PathLike, dpi: int = 130) -> str:
  """Saves ``fig`` as a PNG atomically and closes it; returns the path."""
  with results.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
  plt.close(fig)
  return os.fspath(path)
