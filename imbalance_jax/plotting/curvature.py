"""Figures of the curvature diagnostics (paper H Figs 7, 8, 23, 24, 26, 27, 28).

Every function takes recorded diagnostics (per-block gradient norms and
Hessian traces, block maps, Prop. 2 predictions; see `imbalance_jax.curvature`
and `imbalance_jax.curvature.study`) and returns a matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from imbalance_jax.curvature.block_maps import log10_magnitude
from imbalance_jax.plotting.common import (add_group_colorbar, group_colors, plot_group_curves,
                                           run_label, run_style)


def _log_axes(ax, x, y):
  """Log-log axes; spans under a decade get 1-2-5 ticks in plain numbers."""
  ax.set_xscale("log")
  ax.set_yscale("log")
  for axis, values in ((ax.xaxis, x), (ax.yaxis, y)):
    values = np.asarray(values)
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if values.size and values.max() < 10 * values.min():
      axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
      axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))


def plot_block_scatter(steps, grad_norm_TC, trace_TC, snapshot_indices: Sequence[int],
                       class_to_group, *, title: str, correlations: Sequence[float] | None = None,
                       xlabel: str = r"Hessian trace Tr$(\nabla^2_{w_k} L)$"):
  """One log-log panel per snapshot: gradient norm vs Hessian trace per block.

  Points are coloured by frequency group (viridis, most frequent darkest) and
  drawn rare-first so frequent classes stay visible; a colour bar maps
  colours to frequency. ``correlations`` (Spearman per panel) go in titles.
  """
  groups = np.asarray(class_to_group)
  num_groups = int(groups.max()) + 1
  colors = group_colors(num_groups)[groups]
  order = np.argsort(-groups, kind="stable")
  num = len(snapshot_indices)
  fig, axes = plt.subplots(1, num, figsize=(3.3 * num + 0.6, 3.3), squeeze=False,
                           constrained_layout=True)
  for j, (ax, t) in enumerate(zip(axes[0], snapshot_indices)):
    g, h = np.asarray(grad_norm_TC)[t], np.asarray(trace_TC)[t]
    ok = (g > 0) & (h > 0)
    sel = order[ok[order]]
    ax.scatter(h[sel], g[sel], c=colors[sel], s=9, linewidths=0)
    _log_axes(ax, h[sel], g[sel])
    label = f"step {int(np.asarray(steps)[t])}"
    if correlations is not None:
      label += f"\nSpearman {correlations[j]:+.2f}"
    ax.set_title(label, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
  axes[0, 0].set_ylabel(r"gradient norm $\|\nabla_{w_k} L\|$")
  add_group_colorbar(fig, axes, num_groups)
  fig.suptitle(title, fontsize=10)
  return fig


def plot_group_probabilities(steps, group_prob: Mapping[str, np.ndarray], num_groups: int):
  """Paper H Fig 23c: mean predicted probability of the true class per group."""
  fig, axes = plt.subplots(1, len(group_prob), figsize=(3.6 * len(group_prob) + 0.6, 3.0),
                           squeeze=False, sharey=True, constrained_layout=True)
  for ax, (name, values) in zip(axes[0], group_prob.items()):
    plot_group_curves(ax, steps, values, ylabel="mean p(true class)")
    ax.set_title(name, fontsize=9)
  add_group_colorbar(fig, axes, num_groups)
  return fig


def plot_block_maps(matrices: Sequence[np.ndarray], titles: Sequence[str], *, suptitle: str,
                    block_size: int = 1, floor: float = 1e-12):
  """``log10 |.|`` images on a shared colour scale (Figs 8 and 28).

  ``block_size > 1`` draws thin lines between the class blocks of an
  entrywise map (``block_size`` input dims per class).
  """
  logs = [np.asarray(log10_magnitude(np.asarray(m), floor)) for m in matrices]
  finite = np.concatenate([l[l > np.log10(floor)] for l in logs] or [np.zeros(1)])
  vmin, vmax = np.percentile(finite, 1), finite.max()
  num = len(matrices)
  fig, axes = plt.subplots(1, num, figsize=(3.2 * num + 0.8, 3.3), squeeze=False,
                           constrained_layout=True)
  for ax, l, title in zip(axes[0], logs, titles):
    image = ax.imshow(l, cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
    if block_size > 1:  # ticks at class-block boundaries, no grid over the image
      edges = np.arange(0, l.shape[0] + 1, block_size * max(1, l.shape[0] // block_size // 8))
      ax.set_xticks(edges - 0.5, labels=[])
      ax.set_yticks(edges - 0.5, labels=[])
      ax.tick_params(length=2)
      ax.set_title(title, fontsize=9)
      continue
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.colorbar(image, ax=axes, fraction=0.03, pad=0.01, label=r"$\log_{10}|\cdot|$")
  fig.suptitle(suptitle, fontsize=10)
  return fig


def plot_prediction_vs_measurement(panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
                                   class_to_group, *, suptitle: str, xlabel: str = "predicted",
                                   ylabel: str = "measured", ncols: int | None = None):
  """Log-log scatter of measured vs predicted per-block values with the y = x line.

  Panels fill a grid with ``ncols`` columns (default: one row).
  """
  groups = np.asarray(class_to_group)
  num_groups = int(groups.max()) + 1
  colors = group_colors(num_groups)[groups]
  ncols = ncols or len(panels)
  nrows = -(-len(panels) // ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols + 0.6, 3.1 * nrows),
                           squeeze=False, constrained_layout=True)
  for ax in axes.ravel()[len(panels):]:
    ax.axis("off")
  for ax, (name, (predicted, measured)) in zip(axes.ravel(), panels.items()):
    p, m = np.abs(np.asarray(predicted)), np.abs(np.asarray(measured))
    ok = (p > 0) & (m > 0) & np.isfinite(p) & np.isfinite(m)
    ax.scatter(p[ok], m[ok], c=colors[ok], s=9, linewidths=0)
    lo, hi = min(p[ok].min(), m[ok].min()), max(p[ok].max(), m[ok].max())
    ax.plot([lo, hi], [lo, hi], color="gray", linewidth=0.8, linestyle="--")
    _log_axes(ax, p[ok], m[ok])
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(name, fontsize=9)
  add_group_colorbar(fig, axes, num_groups)
  fig.suptitle(suptitle, fontsize=10)
  return fig


SPECTRAL_PANELS = (("top_eigenvalue", r"largest block eigenvalue $\lambda_{\max}(H_{bb})$", True),
                   ("heterogeneity", "block heterogeneity (mean JS distance)", False),
                   ("offdiag_share", "off-diagonal share of $\\|H\\|_F^2$", False),
                   ("one_one_ratio_median",
                    r"median $\|H_{bb}\|_{1,1} / (n_b \|H_{bb}\|_2)$", False))


def plot_spectral_measures(steps, group_loss: Mapping[str, np.ndarray], record_steps,
                           measures: Mapping[str, Mapping[str, Sequence[float]]], *,
                           title: str):
  """The follow-ups' curvature measures beside the per-group losses of the same runs.

  Args:
    steps: ``[T]`` logged steps.
    group_loss: ``{run name: [T, G]}`` per-group training loss (group 0 most frequent).
    record_steps: ``[R]`` steps of the measures.
    measures: ``{run name: {measure: [R]}}`` with the keys of
      `imbalance_jax.curvature.study.spectral_summary` (``top_eigenvalue``,
      ``heterogeneity``, ``offdiag_share``, ``one_one_ratio_median``).
    title: the figure's title.

  Returns:
    A Figure: one per-group loss panel per run, then one panel per measure with
    every run (Zhang et al. 2024, Dong et al. 2025, Xie et al. 2025).

  Example:
    >>> fig = plot_spectral_measures(
    ...     [0, 5, 10], {"gd": np.ones((3, 2)), "adam": np.ones((3, 2))}, [0, 10],
    ...     {r: dict.fromkeys(["top_eigenvalue", "heterogeneity", "offdiag_share",
    ...                        "one_one_ratio_median"], [1.0, 2.0]) for r in ("gd", "adam")},
    ...     title="demo")
    >>> len(fig.axes)  # 2 loss panels, 4 measures, the colour bar
    7
  """
  runs = list(group_loss)
  num_groups = int(np.asarray(group_loss[runs[0]]).shape[-1])
  num = len(runs) + len(SPECTRAL_PANELS)
  cols = (num + 1) // 2
  fig, axes = plt.subplots(2, cols, figsize=(3.3 * cols + 0.8, 6.0), squeeze=False,
                           constrained_layout=True)
  flat = list(axes.ravel())
  loss_axes = flat[:len(runs)]
  top = max(float(np.nanmax(np.asarray(group_loss[r]))) for r in runs)
  for ax, name in zip(loss_axes, runs):
    plot_group_curves(ax, steps, group_loss[name])
    ax.set_ylim(0, top * 1.05)
    ax.set_title(run_label(name), fontsize=9)
  for ax, (key, label, log) in zip(flat[len(runs):], SPECTRAL_PANELS):
    for name in runs:
      ax.plot(record_steps, measures[name][key], marker="o", markersize=3,
              label=run_label(name), **run_style(name))
    if log:
      ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(label, fontsize=8)
  flat[len(runs)].legend(fontsize=7)
  for ax in flat[num:]:
    ax.set_visible(False)
  add_group_colorbar(fig, loss_axes, num_groups)
  fig.suptitle(title, fontsize=10)
  return fig


def plot_offdiag_vs_classes(num_classes, offdiag_share, *, title: str):
  """Off-diagonal share of the Hessian's Frobenius mass against the number of classes.

  Log-log, with a ``1 / C`` line through the first point (Dong et al. 2025,
  arXiv 2505.02809: the Hessian becomes block-diagonal as ``C`` grows).

  Example:
    >>> fig = plot_offdiag_vs_classes([7, 15, 31], [0.15, 0.07, 0.035], title="demo")
    >>> fig.axes[0].get_xscale()
    'log'
  """
  c, share = np.asarray(num_classes, np.float64), np.asarray(offdiag_share, np.float64)
  fig, ax = plt.subplots(figsize=(4.2, 3.4), constrained_layout=True)
  ax.plot(c, share, "o-", color="black", label="measured")
  ax.plot(c, share[0] * c[0] / c, ":", color="tab:gray", label=r"$\propto 1/C$")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("number of classes C")
  ax.set_ylabel("off-diagonal share of $\\|H\\|_F^2$")
  ax.legend(fontsize=8)
  ax.set_title(title, fontsize=9)
  return fig
