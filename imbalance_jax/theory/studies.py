"""The theory figures' data: closed forms evaluated next to the simulations they predict.

Each ``*_study`` function runs the simulations of one figure of
``experiments/theory_figures.py`` and returns a `Study`: ``data`` holds the
keyword arguments of the figure function of the same name in
`imbalance_jax.plotting.theory` (``quadratic_study`` -> ``quadratic_figure``),
and ``summary`` the numbers the binary records, including the largest error
between each closed form and the simulation drawn on it::

  study = quadratic_study(num_classes=10, num_steps=20)
  fig = plotting.theory.quadratic_figure(**study.data)

Nothing here draws.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import metrics, optim
from imbalance_jax.data.theory_problems import (simplex_encoded_labels, step_imbalanced_labels,
                                                zipf_distribution)
from imbalance_jax.theory import (quadratic, simple_setting, simulate, ufm_dynamics, ufm_spectrum,
                                  unigram)


class Study(NamedTuple):
  """What one theory figure draws and the numbers behind it.

  Attributes:
    data: keyword arguments of the figure function (arrays, dicts, scalars).
    summary: JSON-ready numbers (numpy arrays allowed, see `imbalance_jax.results`).
  """

  data: dict
  summary: dict


def _rel_err(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a) / np.asarray(b) - 1.0)))


def quadratic_study(num_classes: int = 100, num_steps: int = 200, gd_lr: float = 1.0,
                    sign_lr: float = 0.012, adam_lr: float = 0.01) -> Study:
  """Paper H Fig. 6: GD, sign descent and Adam (no momentum) on ``sum_k pi_k w_k^2 / 2``.

  Returns:
    data: ``steps [T]``, ``paths`` (optimizer -> ``[T, C]`` iterates from optax,
    float64) and ``closed_form`` (``gd``, ``sign_descent`` -> ``[T, C]``);
    summary: the largest GD relative and sign descent absolute error of the
    closed forms.

  Example:
    >>> study = quadratic_study(num_classes=5, num_steps=10)
    >>> study.data["paths"]["adam"].shape
    (11, 5)
    >>> study.summary["gd_max_rel_err_closed_form_vs_optax"] < 1e-10
    True
  """
  pi = zipf_distribution(num_classes)
  steps = np.arange(num_steps + 1)
  with jax.enable_x64(True):
    paths = {"gd": quadratic.simulate_quadratic(optim.gd, pi, gd_lr, num_steps),
             "sign_descent": quadratic.simulate_quadratic(optim.sign_descent, pi, sign_lr,
                                                          num_steps),
             "adam": quadratic.simulate_quadratic(lambda lr: optim.adam(lr, momentum=0.0), pi,
                                                  adam_lr, num_steps)}
  paths = {name: np.asarray(path) for name, path in paths.items()}
  closed = {"gd": quadratic.gd_quadratic_path(steps, pi, gd_lr),
            "sign_descent": quadratic.sign_descent_quadratic_path(steps, sign_lr,
                                                                  num_classes=num_classes)}
  # Sign descent lands on 0 +- alpha, so compare it in absolute terms.
  summary = {"gd_max_rel_err_closed_form_vs_optax": _rel_err(paths["gd"], closed["gd"]),
             "sign_max_abs_err_closed_form_vs_optax": float(np.max(np.abs(
                 paths["sign_descent"] - closed["sign_descent"])))}
  return Study({"steps": steps, "paths": paths, "closed_form": closed}, summary)


def simple_setting_study(num_classes: int = 8, gd_lr: float = 0.05, gd_steps: int = 20_000,
                         sign_lr: float = 0.05, sign_steps: int = 100) -> Study:
  """Paper H Thm. 3: per-class loss of GD and sign descent on the one-hot softmax model.

  Classes have ``n_k = lcm(1..c) / k`` examples (exactly Zipf). The
  simulations run in float64; GD's time is ``t = lr * step``.

  Returns:
    data: ``pi [C]``, the simulations ``t_gd [T]``, ``gd_loss [T, C]``,
    ``t_sign [S]``, ``sign_loss [S, C]``; on a log grid ``t [P]`` the gradient
    flow closed form ``gd_closed_form [C, P]`` and per class its asymptote
    ``(c-1)/(c pi_k t)`` (``gd_asymptote_t``, ``gd_asymptote``: lists of arrays,
    ``t > 10 / pi_k``); on a linear grid ``t_short`` the sign descent closed
    form (the same for every class) and paper H's Lemma 7 as printed;
    summary: ``pi``, the largest relative errors of the simulations against
    the closed forms and the times to reach loss 0.1.
  """
  counts = np.lcm.reduce(np.arange(1, num_classes + 1)) // np.arange(1, num_classes + 1)
  pi = counts / counts.sum()
  with jax.enable_x64(True):
    gd_loss = np.asarray(simple_setting.simulate_simple_setting(
        counts, optim.gd, gd_lr, gd_steps, log_every=1, dtype=jnp.float64))
    sign_loss = np.asarray(simple_setting.simulate_simple_setting(
        counts, optim.sign_descent, sign_lr, sign_steps, log_every=sign_steps // 20,
        dtype=jnp.float64))
  t_gd = gd_lr * np.arange(gd_steps + 1)
  t_sign = sign_lr * np.arange(0, sign_steps + 1, sign_steps // 20)
  t = np.geomspace(1e-2, 1e5, 300)
  late = [t[t > 10 / pi[k]] for k in range(num_classes)]
  t_short = np.linspace(0, 1.2 * sign_lr * sign_steps, 200)
  data = {
      "pi": pi, "gd_lr": gd_lr, "sign_lr": sign_lr, "t_gd": t_gd, "gd_loss": gd_loss,
      "t_sign": t_sign, "sign_loss": sign_loss, "t": t,
      "gd_closed_form": np.stack([simple_setting.simple_setting_class_loss(t, pi[k], num_classes)
                                  for k in range(num_classes)]),
      "gd_asymptote_t": late,
      "gd_asymptote": [simple_setting.simple_setting_gd_asymptote(late[k], pi[k], num_classes)
                       for k in range(num_classes)],
      "t_short": t_short,
      "sign_closed_form": simple_setting.simple_setting_class_loss(t_short, 0.5, num_classes,
                                                                   "sign"),
      "sign_lemma7_printed": np.log1p((num_classes - 1) * np.exp(-num_classes * t_short)),
  }
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
  return Study(data, summary)


def unigram_smoothness_study(sizes=(10, 100, 1000, 10**4, 10**5, 10**6),
                             eps: float = 0.01) -> Study:
  """Paper S: smoothness constants at the minimiser, distances and theory step counts vs d.

  Returns:
    data and summary: ``rows`` (one dict per vocabulary size ``d`` of a Zipf
    unigram model) and ``eps``.

  Example:
    >>> study = unigram_smoothness_study(sizes=(10, 100))
    >>> [row["d"] for row in study.data["rows"]]
    [10, 100]
  """
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
  return Study({"rows": rows, "eps": eps}, {"rows": rows, "eps": eps})


def ufm_spectrum_study(num_classes: int = 4, R: int = 10) -> Study:
  """Paper R Fig. 2 / 5 (top): the SVD of STEP simplex-encoded labels, closed form vs numpy.

  Returns:
    data: ``one_hot [K, N]``, ``z [K, N]`` (simplex-encoded labels), the
    closed-form ``u [K, M]``, ``singular_values [M]``, ``v [N, M]`` and
    ``groups [M]`` of the modes, numpy's ``numpy_singular_values`` of ``z``
    and ``R``; summary: the singular values, groups and their largest
    absolute error against numpy.

  Example:
    >>> study = ufm_spectrum_study(4, R=3)
    >>> study.summary["max_abs_err_vs_numpy"] < 1e-12
    True
  """
  y = step_imbalanced_labels(num_classes, R)
  one_hot = np.eye(num_classes)[:, y]
  z = simplex_encoded_labels(y, num_classes)
  u, s, v, groups = ufm_spectrum.step_label_svd(num_classes, R)
  numeric = np.linalg.svd(z, compute_uv=False)
  data = {"one_hot": one_hot, "z": z, "u": u, "singular_values": s, "v": v, "groups": groups,
          "numpy_singular_values": numeric, "R": R}
  return Study(data, {"singular_values": s, "groups": groups.tolist(),
                      "max_abs_err_vs_numpy": float(np.max(np.abs(np.sort(s) -
                                                                  np.sort(numeric[:len(s)]))))})


def ufm_dynamics_steps(R: int, delta: float, lr: float) -> dict[str, int]:
  """GD steps of `ufm_dynamics_study`'s panels: 1.6x the slowest mode's learning time, in
  hundreds of steps; a ValueError naming ``lr`` when a panel would get fewer than 100.

  Example:
    >>> ufm_dynamics_steps(10, 8.0, 5e-3)["erm"] > 100
    True
  """
  steps = {}
  for reweight in (False, True):
    horizon = delta * max(ufm_dynamics.ufm_learning_times(R, reweight).values()) * 1.6 + 4.0
    steps["reweighted" if reweight else "erm"] = int(horizon / lr) // 100 * 100
    if steps["reweighted" if reweight else "erm"] < 100:
      raise ValueError(f"lr={lr} is too large for the UFM dynamics: the horizon t = {horizon:.3g} "
                       f"takes fewer than 100 GD steps; use lr <= {horizon / 100:.3g}")
  return steps


def ufm_dynamics_study(R: int = 10, delta: float = 8.0, hidden_dim: int = 8, lr: float = 5e-3,
                       seed: int = 0) -> Study:
  """Paper R Fig. 5 (middle/bottom): mode strengths under GD, ERM vs reweighting.

  GD on the UFM (4 classes, square loss, float64) from an SVD-aligned and a
  random init of scale ``e^{-delta}``, against the exact mode paths.

  Returns:
    data: ``R``, ``delta`` and ``panels``: ``"erm"`` and ``"reweighted"`` ->
    ``groups`` (group of each mode ``[M]``), ``limits`` (group -> learning
    time / delta as delta -> inf), simulated times ``t [T]``, ``svd_init`` and
    ``random_init`` mode strengths ``[T, M]``, the exact paths ``exact``
    (group -> ``[P]``) on ``dense [P]``, and ``printed_maj_min`` (paper R's
    reweighted maj-min time, None for ERM); summary: per panel the half times
    / delta and the limits.
  """
  panels, summary = {}, {}
  num_steps = ufm_dynamics_steps(R, delta, lr)
  for reweight in (False, True):
    limits = ufm_dynamics.ufm_learning_times(R, reweight)
    steps = num_steps["reweighted" if reweight else "erm"]
    with jax.enable_x64(True):
      problem = ufm_dynamics.ufm_problem(4, R, reweight=reweight, dtype=jnp.float64)
      inits = {"svd_init": ufm_dynamics.svd_aligned_init(problem, hidden_dim, delta),
               "random_init": ufm_dynamics.random_init(jax.random.key(seed), problem, hidden_dim,
                                                       delta)}
      runs = {name: np.asarray(ufm_dynamics.simulate_ufm(problem, params, optim.gd, lr, steps,
                                                         log_every=100))
              for name, params in inits.items()}
    t = lr * np.arange(0, steps + 1, 100)
    dense = np.linspace(0, t[-1], 400)
    key = "reweighted" if reweight else "erm"
    panels[key] = {
        "groups": problem.groups_M, "limits": limits, "t": t, **runs, "dense": dense,
        "exact": ufm_dynamics.ufm_mode_paths(dense, R, delta, reweight),
        "printed_maj_min": (ufm_dynamics.corollary_c3_times(R, True)["maj_min"] if reweight
                            else None)}
    summary[key] = {"half_times_over_delta": {g: h / delta for g, h in ufm_dynamics.ufm_half_times(
        R, delta, reweight).items()}, "limits": limits}
  return Study({"panels": panels, "R": R, "delta": delta}, summary)


def ufm_confusion_study(R: int = 10, delta: float = 8.0, hidden_dim: int = 8, lr: float = 5e-3,
                        snapshots=(0.2, 0.35, 0.5, 0.8, 1.2), seed: int = 0) -> Study:
  """Paper R Figs 1 and 4 in the small-scale model: class-averaged logits during GD.

  4 classes (2 majority with R examples, 2 minority with 1), UFM with square
  loss from small random init (scale e^{-delta}). Entry (k, j) is the mean
  logit of output j over the examples of class k; it converges to the target
  (I - 11^T/4)_{kj} (0.75 on the diagonal, -0.25 off it). This is the
  square-loss analogue of a confusion matrix: an argmax confusion matrix is
  uninformative here, because argmax ignores the scale of the (tiny) logits.

  Returns:
    data: ``t_over_delta [T]``, ``paths`` (``"erm"``, ``"reweighted"``
    (gamma = 1/2) -> ``[T, 4, 4]`` class-mean logits), ``snapshots`` (times
    / delta to draw) and ``R``; summary: per run the first time (units of
    delta) at which every majority (minority) class reaches half its target
    logit on its own output.
  """
  log_every = 20
  horizon = delta * max(snapshots) * 1.05
  steps = int(np.ceil(horizon / lr / log_every)) * log_every
  t_over_delta = lr * np.arange(0, steps + 1, log_every) / delta
  paths, summary = {}, {}
  for reweight in (False, True):
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
    first = lambda ok: float(t_over_delta[np.argmax(ok)]) if ok.any() else None  # noqa: E731
    key = "reweighted" if reweight else "erm"
    paths[key] = path
    summary[key] = {"majority_learned_at": first(np.all(own[:, :2] >= 0.5, axis=1)),
                    "minority_learned_at": first(np.all(own[:, 2:] >= 0.5, axis=1))}
  data = {"t_over_delta": t_over_delta, "paths": paths, "snapshots": tuple(snapshots), "R": R}
  return Study(data, summary)


def ufm_times_study(ratios=(2, 5, 10, 20, 50, 100, 300, 1000),
                    deltas=(4.0, 8.0, 16.0, 32.0, 64.0, 128.0), R_convergence: float = 10.0,
                    delta_finite: float = 8.0,
                    delta_factors=(1, 4, 16)) -> Study:
  """Paper R Sec. 4 / Cor. C.3: learning times and their spread vs R; maj-min convergence in delta.

  Returns:
    data: ``R [N]``; learning times (units of delta, group -> ``[N]``) of
    ``erm``, ``reweighted`` and paper R's printed ones (``paper_reweighted``);
    spreads ``(T_max - T_min) / T_min``: the limits ``spread_limit_erm``,
    ``spread_finite`` (``"erm"``, ``"rw"`` at ``delta_finite``) and
    ``spread_reweighted_by_factor`` (factor -> reweighted spread at
    ``factor * delta_finite``), paper R's ``paper_spread_reweighted``; for
    ``deltas [P]`` the exact reweighted maj-min half-time ``half [P]`` at
    ``R_convergence`` and paper R's limit ``paper_maj_min_limit``; summary:
    the same numbers as JSON.
  """
  R = np.asarray(ratios, float)
  erm, rw = ufm_dynamics.ufm_learning_times(R), ufm_dynamics.ufm_learning_times(R, True)
  printed = ufm_dynamics.corollary_c3_times(R, True)
  spread_finite = {key: np.array([ufm_dynamics.time_spread(r, key == "rw", delta=delta_finite)
                                  for r in R]) for key in ("erm", "rw")}
  by_factor = {factor: [ufm_dynamics.time_spread(r, True, delta=factor * delta_finite) for r in R]
               for factor in delta_factors}
  delta = np.asarray(deltas, float)
  half = np.array([ufm_dynamics.maj_min_half_time(R_convergence, d) for d in delta])
  data = {"R": R, "erm": erm, "reweighted": rw, "paper_reweighted": printed,
          "spread_limit_erm": ufm_dynamics.time_spread(R), "spread_finite": spread_finite,
          "spread_reweighted_by_factor": by_factor, "delta_finite": delta_finite,
          "paper_spread_reweighted": printed["maj_min"] * np.sqrt(R + 1) - 1,
          "deltas": delta, "half": half, "R_convergence": R_convergence,
          "paper_maj_min_limit": float(ufm_dynamics.corollary_c3_times(R_convergence,
                                                                       True)["maj_min"])}
  summary = {"R": R, "erm": erm, "reweighted": rw, "paper_reweighted": printed,
             "spread_limit_erm": ufm_dynamics.time_spread(R),
             "spread_limit_reweighted": ufm_dynamics.time_spread(R, True),
             "spread_finite_delta": spread_finite, "delta_finite": delta_finite,
             "maj_min_half_time_over_delta": dict(zip(delta.tolist(), (half / delta).tolist()))}
  return Study(data, summary)
