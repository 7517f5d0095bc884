"""Loss-side long-tail remedies crossed with optimizers (`experiments.long_tail_losses`).

Remedies: Menon et al. (ICLR 2021) logit adjustment, Ren et al. (NeurIPS 2020)
balanced softmax, Cao et al. (NeurIPS 2019) LDAM-DRW, Cui et al. (CVPR 2019)
class-balanced weights, focal loss, paper H's 1/pi and 1/sqrt(pi) weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from imbalance_jax.plotting.common import add_group_colorbar, mean_over_seeds, plot_group_curves


def plot_remedy_heatmap(gains: Mapping[str, np.ndarray], remedies: Sequence[str],
                        optimizers: Sequence[str], *, what: str = "few-shot test accuracy"):
  """Heat maps remedy x optimizer of a metric's gain over plain CE, one panel per task.

  Args:
    gains: ``{task: [R, O]}`` gain of remedy ``r`` with optimizer ``o`` over the plain
      cross-entropy run of ``o`` (NaN where not run).
    remedies, optimizers: row and column labels (``R`` and ``O`` of them).
    what: the metric, for the colour bar.

  Returns:
    the Figure (diverging colours, 0 = no change; each cell annotated).

  Example:
    >>> fig = plot_remedy_heatmap({"digits": np.array([[0.1, -0.05]])}, ["logit_adjust"],
    ...                           ["gd+m", "adam+m"])
    >>> len(fig.axes)
    2
  """
  tasks = list(gains)
  fig, axes = plt.subplots(1, len(tasks), figsize=(1.4 * len(optimizers) * len(tasks) + 2.5,
                                                   0.45 * len(remedies) + 1.5), squeeze=False)
  finite = np.concatenate([np.ravel(np.asarray(g, float)) for g in gains.values()])
  finite = finite[np.isfinite(finite)]
  scale = max(float(np.max(np.abs(finite))) if finite.size else 0.0, 1e-6)
  image = None
  for ax, task in zip(axes[0], tasks):
    values = np.asarray(gains[task], float)
    image = ax.imshow(values, cmap="RdBu", vmin=-scale, vmax=scale, aspect="auto")
    ax.set_xticks(range(len(optimizers)), optimizers)
    ax.set_yticks(range(len(remedies)), remedies)
    ax.set_title(task)
    for (r, o), v in np.ndenumerate(values):
      ax.text(o, r, "" if not np.isfinite(v) else f"{v:+.2f}", ha="center", va="center",
              fontsize=8)
  fig.colorbar(image, ax=list(axes[0]), label=f"{what} gain over plain CE")
  return fig


def plot_remedy_group_curves(steps, histories: Mapping[str, Mapping[str, np.ndarray]],
                             remedies: Sequence[str], optimizers: Sequence[str], *,
                             train_key: str = "group_loss",
                             test_key: str = "test/group_accuracy"):
  """Per-group training loss and held-out accuracy curves, one column per run.

  Args:
    steps: logged steps ``[T]``.
    histories: run name (``<optimizer>`` or ``<optimizer>@<remedy>``) -> history with
      ``train_key`` and ``test_key`` leaves ``[S, T, G]``.
    remedies: ``"none"`` (plain CE) or a remedy; optimizers: base run names.

  Returns:
    the Figure: rows (train loss, test accuracy) x optimizer, columns remedies.

  Example:
    >>> h = {"gd": {"group_loss": np.ones((1, 3, 2)), "test/group_accuracy": np.ones((1, 3, 2))}}
    >>> len(plot_remedy_group_curves([0, 1, 2], h, ["none"], ["gd"]).axes) >= 2
    True
  """
  rows = [(o, k) for o in optimizers for k in (train_key, test_key)]
  fig, axes = plt.subplots(len(rows), len(remedies), figsize=(2.3 * len(remedies) + 1,
                                                              1.7 * len(rows)),
                           squeeze=False, sharex=True)
  num_groups = 1
  for i, (opt, key) in enumerate(rows):
    for j, remedy in enumerate(remedies):
      name = opt if remedy == "none" else f"{opt}@{remedy}"
      ax = axes[i, j]
      if name not in histories:
        ax.set_visible(False)
        continue
      values = mean_over_seeds(histories[name][key])
      num_groups = values.shape[-1]
      plot_group_curves(ax, steps, values, ylabel=f"{opt}\n{key}" if j == 0 else "")
      if key == train_key:
        ax.set_yscale("log")
      if i == 0:
        ax.set_title(remedy, fontsize=9)
  add_group_colorbar(fig, list(axes.ravel()), num_groups)
  return fig
