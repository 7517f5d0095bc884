"""Figures of the language experiments (paper H Figs 9, 10); each returns a Figure.

`validation_overview` is `imbalance_jax.plotting.linear.plot_heavy_tailed_overview`
on the ``valid/`` metrics of the histories (Fig 10: per-group validation
loss); `plot_token_frequencies` and `plot_token_groups` draw the token counts
of several tokenizers (Fig 9). The curvature snapshots of a transformer run
(Fig 26) are `imbalance_jax.plotting.curvature.plot_block_scatter`.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from imbalance_jax.data.zipf import rank_frequencies
from imbalance_jax.plotting.common import add_group_colorbar, group_colors
from imbalance_jax.plotting.linear import plot_heavy_tailed_overview

_TOKENIZER_STYLE = {"word": dict(color="black"),
                    "bpe": dict(color=(187 / 255, 85 / 255, 102 / 255)),
                    "unigram": dict(color=(0.0, 68 / 255, 136 / 255))}


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
  fig = plot_heavy_tailed_overview(class_counts, groups, steps, valid, learning_rates,
                                   panels=panels)
  fig.axes[1].set_ylabel("validation loss")
  return fig


def plot_token_frequencies(counts: Mapping[str, Mapping[str, np.ndarray]]):
  """Paper H Fig 9: relative frequency vs rank (log-log), one panel per corpus, one line
  per tokenizer, with ``1/k`` for reference.

  Args:
    counts: corpus -> tokenizer -> ``[V]`` token counts (any order, zeros allowed).

  Example:
    >>> fig = plot_token_frequencies({"ptb": {"word": np.array([5, 0, 2, 1])}})
    >>> len(fig.axes)
    1
  """
  fig, axes = plt.subplots(1, len(counts), figsize=(4.6 * len(counts), 3.8), squeeze=False)
  for ax, (corpus, by_tokenizer) in zip(axes[0], counts.items()):
    for name, c in by_tokenizer.items():
      freqs = rank_frequencies(c)
      ax.plot(np.arange(1, freqs.size + 1), freqs, label=name, linewidth=1.5,
              **_TOKENIZER_STYLE.get(name, {}))
    top = max(rank_frequencies(c)[0] for c in by_tokenizer.values())
    k = np.logspace(0, np.log10(max(c.size for c in by_tokenizer.values())), 50)
    ax.plot(k, top / k, color="gray", linestyle=":", label=r"$\propto 1/k$")
    ax.set(xscale="log", yscale="log", xlabel="rank k (by frequency)",
           ylabel=r"relative frequency $\pi_k$", title=corpus)
    ax.legend(frameon=False)
  fig.tight_layout()
  return fig


def plot_token_groups(counts: Mapping[str, Mapping[str, np.ndarray]],
                      groups: Mapping[str, Mapping[str, np.ndarray]], num_groups: int):
  """The class distribution of every corpus and tokenizer, coloured by frequency group.

  Args:
    counts: corpus -> tokenizer -> ``[V]`` token counts.
    groups: corpus -> tokenizer -> ``[V]`` group ids (0 = most frequent), as
      `imbalance_jax.data.frequency_groups` assigns them.
    num_groups: the number of groups asked for (sets the colour scale).

  Example:
    >>> fig = plot_token_groups({"ptb": {"word": np.array([5, 2, 1])}},
    ...                         {"ptb": {"word": np.array([0, 1, 1])}}, 2)
    >>> len(fig.axes)
    2
  """
  rows = len(counts)
  cols = max(len(v) for v in counts.values())
  fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.2 * rows), squeeze=False)
  for r, (corpus, by_tokenizer) in enumerate(counts.items()):
    for c, (name, class_counts) in enumerate(by_tokenizer.items()):
      ax = axes[r, c]
      group_ids = np.asarray(groups[corpus][name])
      order = np.argsort(-class_counts, kind="stable")
      ranks = np.arange(1, class_counts.size + 1)
      colors = group_colors(num_groups)
      for g in range(int(group_ids.max()) + 1):  # one filled step curve per group (fast for 50k)
        mask = group_ids[order] == g
        x = np.append(ranks[mask], ranks[mask][-1] + 1)  # each class spans [rank, rank + 1)
        y = np.maximum(np.append(class_counts[order][mask], class_counts[order][mask][-1]), 0.5)
        ax.fill_between(x, 0.5, y, step="post", color=colors[g], linewidth=0)
      ax.set(xscale="log", yscale="log", xlabel="token (sorted by frequency)",
             title=f"{corpus}, {name}")
    axes[r, 0].set_ylabel("occurrences")
  add_group_colorbar(fig, axes, num_groups)
  return fig
