"""Paper-style matplotlib figures (Agg backend, PNG files), one module per figure family.

* `common`: paper colours (`run_style`, `run_label`, `group_colors`), shared
  panels, colour bars and `save_figure`; re-exported here.
* `linear`: heavy-tailed linear runs (paper H Figs 4, 16, 19, 21).
* `theory`: closed forms over simulations (paper H Fig 6, Thm 3; papers R, S);
  draws what `imbalance_jax.theory.studies` computes.
* `curvature`: gradient norm vs Hessian trace, block maps (paper H Figs 7, 8, 23-28).
* `vision`: vision runs (paper H Figs 2, 3, 14; paper R Figs 1, 3).
* `language`: validation losses and token frequencies (paper H Figs 9, 10).
* `long_tail`: loss-side long-tail remedies x optimizers (heat map, per-group curves).

Every figure function takes computed results (arrays, histories, dicts) and
returns a matplotlib Figure; none trains or simulates. A binary runs the
library's training or study, passes the results here and saves the Figure::

  from imbalance_jax import plotting
  fig = plotting.linear.plot_heavy_tailed_overview(counts, groups, steps, histories, rates)
  plotting.save_figure(fig, "overview.png")
"""

from imbalance_jax.plotting import common  # first: selects the Agg backend
from imbalance_jax.plotting import curvature, language, linear, long_tail, theory, vision
from imbalance_jax.plotting.common import (OPTIMIZER_COLORS, OPTIMIZER_LABELS, add_class_colorbar,
                                           add_group_colorbar, group_colors, mean_over_seeds,
                                           plot_class_distribution, plot_group_curves, run_label,
                                           run_style, save_figure)

__all__ = [
    "OPTIMIZER_COLORS", "OPTIMIZER_LABELS", "add_class_colorbar", "add_group_colorbar", "common",
    "curvature", "group_colors", "language", "linear", "long_tail", "mean_over_seeds",
    "plot_class_distribution", "plot_group_curves", "run_label", "run_style", "save_figure",
    "theory", "vision",
]
