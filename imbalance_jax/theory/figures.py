"""Figures of the theory results: each function computes (closed form + simulation) and plots.

Every function returns ``(fig, summary)`` where ``summary`` holds the numbers
behind the figure, including the largest relative error between the closed
form and the simulation drawn on it. Colours follow `imbalance_jax.plotting`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import metrics, optim, plotting  # plotting selects the Agg backend first
import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
from matplotlib.lines import Line2D  # noqa: E402

from imbalance_jax.data.theory_problems import (simplex_encoded_labels, step_imbalanced_labels,
                                                zipf_distribution)
from imbalance_jax.theory import (quadratic, simple_setting, simulate, ufm_dynamics, ufm_spectrum,
                                  unigram)

GROUP_COLORS = {"maj_maj": "tab:green", "maj_min": "tab:orange", "min_min": "tab:pink"}
GROUP_LABELS = {"maj_maj": "maj-maj", "maj_min": "maj-min", "min_min": "min-min"}


def _rel_err(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a) / np.asarray(b) - 1.0)))


def _class_colorbar(fig, axes, num_classes):
  if num_classes <= 20:  # one colour per class, integer ticks
    norm = plt.matplotlib.colors.BoundaryNorm(np.arange(num_classes + 1) + 0.5, num_classes)
    cmap = plt.matplotlib.colors.ListedColormap(
        plt.get_cmap("viridis")(np.linspace(0, 0.92, num_classes)))
    ticks = np.arange(1, num_classes + 1)
  else:
    norm, cmap, ticks = plt.matplotlib.colors.LogNorm(1, num_classes), "viridis", None
  bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, fraction=0.025,
                     pad=0.01, ticks=ticks)
  bar.set_label(r"class rank $k$ ($\pi_k \propto 1/k$)")


def quadratic_figure(num_classes: int = 100, num_steps: int = 200, gd_lr: float = 1.0,
                     sign_lr: float = 0.012, adam_lr: float = 0.01):
  """Paper H Fig. 6: per-coordinate loss ``pi_k w_k^2 / 2`` of GD, sign descent and Adam."""
  pi = zipf_distribution(num_classes)
  steps = np.arange(num_steps + 1)
  with jax.enable_x64(True):
    paths = {"gd": quadratic.simulate_quadratic(optim.gd, pi, gd_lr, num_steps),
             "sign_descent": quadratic.simulate_quadratic(optim.sign_descent, pi, sign_lr,
                                                          num_steps),
             "adam": quadratic.simulate_quadratic(lambda lr: optim.adam(lr, momentum=0.0), pi,
                                                  adam_lr, num_steps)}
  closed = {"gd": quadratic.gd_quadratic_path(steps, pi, gd_lr),
            "sign_descent": quadratic.sign_descent_quadratic_path(steps, sign_lr,
                                                                  num_classes=num_classes)}
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
  shown = np.unique(np.geomspace(1, num_classes, 12).astype(int)) - 1
  colors = plt.get_cmap("viridis")(np.linspace(0, 0.92, shown.size))
  for ax, name in zip(axes, paths):
    w = np.asarray(paths[name])
    for color, k in zip(colors, shown):
      ax.plot(steps, w[:, k] ** 2 / 2, color=color, lw=1.4)
      if name in closed:
        ax.plot(steps[::10], closed[name][::10, k] ** 2 / 2, "o", ms=2.5, color="k", alpha=0.6)
    ax.set_title(f"{plotting.OPTIMIZER_LABELS[name]} (-m)")
    ax.set_xlabel("step")
  axes[0].set_ylabel(r"$\frac{1}{2} w_k^2$ (loss of coordinate $k$ / $\pi_k$)")
  axes[0].legend([Line2D([], [], color="k", marker="o", ls="", ms=3)], ["closed form"],
                 loc="lower left", fontsize=8)
  _class_colorbar(fig, axes, num_classes)
  # Sign descent lands on 0 +- alpha, so compare it in absolute terms.
  return fig, {"gd_max_rel_err_closed_form_vs_optax": _rel_err(paths["gd"], closed["gd"]),
               "sign_max_abs_err_closed_form_vs_optax": float(np.max(np.abs(
                   np.asarray(paths["sign_descent"]) - closed["sign_descent"])))}


def simple_setting_figure(num_classes: int = 8, gd_lr: float = 0.05,
                          gd_steps: int = 20_000, sign_lr: float = 0.05, sign_steps: int = 100):
  """Paper H Thm. 3: per-class loss vs t, gradient flow vs continuous sign descent.

  Classes have ``n_k = lcm(1..c) / k`` examples (exactly Zipf). Lines are the
  closed forms, markers the optimizer on the softmax model (GD: t = lr * step).
  """
  counts = np.lcm.reduce(np.arange(1, num_classes + 1)) // np.arange(1, num_classes + 1)
  pi = counts / counts.sum()
  with jax.enable_x64(True):
    gd_loss = np.asarray(simple_setting.simulate_simple_setting(
        counts, optim.gd, gd_lr, gd_steps, log_every=1, dtype=jnp.float64))
    sign_loss = np.asarray(simple_setting.simulate_simple_setting(
        counts, optim.sign_descent, sign_lr, sign_steps, log_every=sign_steps // 20,
        dtype=jnp.float64))
  shown = np.unique(np.geomspace(1, gd_steps, 30).astype(int))  # log-spaced markers
  t_gd = gd_lr * np.arange(gd_steps + 1)
  t_sign = sign_lr * np.arange(0, sign_steps + 1, sign_steps // 20)
  t = np.geomspace(1e-2, 1e5, 300)
  colors = plt.get_cmap("viridis")(np.linspace(0, 0.92, num_classes))
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
  for k in range(num_classes):
    axes[0].loglog(t, simple_setting.simple_setting_class_loss(t, pi[k], num_classes),
                   color=colors[k], lw=1.5)
    axes[0].loglog(t_gd[shown], gd_loss[shown, k], "o", ms=3, color=colors[k], mfc="none")
    axes[0].loglog(t[t > 10 / pi[k]],
                   simple_setting.simple_setting_gd_asymptote(t[t > 10 / pi[k]], pi[k],
                                                              num_classes),
                   ":", color="gray", lw=1)
  t_short = np.linspace(0, 1.2 * sign_lr * sign_steps, 200)
  sign_cf = simple_setting.simple_setting_class_loss(t_short, 0.5, num_classes, "sign")
  axes[1].semilogy(t_short, sign_cf, color=plotting.OPTIMIZER_COLORS["sign_descent"], lw=2,
                   label=r"closed form $\log(1+(c-1)e^{-2t})$, every class")
  axes[1].semilogy(t_short, np.log1p((num_classes - 1) * np.exp(-num_classes * t_short)), "--",
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
  _class_colorbar(fig, axes, num_classes)
  summary = {
      "pi": pi,
      "max_rel_err_gd_vs_gradient_flow": _rel_err(
          gd_loss, simple_setting.simple_setting_class_loss(t_gd[:, None], pi, num_classes)),
      "max_rel_err_sign_vs_closed_form": _rel_err(
          sign_loss, simple_setting.simple_setting_class_loss(t_sign[:, None], pi, num_classes,
                                                              "sign")),
      "time_to_loss_0.1": {
          "gd": simple_setting.simple_setting_time_to_loss(0.1, pi, num_classes),
          "sign": simple_setting.simple_setting_time_to_loss(0.1, pi, num_classes, "sign")},
  }
  return fig, summary


def unigram_smoothness_figure(sizes=(10, 100, 1000, 10**4, 10**5, 10**6), eps: float = 0.01):
  """Paper S: smoothness constants at the minimiser, distances and theory step counts vs d."""
  rows = []
  for d in sizes:
    pi = zipf_distribution(int(d))
    star = np.log(pi)
    rows.append({
        "d": int(d), "l2_smoothness": unigram.l2_smoothness(star),
        "l2_bounds": unigram.l2_smoothness_bounds(star),
        "linf_smoothness": unigram.linf_smoothness(star),
        "linf_bounds": unigram.linf_smoothness_bounds(star),
        "distance_l2": unigram.distance_to_minimizers(np.zeros(int(d)), pi, "l2"),
        "distance_linf": unigram.distance_to_minimizers(np.zeros(int(d)), pi, "linf"),
        "theory_iterations_l2": unigram.theory_iterations(pi, eps, "l2"),
        "theory_iterations_linf": unigram.theory_iterations(pi, eps, "linf")})
  d = np.array([r["d"] for r in rows], float)
  get = lambda key: np.array([r[key] for r in rows], float)  # noqa: E731
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  ngd, sign = plotting.OPTIMIZER_COLORS["normalized_gd"], plotting.OPTIMIZER_COLORS["sign_descent"]
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
  return fig, {"rows": rows, "eps": eps}


def ufm_spectrum_figure(num_classes: int = 4, R: int = 10):
  """Paper R Fig. 2 / 5 (top): Y, Z, U, Sigma and V^T of STEP simplex-encoded labels."""
  y = step_imbalanced_labels(num_classes, R)
  one_hot = np.eye(num_classes)[:, y]
  z = simplex_encoded_labels(y, num_classes)
  u, s, v, groups = ufm_spectrum.step_label_svd(num_classes, R)
  numeric = np.linalg.svd(z, compute_uv=False)
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
  axes[3].plot(range(len(s)), numeric[:len(s)], "k_", ms=18, mew=2, label="numpy SVD")
  axes[3].set_xticks(range(len(names)), names, rotation=45)
  axes[3].set_title(rf"singular values, $R$={R}")
  axes[3].legend(fontsize=7, loc="upper right")
  fig.colorbar(image, ax=axes[4], fraction=0.05, label="entry")
  return fig, {"singular_values": s, "groups": groups.tolist(),
               "max_abs_err_vs_numpy": float(np.max(np.abs(np.sort(s) -
                                                           np.sort(numeric[:len(s)]))))}


def ufm_dynamics_figure(R: int = 10, delta: float = 8.0, hidden_dim: int = 8, lr: float = 5e-3,
                        seed: int = 0):
  """Paper R Fig. 5 (middle/bottom): mode strengths, ERM vs reweighting, SVD vs random init."""
  fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
  summary = {}
  for ax, reweight in zip(axes, (False, True)):
    limits = ufm_dynamics.ufm_learning_times(R, reweight)
    horizon = delta * max(limits.values()) * 1.6 + 4.0
    steps = int(horizon / lr) // 100 * 100
    with jax.enable_x64(True):
      problem = ufm_dynamics.ufm_problem(4, R, reweight=reweight, dtype=jnp.float64)
      inits = {"SVD init": ufm_dynamics.svd_aligned_init(problem, hidden_dim, delta),
               "random init": ufm_dynamics.random_init(jax.random.key(seed), problem, hidden_dim,
                                                       delta)}
      runs = {name: np.asarray(ufm_dynamics.simulate_ufm(problem, params, optim.gd, lr, steps,
                                                         log_every=100))
              for name, params in inits.items()}
    t = lr * np.arange(0, steps + 1, 100)
    dense = np.linspace(0, t[-1], 400)
    exact = ufm_dynamics.ufm_mode_paths(dense, R, delta, reweight)
    for m, group in enumerate(problem.groups_M):
      color = GROUP_COLORS[group]
      ax.plot(dense / delta, exact[group], color=color, lw=2, label=f"{GROUP_LABELS[group]} exact")
      ax.plot(t / delta, runs["SVD init"][:, m], "o", ms=3, color=color, mfc="none")
      ax.plot(t / delta, runs["random init"][:, m], "--", color=color, lw=1.2)
      ax.axvline(limits[group], color=color, ls=":", lw=1)
    if reweight:
      printed = ufm_dynamics.corollary_c3_times(R, True)["maj_min"]
      ax.axvline(printed, color="gray", ls="-.", lw=1, label="paper R's maj-min time")
    ax.set_title(("reweighted ($\\gamma=1/2$)" if reweight else "ERM") + f", R={R}, "
                 rf"$\delta$={delta:g}")
    ax.set_xlabel(r"$t/\delta$")
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="k", marker="o", ls="", mfc="none"),
                Line2D([], [], color="k", ls="--"), Line2D([], [], color="k", ls=":")]
    labels += ["GD, SVD init", "GD, random init", r"limit $T_m$ ($\delta\to\infty$)"]
    ax.legend(handles, labels, fontsize=7, loc="lower right")
    key = "reweighted" if reweight else "erm"
    summary[key] = {"half_times_over_delta": {g: h / delta for g, h in ufm_dynamics.ufm_half_times(
        R, delta, reweight).items()}, "limits": limits}
  axes[0].set_ylabel(r"mode strength $\beta_m = u_m^T W H v_m / \sigma_m$")
  return fig, summary


def ufm_confusion_figure(R: int = 10, delta: float = 8.0, hidden_dim: int = 8, lr: float = 5e-3,
                         snapshots=(0.2, 0.35, 0.5, 0.8, 1.2), seed: int = 0):
  """Paper R Figs 1 and 4 in the small-scale model: class-averaged logits during GD.

  4 classes (2 majority with R examples, 2 minority with 1), UFM with square
  loss from small random init (scale e^{-delta}). Entry (k, j) is the mean
  logit of output j over the examples of class k; it converges to the target
  (I - 11^T/4)_{kj} (0.75 on the diagonal, -0.25 off it). This is the
  square-loss analogue of a confusion matrix: an argmax confusion matrix is
  uninformative here, because argmax ignores the scale of the (tiny) logits.
  Rows: ERM, reweighted (gamma = 1/2); columns: times ``t / delta``.

  The summary holds, per row, the first time (units of delta) at which every
  majority (minority) class reaches half its target logit on its own output.
  """
  log_every = 20
  horizon = delta * max(snapshots) * 1.05
  steps = int(np.ceil(horizon / lr / log_every)) * log_every
  t_over_delta = lr * np.arange(0, steps + 1, log_every) / delta
  fig, axes = plt.subplots(2, len(snapshots), figsize=(2.3 * len(snapshots), 4.9),
                           constrained_layout=True)
  summary = {}
  names = ["M1", "M2", "m1", "m2"]
  for row, reweight in enumerate((False, True)):
    with jax.enable_x64(True):
      problem = ufm_dynamics.ufm_problem(4, R, reweight=reweight, dtype=jnp.float64)
      labels = jnp.argmax(problem.z_KN, axis=0)

      def class_mean_logits(params, problem):
        w_KD, h_DN = params
        return jax.vmap(lambda row: metrics.per_class_mean(row, labels, 4))(w_KD @ h_DN).T

      params = ufm_dynamics.random_init(jax.random.key(seed), problem, hidden_dim, delta)
      path = np.asarray(simulate.optimizer_path(ufm_dynamics.ufm_loss, params, problem, optim.gd,
                                                lr, steps, log_every=log_every,
                                                record_fn=class_mean_logits))
    own = np.diagonal(path, axis1=1, axis2=2) / 0.75  # [T, 4], 1 once learned
    first = lambda ok: float(t_over_delta[np.argmax(ok)]) if ok.any() else None
    summary["reweighted" if reweight else "erm"] = {
        "majority_learned_at": first(np.all(own[:, :2] >= 0.5, axis=1)),
        "minority_learned_at": first(np.all(own[:, 2:] >= 0.5, axis=1))}
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
  return fig, summary


def ufm_times_figure(ratios=(2, 5, 10, 20, 50, 100, 300, 1000),
                     deltas=(4.0, 8.0, 16.0, 32.0, 64.0, 128.0), R_convergence: float = 10.0,
                     delta_finite: float = 8.0):
  """Paper R Sec. 4 / Cor. C.3: learning times and Delta T vs R; maj-min convergence in delta."""
  R = np.asarray(ratios, float)
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  erm, rw = ufm_dynamics.ufm_learning_times(R), ufm_dynamics.ufm_learning_times(R, True)
  printed = ufm_dynamics.corollary_c3_times(R, True)
  for group in ufm_spectrum.GROUPS:
    axes[0].loglog(R, erm[group], "-", color=GROUP_COLORS[group],
                   label=f"ERM {GROUP_LABELS[group]}")
    axes[0].loglog(R, rw[group], "o", color=GROUP_COLORS[group], mfc="none", ms=7 - 2 *
                   ufm_spectrum.GROUPS.index(group),
                   label=f"reweighted {GROUP_LABELS[group]}")
  axes[0].loglog(R, printed["maj_min"], "-.", color="gray", label="paper R: reweighted maj-min")
  axes[0].set_ylabel(r"learning time $T_m$ (units of $\delta$)")
  axes[0].set_title(r"vanishing-init learning times")
  spread_finite = {key: np.array([ufm_dynamics.time_spread(r, key == "rw", delta=delta_finite)
                                  for r in R]) for key in ("erm", "rw")}
  axes[1].loglog(R, ufm_dynamics.time_spread(R), "k-", label=r"ERM $\sqrt{R}-1$ (limit)")
  axes[1].loglog(R, spread_finite["erm"], "ko", mfc="none",
                 label=rf"ERM, $\delta$={delta_finite:g}")
  for factor, marker in ((1, "s"), (4, "D"), (16, "^")):
    spread = [ufm_dynamics.time_spread(r, True, delta=factor * delta_finite) for r in R]
    axes[1].loglog(R, spread, marker, color="tab:blue", mfc="none",
                   label=rf"reweighted, $\delta$={factor * delta_finite:g} (limit 0)")
  paper_rw = printed["maj_min"] * np.sqrt(R + 1) - 1
  axes[1].loglog(R, paper_rw, "-.", color="gray",
                 label=r"paper R: $\sqrt{2(R+1)}/(\sqrt{R}+1)-1$")
  axes[1].set_ylabel(r"$\Delta T = (T_{max}-T_{min})/T_{min}$")
  axes[1].set_title("spread of learning times")
  for ax in axes[:2]:
    ax.set_xlabel("imbalance ratio R")
    ax.legend(fontsize=7)
  delta = np.asarray(deltas, float)
  half = np.array([ufm_dynamics.maj_min_half_time(R_convergence, d) for d in delta])
  axes[2].semilogx(delta, half / delta, "o-", color=GROUP_COLORS["maj_min"],
                   label="maj-min (exact 3-d ODE) / $\\delta$")
  axes[2].axhline(1 / np.sqrt(R_convergence + 1), color="k", ls=":",
                  label=r"$1/\sqrt{R+1}$ (ours)")
  axes[2].axhline(float(ufm_dynamics.corollary_c3_times(R_convergence, True)["maj_min"]),
                  color="gray", ls="-.", label=r"$\sqrt{2}/(\sqrt{R}+1)$ (paper R)")
  axes[2].set_xlabel(r"initialisation scale $\delta$ ($W_0, H_0 \sim e^{-\delta}$)")
  axes[2].set_ylabel(r"half-time / $\delta$")
  axes[2].set_title(rf"reweighted maj-min mode, R={R_convergence:g}")
  axes[2].legend(fontsize=7)
  summary = {"R": R, "erm": erm, "reweighted": rw, "paper_reweighted": printed,
             "spread_limit_erm": ufm_dynamics.time_spread(R),
             "spread_limit_reweighted": ufm_dynamics.time_spread(R, True),
             "spread_finite_delta": spread_finite, "delta_finite": delta_finite,
             "maj_min_half_time_over_delta": dict(zip(delta.tolist(), (half / delta).tolist()))}
  return fig, summary


def unigram_scaling_figure(records, slopes):
  """Paper S: iterations to reach eps vs vocabulary size d (log-log), censored runs marked."""
  fig, ax = plt.subplots(figsize=(8, 5.5))
  for index, name in enumerate(slopes):
    rows = [r for r in records if r["method"] == name]
    base, _, rule = name.partition("@")
    style = {"color": plotting.OPTIMIZER_COLORS[base], "ls": "--" if rule else "-"}
    done = [(r["d"], r["iterations"]) for r in rows if not r["censored"]]
    slope = slopes[name]["slope"]
    label = (plotting.OPTIMIZER_LABELS[base] + (" (theory step)" if rule else " (tuned step)")
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
