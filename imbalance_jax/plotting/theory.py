"""Figures of the theory results (papers H, S, R): closed forms drawn over simulations.

Each ``*_figure`` function draws the ``data`` of the `imbalance_jax.theory.studies`
function of the same name (``quadratic_figure(**quadratic_study().data)``)
and returns a matplotlib Figure; `unigram_scaling_figure` draws the records
of `imbalance_jax.theory.unigram_scaling.scaling_study`. Nothing here
simulates: lines are closed forms and markers simulations, both computed by
the study.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from imbalance_jax.plotting.common import OPTIMIZER_COLORS, OPTIMIZER_LABELS, add_class_colorbar
from imbalance_jax.theory.ufm_spectrum import GROUPS

GROUP_COLORS = {"maj_maj": "tab:green", "maj_min": "tab:orange", "min_min": "tab:pink"}
GROUP_LABELS = {"maj_maj": "maj-maj", "maj_min": "maj-min", "min_min": "min-min"}


def quadratic_figure(steps, paths, closed_form):
  """Paper H Fig. 6: per-coordinate loss ``pi_k w_k^2 / 2`` of GD, sign descent and Adam.

  Args:
    steps: ``[T]``.
    paths: optimizer (``gd``, ``sign_descent``, ``adam``) -> ``[T, C]`` iterates.
    closed_form: optimizer -> ``[T, C]`` closed-form iterates (drawn as markers).
  """
  num_classes = np.asarray(paths["gd"]).shape[1]
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
  shown = np.unique(np.geomspace(1, num_classes, 12).astype(int)) - 1
  colors = plt.get_cmap("viridis")(np.linspace(0, 0.92, shown.size))
  for ax, name in zip(axes, paths):
    w = np.asarray(paths[name])
    for color, k in zip(colors, shown):
      ax.plot(steps, w[:, k] ** 2 / 2, color=color, lw=1.4)
      if name in closed_form:
        ax.plot(steps[::10], closed_form[name][::10, k] ** 2 / 2, "o", ms=2.5, color="k",
                alpha=0.6)
    ax.set_title(f"{OPTIMIZER_LABELS[name]} (-m)")
    ax.set_xlabel("step")
  axes[0].set_ylabel(r"$\frac{1}{2} w_k^2$ (loss of coordinate $k$ / $\pi_k$)")
  axes[0].legend([Line2D([], [], color="k", marker="o", ls="", ms=3)], ["closed form"],
                 loc="lower left", fontsize=8)
  add_class_colorbar(fig, axes, num_classes)
  return fig


def simple_setting_figure(pi, gd_lr, sign_lr, t_gd, gd_loss, t_sign, sign_loss, t,
                          gd_closed_form, gd_asymptote_t, gd_asymptote, t_short,
                          sign_closed_form, sign_lemma7_printed):
  """Paper H Thm. 3: per-class loss vs t, gradient flow vs continuous sign descent.

  Lines are the closed forms, markers the optimizer on the softmax model; the
  arguments are those `imbalance_jax.theory.studies.simple_setting_study`
  documents.
  """
  num_classes = len(pi)
  shown = np.unique(np.geomspace(1, len(t_gd) - 1, 30).astype(int))  # log-spaced markers
  colors = plt.get_cmap("viridis")(np.linspace(0, 0.92, num_classes))
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
  for k in range(num_classes):
    axes[0].loglog(t, gd_closed_form[k], color=colors[k], lw=1.5)
    axes[0].loglog(t_gd[shown], gd_loss[shown, k], "o", ms=3, color=colors[k], mfc="none")
    axes[0].loglog(gd_asymptote_t[k], gd_asymptote[k], ":", color="gray", lw=1)
  axes[1].semilogy(t_short, sign_closed_form, color=OPTIMIZER_COLORS["sign_descent"], lw=2,
                   label=r"closed form $\log(1+(c-1)e^{-2t})$, every class")
  axes[1].semilogy(t_short, sign_lemma7_printed, "--",
                   color="gray", label=r"paper H Lemma 7 as printed, $e^{-ct}$")
  for k in range(num_classes):
    axes[1].semilogy(t_sign, sign_loss[:, k], "o", ms=3, color=colors[k], mfc="none")
  for ax, title in zip(axes, ["gradient flow (GD, markers: lr=%g)" % gd_lr,
                              "continuous-time sign descent (markers: lr=%g)" % sign_lr]):
    ax.set_title(title)
    ax.set_xlabel(r"time $t$ (= step size $\times$ steps)")
  axes[0].set_ylabel(r"class loss $\ell_k(t)$")
  axes[0].set_ylim(1e-5, 5)
  axes[0].legend([Line2D([], [], color="k"), Line2D([], [], color="k", marker="o", ls="",
                                                    mfc="none"),
                  Line2D([], [], color="gray", ls=":")],
                 ["closed form (Lambert W)", "GD on the softmax model",
                  r"$(c-1)/(c\,\pi_k t)$"], loc="lower left", fontsize=8)
  axes[1].legend(loc="lower left", fontsize=8)
  add_class_colorbar(fig, axes, num_classes)
  return fig


def unigram_smoothness_figure(rows, eps):
  """Paper S: smoothness constants at the minimiser, distances and theory step counts vs d.

  Args:
    rows: one dict per vocabulary size (``d``, ``l2_smoothness``, ``l2_bounds``,
      ...; see `imbalance_jax.theory.studies.unigram_smoothness_study`).
    eps: the target suboptimality of the theory step counts.
  """
  d = np.array([r["d"] for r in rows], float)
  get = lambda key: np.array([r[key] for r in rows], float)  # noqa: E731
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  ngd, sign = OPTIMIZER_COLORS["normalized_gd"], OPTIMIZER_COLORS["sign_descent"]
  ax = axes[0]
  ax.loglog(d, get("l2_smoothness"), "o-", color=ngd, label=r"$L_2(\theta^*)=\lambda_{max}$")
  ax.fill_between(d, *get("l2_bounds").T, color=ngd, alpha=0.25, label=r"$[p_{(2)}, p_{(1)}]$")
  ax.loglog(d, get("linf_smoothness"), "s-", color=sign, label=r"$L_\infty(\theta^*)$")
  ax.fill_between(d, *get("linf_bounds").T, color=sign, alpha=0.25,
                  label=r"$[1-p_{(1)}^2, 1]$")
  ax.axhline(0.5, color=ngd, ls=":", label=r"global $\sup L_2 = 1/2$")
  ax.axhline(1.0, color=sign, ls=":", label=r"global $\sup L_\infty = 1$")
  ax.set_title("smoothness at the minimiser")
  ax.set_ylabel("smoothness constant")
  ax = axes[1]
  ax.loglog(d, get("distance_l2") ** 2, "o-", color=ngd, label=r"$D_2^2$ (from $\theta=0$)")
  ax.loglog(d, d, ":", color=ngd, label=r"$d$")
  ax.loglog(d, get("distance_linf") ** 2, "s-", color=sign, label=r"$D_\infty^2$")
  ax.loglog(d, np.log(d) ** 2 / 4, ":", color=sign, label=r"$\log(d)^2/4$")
  ax.set_title("squared distance to the minimisers")
  ax = axes[2]
  ax.loglog(d, get("theory_iterations_l2"), "o-", color=ngd, label="normalized GD (l2)")
  ax.loglog(d, get("theory_iterations_linf"), "s-", color=sign, label="sign descent (linf)")
  ax.set_title(rf"theory bound $(L D_0^2/\epsilon)\log(2\Delta_0/\epsilon)$, $\epsilon$={eps:g}")
  ax.set_ylabel("iterations")
  for ax in axes:
    ax.set_xlabel("vocabulary size d")
    ax.legend(fontsize=7)
  return fig


def ufm_spectrum_figure(one_hot, z, u, singular_values, v, groups, numpy_singular_values, R):
  """Paper R Fig. 2 / 5 (top): Y, Z, U, Sigma and V^T of STEP simplex-encoded labels.

  Args: those `imbalance_jax.theory.studies.ufm_spectrum_study` documents.
  """
  num_classes = np.asarray(one_hot).shape[0]
  s = singular_values
  names = [GROUP_LABELS[g] for g in groups]
  fig, axes = plt.subplots(1, 5, figsize=(18, 3.6), layout="constrained",
                           gridspec_kw={"width_ratios": [3, 3, 1.3, 1.3, 3]})
  panels = [(axes[0], one_hot, "one-hot labels $Y$"), (axes[1], z, r"$Z=(I-11^T/k)Y$"),
            (axes[2], u, "left singular\nvectors $U$"),
            (axes[4], v.T, r"right singular vectors $V^T$")]
  for ax, matrix, title in panels:
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto",
                      interpolation="nearest")
    ax.set_title(title)
  for ax in (axes[0], axes[1]):
    ax.set_xlabel(f"example ({R} per majority, 1 per minority)")
    ax.set_yticks(range(num_classes))
    ax.set_ylabel("class (majorities first)")
  axes[2].set_xticks(range(len(names)), names, rotation=45)
  axes[2].set_yticks(range(num_classes))
  axes[4].set_yticks(range(len(names)), names)
  axes[4].set_xlabel("example")
  axes[3].bar(range(len(s)), s, color=[GROUP_COLORS[g] for g in groups])
  axes[3].plot(range(len(s)), numpy_singular_values[:len(s)], "k_", ms=18, mew=2,
               label="numpy SVD")
  axes[3].set_xticks(range(len(names)), names, rotation=45)
  axes[3].set_title(rf"singular values, $R$={R}")
  axes[3].legend(fontsize=7, loc="upper right")
  fig.colorbar(image, ax=axes[4], fraction=0.05, label="entry")
  return fig


def ufm_dynamics_figure(panels, R, delta):
  """Paper R Fig. 5 (middle/bottom): mode strengths, ERM vs reweighting, SVD vs random init.

  Args:
    panels: ``"erm"``, ``"reweighted"`` -> the arrays
      `imbalance_jax.theory.studies.ufm_dynamics_study` documents.
    R, delta: imbalance ratio and init scale (titles; time is drawn in units of delta).
  """
  fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
  for ax, (key, panel) in zip(axes, panels.items()):
    reweight = key == "reweighted"
    t, dense = panel["t"], panel["dense"]
    for m, group in enumerate(panel["groups"]):
      color = GROUP_COLORS[group]
      ax.plot(dense / delta, panel["exact"][group], color=color, lw=2,
              label=f"{GROUP_LABELS[group]} exact")
      ax.plot(t / delta, panel["svd_init"][:, m], "o", ms=3, color=color, mfc="none")
      ax.plot(t / delta, panel["random_init"][:, m], "--", color=color, lw=1.2)
      ax.axvline(panel["limits"][group], color=color, ls=":", lw=1)
    if panel["printed_maj_min"] is not None:
      ax.axvline(panel["printed_maj_min"], color="gray", ls="-.", lw=1,
                 label="paper R's maj-min time")
    ax.set_title(("reweighted ($\\gamma=1/2$)" if reweight else "ERM") + f", R={R}, "
                 rf"$\delta$={delta:g}")
    ax.set_xlabel(r"$t/\delta$")
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="k", marker="o", ls="", mfc="none"),
                Line2D([], [], color="k", ls="--"), Line2D([], [], color="k", ls=":")]
    labels += ["GD, SVD init", "GD, random init", r"limit $T_m$ ($\delta\to\infty$)"]
    ax.legend(handles, labels, fontsize=7, loc="lower right")
  axes[0].set_ylabel(r"mode strength $\beta_m = u_m^T W H v_m / \sigma_m$")
  return fig


def ufm_confusion_figure(t_over_delta, paths, snapshots, R):
  """Paper R Figs 1 and 4 in the small-scale model: class-averaged logits during GD.

  Rows: the runs of ``paths`` (ERM, reweighted); columns: the recorded times
  closest to ``snapshots`` (units of delta). See
  `imbalance_jax.theory.studies.ufm_confusion_study`.
  """
  fig, axes = plt.subplots(2, len(snapshots), figsize=(2.3 * len(snapshots), 4.9),
                           constrained_layout=True)
  names = ["M1", "M2", "m1", "m2"]
  for row, (key, path) in enumerate(paths.items()):
    reweight = key == "reweighted"
    for col, when in enumerate(snapshots):
      ax = axes[row, col]
      matrix = path[np.argmin(np.abs(t_over_delta - when))]
      image = ax.imshow(matrix, vmin=-0.75, vmax=0.75, cmap="RdBu_r")
      for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{0.0 if abs(value) < 0.005 else value:.2f}", ha="center", va="center",
                fontsize=7,
                color="white" if abs(value) > 0.5 else "black")
      ax.set_xticks(range(4), names, fontsize=7)
      ax.set_yticks(range(4), names, fontsize=7)
      ax.set_title(("reweighted" if reweight else "ERM") + rf", $t/\delta$={when:g}", fontsize=9)
      if col == 0:
        ax.set_ylabel("true class")
      if row == 1:
        ax.set_xlabel("output (logit)")
  fig.colorbar(image, ax=axes, fraction=0.02, label="mean logit (target 0.75 / -0.25)")
  fig.suptitle(f"Small-scale model (UFM, square loss), R={R}: M = majority, m = minority",
               fontsize=10)
  return fig


def ufm_times_figure(R, erm, reweighted, paper_reweighted, spread_limit_erm, spread_finite,
                     spread_reweighted_by_factor, delta_finite, paper_spread_reweighted, deltas,
                     half, R_convergence, paper_maj_min_limit):
  """Paper R Sec. 4 / Cor. C.3: learning times and Delta T vs R; maj-min convergence in delta.

  Args: those `imbalance_jax.theory.studies.ufm_times_study` documents.
  """
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for index, group in enumerate(GROUPS):
    axes[0].loglog(R, erm[group], "-", color=GROUP_COLORS[group],
                   label=f"ERM {GROUP_LABELS[group]}")
    axes[0].loglog(R, reweighted[group], "o", color=GROUP_COLORS[group], mfc="none",
                   ms=7 - 2 * index, label=f"reweighted {GROUP_LABELS[group]}")
  axes[0].loglog(R, paper_reweighted["maj_min"], "-.", color="gray",
                 label="paper R: reweighted maj-min")
  axes[0].set_ylabel(r"learning time $T_m$ (units of $\delta$)")
  axes[0].set_title(r"vanishing-init learning times")
  axes[1].loglog(R, spread_limit_erm, "k-", label=r"ERM $\sqrt{R}-1$ (limit)")
  axes[1].loglog(R, spread_finite["erm"], "ko", mfc="none",
                 label=rf"ERM, $\delta$={delta_finite:g}")
  for (factor, spread), marker in zip(spread_reweighted_by_factor.items(), ("s", "D", "^")):
    axes[1].loglog(R, spread, marker, color="tab:blue", mfc="none",
                   label=rf"reweighted, $\delta$={factor * delta_finite:g} (limit 0)")
  axes[1].loglog(R, paper_spread_reweighted, "-.", color="gray",
                 label=r"paper R: $\sqrt{2(R+1)}/(\sqrt{R}+1)-1$")
  axes[1].set_ylabel(r"$\Delta T = (T_{max}-T_{min})/T_{min}$")
  axes[1].set_title("spread of learning times")
  for ax in axes[:2]:
    ax.set_xlabel("imbalance ratio R")
    ax.legend(fontsize=7)
  axes[2].semilogx(deltas, half / deltas, "o-", color=GROUP_COLORS["maj_min"],
                   label="maj-min (exact 3-d ODE) / $\\delta$")
  axes[2].axhline(1 / np.sqrt(R_convergence + 1), color="k", ls=":",
                  label=r"$1/\sqrt{R+1}$ (ours)")
  axes[2].axhline(paper_maj_min_limit, color="gray", ls="-.",
                  label=r"$\sqrt{2}/(\sqrt{R}+1)$ (paper R)")
  axes[2].set_xlabel(r"initialisation scale $\delta$ ($W_0, H_0 \sim e^{-\delta}$)")
  axes[2].set_ylabel(r"half-time / $\delta$")
  axes[2].set_title(rf"reweighted maj-min mode, R={R_convergence:g}")
  axes[2].legend(fontsize=7)
  return fig


def unigram_scaling_figure(records, slopes):
  """Paper S: iterations to reach eps vs vocabulary size d (log-log), censored runs marked.

  Args:
    records: the records of `imbalance_jax.theory.unigram_scaling.scaling_study`.
    slopes: `imbalance_jax.theory.unigram_scaling.scaling_slopes` of them.
  """
  fig, ax = plt.subplots(figsize=(8, 5.5))
  for index, name in enumerate(slopes):
    rows = [r for r in records if r["method"] == name]
    base, _, rule = name.partition("@")
    style = {"color": OPTIMIZER_COLORS[base], "ls": "--" if rule else "-"}
    done = [(r["d"], r["iterations"]) for r in rows if not r["censored"]]
    slope = slopes[name]["slope"]
    label = (OPTIMIZER_LABELS[base] + (" (theory step)" if rule else " (tuned step)")
             + (f", slope {slope:.2f}" if slope is not None else ""))
    if done:
      ax.loglog(*zip(*done), marker="o", label=label, **style)
    else:
      ax.plot([], [], marker="o", label=label + " (all censored)", **style)
    # Censored markers are nudged sideways per method so that equal caps stay visible.
    cut = [(r["d"] * 1.1**(index - 2.5), r["steps_run"]) for r in rows
           if r["censored"] and r["steps_run"] > 0]
    if cut:
      ax.loglog(*zip(*cut), marker="^", ls="", mfc="none", ms=9, color=style["color"])
    bounds = [(r["d"], r["theory_bound"]) for r in rows if r["theory_bound"]]
    if bounds:
      ax.loglog(*zip(*bounds), ls=":", lw=1, color=style["color"])
  ax.plot([], [], "k^", mfc="none", ls="", label="censored: not reached within this many steps")
  ax.plot([], [], "k:", lw=1, label=r"theory bound $(LD_0^2/\epsilon)\log(2\Delta_0/\epsilon)$")
  eps = records[0]["eps"]
  ax.set_title(rf"softmax unigram model, Zipf $\pi$: steps to reach $f-f^*\leq${eps:g}")
  ax.set_xlabel("vocabulary size d")
  ax.set_ylabel("iterations")
  ax.legend(fontsize=7, loc="upper left")
  return fig
