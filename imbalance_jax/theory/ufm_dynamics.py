"""Paper R, App. C: gradient flow of the square-loss UFM, ERM vs reweighting.

Loss (paper R's eq. (9), the appendix normalisation; time t is its gradient-flow
time, so GD with step alpha is at ``t = alpha * steps``):

    L(W, H) = 1/2 sum_i omega_i ||z_i - W h_i||^2,   W: k x d,  H: d x n.

From ``W(0) = e^{-delta} U Q^T``, ``H(0) = e^{-delta} Q V^T`` (Q: d x (k-1)
orthonormal columns) mode m of ``Z = U diag(sigma) V^T`` evolves on its own
whenever ``v_m`` is an eigenvector of ``Omega = diag(omega)`` (eigenvalue
``lambda_m``); its strength ``beta_m = u_m^T W H v_m / sigma_m`` is then Saxe's
logistic curve

    beta_m(t) = 1 / (1 + (sigma_m e^{2 delta} - 1) e^{-2 s_m t}),   s_m = sigma_m lambda_m.

ERM (omega = 1) is exact for every mode. Under reweighting the maj-maj and
min-min vectors are eigenvectors of Omega but the maj-min vector is not
(paper R's Thm. C.2 only uses ``V^T Omega V`` diagonal, which is not enough):
that mode couples with the null direction of Z spanned by the weighted class
indicators, and its exact dynamics is the 3-d ODE of `maj_min_path`, in
``(w, g_maj, g_min)`` with

    dw/dt = sum_j omega_j (alpha_j - w g_j) g_j,   dg_j/dt = omega_j (alpha_j - w g_j) w,

``alpha = sigma_2 (-sqrt(R/(R+1)), sqrt(1/(R+1)))`` the maj-min target in
the orthonormal (majority, minority) indicator basis.

Vanishing initialisation (delta -> inf): near 0 the flow is linear,
``dW/dt = (Z Omega) H^T``, ``dH^T/dt = (Z Omega)^T W``, so mode m grows like
``e^{s_m t - delta}`` with ``s_m`` the singular values of ``Z Omega``, and is
learned at ``t ~ delta / s_m``. For STEP labels ``Z Omega^2 Z^T = P diag(n_c
omega_c^2) P``, giving ``s = sqrt(R n_min) omega_maj`` (maj-maj),
``sqrt(n_min (R omega_maj^2 + omega_min^2) / 2)`` (maj-min) and
``sqrt(n_min) omega_min`` (min-min). With gamma = 1/2 weights
``n_c omega_c^2`` is the same for every class, so all three rates equal
``sqrt((R + 1) n_min)``: every group is learned at the same time and the
spread ``Delta T_RW`` tends to 0, not to paper R's
``sqrt(2 (R + 1)) / (sqrt(R) + 1) - 1``.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate

from imbalance_jax import _checks
from imbalance_jax.data.theory_problems import simplex_encoded_labels, step_imbalanced_labels
from imbalance_jax.theory import simulate
from imbalance_jax.theory.ufm_spectrum import GROUPS, step_label_svd, step_sample_weights


def _check_ratio(imbalance_ratio):
  ratio = np.asarray(_checks.check_positive("R", imbalance_ratio), dtype=np.float64)
  if np.any(ratio < 1):
    raise ValueError(f"R must be >= 1 (majorities are the larger classes), got {imbalance_ratio!r}")
  return ratio


def _group_weights(ratio, reweight: bool, gamma: float):
  """``(omega_maj, omega_min)`` of `step_sample_weights`: ``(k pi_c / 2)^(-gamma)``."""
  if not reweight:
    return np.ones_like(ratio), np.ones_like(ratio)
  _checks.check_positive("gamma", gamma, allow_zero=True)
  return ((ratio + 1.0) / ratio) ** gamma, (ratio + 1.0) ** gamma


def ufm_growth_rates(R, reweight: bool = False, *, n_min: int = 1, gamma: float = 0.5) -> dict:
  """Rates ``s_m`` (singular values of ``Z Omega``) of the three groups; broadcast over R.

  Example:
    >>> ufm_growth_rates(3.0, reweight=True)["maj_min"]   # = sqrt(R + 1)
    2.0
  """
  ratio = _check_ratio(R)
  n_min = _checks.check_int("n_min", n_min, minimum=1)
  w_maj, w_min = _group_weights(ratio, reweight, gamma)
  rates = {"maj_maj": np.sqrt(ratio * n_min) * w_maj,
           "maj_min": np.sqrt(n_min * (ratio * w_maj**2 + w_min**2) / 2.0),
           "min_min": np.sqrt(float(n_min)) * w_min}
  return {g: (float(r) if np.ndim(r) == 0 else r) for g, r in rates.items()}


def ufm_learning_times(R, reweight: bool = False, *, n_min: int = 1, gamma: float = 0.5) -> dict:
  """Learning times of the maj-maj, maj-min and min-min groups, vanishing-init limit.

  ``T_m = lim_{delta -> inf} t_m(delta) / delta = 1 / s_m`` (time in units of
  delta, as in paper R's Prop. C.1 / Thm. C.2; t_m(delta) is the time the
  mode's strength reaches 1/2). ERM: ``1/sqrt(R)``, ``sqrt(2/(R+1))``, 1 (for
  n_min = 1). Reweighting with gamma = 1/2: ``1/sqrt(R+1)`` for all three
  (paper R's Cor. C.3 prints ``sqrt(2)/(sqrt(R)+1)`` for maj-min; that is
  wrong, see the module docstring). Broadcast over R.

  Args:
    R: imbalance ratio(s) >= 1.
    reweight: weights ``omega ∝ pi^(-gamma)`` (paper R's eq. (12) for gamma = 1/2).
    n_min: examples per minority class.
    gamma: reweighting exponent.

  Raises:
    ValueError: naming ``R``, ``n_min`` or ``gamma``.

  Example:
    >>> ufm_learning_times(4.0)
    {'maj_maj': 0.5, 'maj_min': 0.632..., 'min_min': 1.0}
  """
  rates = ufm_growth_rates(R, reweight, n_min=n_min, gamma=gamma)
  return {g: 1.0 / r for g, r in rates.items()}


def time_spread(R, reweight: bool = False, *, n_min: int = 1, gamma: float = 0.5,
                delta: float | None = None):
  """``Delta T = (T_max - T_min) / T_min`` over the three groups.

  With ``delta=None`` the vanishing-init limit (ERM: ``sqrt(R) - 1``;
  reweighting with gamma = 1/2: 0); with a finite ``delta`` the exact
  half-times of `ufm_half_times` (scalar R only).

  Example:
    >>> round(time_spread(9.0), 12)   # sqrt(R) - 1
    2.0
  """
  if delta is None:
    times = np.stack(np.broadcast_arrays(*ufm_learning_times(R, reweight, n_min=n_min,
                                                             gamma=gamma).values()))
  else:
    times = np.array(list(ufm_half_times(R, delta, reweight, n_min=n_min, gamma=gamma).values()))
  spread = (times.max(0) - times.min(0)) / times.min(0)
  return float(spread) if np.ndim(spread) == 0 else spread


def corollary_c3_times(R, reweight: bool = False) -> dict:
  """Paper R's printed Cor. C.3 times (n_min = 1, gamma = 1/2), for comparison only.

  The reweighted maj-min time ``sqrt(2)/(sqrt(R)+1)`` uses ``1/(sigma v^T Omega v)``
  and is NOT the true limit (see `ufm_learning_times`).
  """
  ratio = _check_ratio(R)
  if not reweight:
    return ufm_learning_times(R)
  root = 1.0 / np.sqrt(ratio + 1.0)
  return {"maj_maj": root, "maj_min": np.sqrt(2.0) / (np.sqrt(ratio) + 1.0), "min_min": root}


def _log_gap(sigma: float, delta: float):
  """``(log|sigma e^{2 delta} - 1|, sign)`` without forming e^{2 delta} (overflows past ~354)."""
  x = np.log(sigma) + 2.0 * delta  # log(sigma e^{2 delta})
  if x > 0:
    return x + np.log1p(-np.exp(-x)), 1.0
  return (np.log1p(-np.exp(x)) if x < 0 else -np.inf), -1.0


def saxe_strength(t, sigma: float, delta: float, rate: float) -> np.ndarray:
  """Saxe's logistic ``beta(t) = 1 / (1 + (sigma e^{2 delta} - 1) e^{-2 rate t})``.

  Exact for a mode whose right singular vector is an eigenvector of Omega
  (``rate = sigma * lambda``; ``rate = sigma`` for ERM).
  """
  t = np.asarray(t, dtype=np.float64)
  log_gap, sign = _log_gap(sigma, delta)
  with np.errstate(over="ignore"):  # e^{+inf} -> beta = 0, the right limit
    return 1.0 / (1.0 + sign * np.exp(log_gap - 2.0 * rate * t))


def saxe_half_time(sigma: float, delta: float, rate: float) -> float:
  """Time at which `saxe_strength` reaches 1/2: ``log(sigma e^{2 delta} - 1) / (2 rate)`` (>= 0)."""
  log_gap, sign = _log_gap(sigma, delta)
  return float(max(log_gap, 0.0) / (2.0 * rate)) if sign > 0 else 0.0


def _sigmas(R, n_min: int) -> dict:
  """Singular values of `step_label_spectrum`, for any real R >= 1."""
  ratio = float(_check_ratio(R))
  n_min = _checks.check_int("n_min", n_min, minimum=1)
  return {"maj_maj": float(np.sqrt(ratio * n_min)),
          "maj_min": float(np.sqrt((ratio + 1.0) * n_min / 2.0)),
          "min_min": float(np.sqrt(n_min))}


def _maj_min_system(R: float, n_min: int, reweight: bool, gamma: float):
  """``(sigma_2, v, omega, rhs)`` of the maj-min block; state ``x = (w, g_maj, g_min)``."""
  ratio = float(_check_ratio(R))
  sigma = _sigmas(ratio, n_min)["maj_min"]
  direction = np.array([-np.sqrt(ratio / (ratio + 1.0)), np.sqrt(1.0 / (ratio + 1.0))])
  omega = np.array(_group_weights(np.float64(ratio), reweight, gamma), dtype=np.float64)
  alpha = sigma * direction

  def rhs(t, x):
    del t
    w, g = x[0], x[1:]
    residual = omega * (alpha - w * g)
    return np.concatenate([[residual @ g], residual * w])

  return sigma, direction, omega, rhs


def maj_min_path(times, R: float, delta: float, reweight: bool = True, *, n_min: int = 1,
                 gamma: float = 0.5) -> np.ndarray:
  """Strength ``beta(t)`` of the maj-min mode from SVD-aligned init, by the exact 3-d ODE.

  ``beta = w (g . v) / sigma_2``; solved by ``solve_ivp`` (DOP853, rtol 1e-10).
  For ERM (or R = 1) it equals `saxe_strength`.
  """
  times = np.asarray(_checks.check_positive("times", times, allow_zero=True), np.float64)
  _checks.check_positive("delta", delta, allow_zero=True)
  sigma, v, _, rhs = _maj_min_system(R, n_min, reweight, gamma)
  scale = np.exp(-delta)
  flat = np.atleast_1d(times)
  sol = integrate.solve_ivp(rhs, (0.0, float(flat.max())), np.concatenate([[scale], scale * v]),
                            t_eval=np.sort(flat), method="DOP853", rtol=1e-10,
                            atol=1e-13 * scale)
  if not sol.success:
    raise RuntimeError(f"solve_ivp failed: {sol.message}")
  w, g = sol.y[0], sol.y[1:]
  beta = w * (v @ g) / sigma
  return beta[np.argsort(np.argsort(flat))].reshape(times.shape)


def maj_min_half_time(R: float, delta: float, reweight: bool = True, *, n_min: int = 1,
                      gamma: float = 0.5) -> float:
  """First time the maj-min strength of `maj_min_path` reaches 1/2 (ODE event)."""
  _checks.check_positive("delta", delta, allow_zero=True)
  sigma, v, omega, rhs = _maj_min_system(R, n_min, reweight, gamma)
  scale = np.exp(-delta)

  def half(t, x):
    return x[0] * (v @ x[1:]) / sigma - 0.5
  half.terminal, half.direction = True, 1.0
  if half(0.0, np.concatenate([[scale], scale * v])) >= 0:
    return 0.0
  # The mode cannot take longer than delta / (slowest linear rate) + O(1).
  horizon = 10.0 * (delta + 10.0) / min(np.min(omega), 1.0) / min(sigma, 1.0)
  sol = integrate.solve_ivp(rhs, (0.0, horizon), np.concatenate([[scale], scale * v]),
                            events=half, method="DOP853", rtol=1e-11, atol=1e-14 * scale)
  if sol.t_events[0].size == 0:
    raise RuntimeError("maj-min mode did not reach strength 1/2")
  return float(sol.t_events[0][0])


def ufm_mode_paths(times, R: float, delta: float, reweight: bool = False, *, n_min: int = 1,
                   gamma: float = 0.5) -> dict:
  """Exact strengths ``beta_m(t)`` of the three groups from SVD-aligned init (scalar R).

  Saxe's closed form for maj-maj and min-min (and for maj-min under ERM); the
  3-d ODE for maj-min under reweighting.
  """
  rates = ufm_growth_rates(R, reweight, n_min=n_min, gamma=gamma)
  sigmas = _sigmas(R, n_min)
  paths = {g: saxe_strength(times, sigmas[g], delta, rates[g]) for g in GROUPS}
  if reweight and gamma > 0:
    paths["maj_min"] = maj_min_path(times, R, delta, True, n_min=n_min, gamma=gamma)
  return paths


def ufm_half_times(R: float, delta: float, reweight: bool = False, *, n_min: int = 1,
                   gamma: float = 0.5) -> dict:
  """Exact times at which each group's strength reaches 1/2, from SVD-aligned init.

  Time units of the loss ``1/2 sum_i omega_i ||z_i - W h_i||^2`` (not rescaled by
  delta); ``t / delta`` tends to `ufm_learning_times` as delta -> inf.
  """
  rates = ufm_growth_rates(R, reweight, n_min=n_min, gamma=gamma)
  sigmas = _sigmas(R, n_min)
  times = {g: saxe_half_time(sigmas[g], delta, rates[g]) for g in GROUPS}
  if reweight and gamma > 0:
    times["maj_min"] = maj_min_half_time(R, delta, True, n_min=n_min, gamma=gamma)
  return times


@flax.struct.dataclass
class UFMProblem:
  """Targets and spectral factors of a STEP-imbalanced UFM (a pytree).

  Attributes:
    z_KN: simplex-encoded labels.
    omega_N: per-example loss weights (ones for ERM).
    u_KM, sigma_M, v_NM: closed-form SVD of Z (`step_label_svd`).
    groups_M: group name of each mode (static).
  """

  z_KN: jax.Array
  omega_N: jax.Array
  u_KM: jax.Array
  sigma_M: jax.Array
  v_NM: jax.Array
  groups_M: tuple = flax.struct.field(pytree_node=False)


def ufm_problem(num_classes: int, R: int, *, n_min: int = 1, reweight: bool = False,
                gamma: float = 0.5, dtype=jnp.float32) -> UFMProblem:
  """Builds the `UFMProblem` of paper R's STEP setting.

  Example:
    >>> problem = ufm_problem(4, 10, reweight=True)
    >>> problem.z_KN.shape, problem.groups_M
    ((4, 22), ('maj_maj', 'maj_min', 'min_min'))
  """
  y = step_imbalanced_labels(num_classes, R, n_min)
  u, s, v, groups = step_label_svd(num_classes, R, n_min)
  omega = (step_sample_weights(num_classes, R, n_min, gamma) if reweight
           else np.ones(y.shape[0]))
  cast = lambda a: jnp.asarray(a, dtype)
  return UFMProblem(z_KN=cast(simplex_encoded_labels(y, num_classes)), omega_N=cast(omega),
                    u_KM=cast(u), sigma_M=cast(s), v_NM=cast(v), groups_M=tuple(groups.tolist()))


def ufm_loss(params, problem: UFMProblem) -> jax.Array:
  """``1/2 sum_i omega_i ||z_i - W h_i||^2`` for ``params = (W [k, d], H [d, n])``."""
  w_KD, h_DN = params
  residual_KN = problem.z_KN - w_KD @ h_DN
  return 0.5 * jnp.sum(problem.omega_N * residual_KN**2)


def mode_strengths(params, problem: UFMProblem) -> jax.Array:
  """``beta_m = u_m^T W H v_m / sigma_m`` for every mode, ``[M]`` (1 once learned)."""
  w_KD, h_DN = params
  logits_KN = w_KD @ h_DN
  return jnp.einsum("km,kn,nm->m", problem.u_KM, logits_KN, problem.v_NM) / problem.sigma_M


def svd_aligned_init(problem: UFMProblem, hidden_dim: int, delta: float):
  """``W = e^{-delta} U Q^T``, ``H = e^{-delta} Q V^T`` with Q the first k-1 axes of R^d."""
  num_modes = problem.sigma_M.shape[0]
  hidden_dim = _checks.check_int("hidden_dim", hidden_dim, minimum=num_modes)
  _checks.check_positive("delta", delta, allow_zero=True)
  q_DM = jnp.eye(hidden_dim, num_modes, dtype=problem.u_KM.dtype)
  scale = jnp.exp(-jnp.asarray(delta, problem.u_KM.dtype))
  return scale * problem.u_KM @ q_DM.T, scale * q_DM @ problem.v_NM.T


def random_init(key: jax.Array, problem: UFMProblem, hidden_dim: int, delta: float):
  """Gaussian ``(W, H)`` rescaled to the Frobenius norms of `svd_aligned_init` (paper R, Fig. 5)."""
  num_classes, num_examples = problem.z_KN.shape
  hidden_dim = _checks.check_int("hidden_dim", hidden_dim, minimum=problem.sigma_M.shape[0])
  _checks.check_positive("delta", delta, allow_zero=True)
  target = jnp.exp(-jnp.asarray(delta, problem.u_KM.dtype)) * jnp.sqrt(problem.sigma_M.shape[0])
  key_w, key_h = jax.random.split(key)
  w = jax.random.normal(key_w, (num_classes, hidden_dim), problem.u_KM.dtype)
  h = jax.random.normal(key_h, (hidden_dim, num_examples), problem.u_KM.dtype)
  return target * w / jnp.linalg.norm(w), target * h / jnp.linalg.norm(h)


def simulate_ufm(problem: UFMProblem, params, make_optimizer, learning_rate: float,
                 num_steps: int, *, log_every: int = 1) -> jax.Array:
  """Runs an optimizer on `ufm_loss`; returns mode strengths ``[num_steps // log_every + 1, M]``.

  Example:
    >>> problem = ufm_problem(4, 10)
    >>> from imbalance_jax import optim
    >>> beta_TM = simulate_ufm(problem, svd_aligned_init(problem, 4, 4.0), optim.gd, 1e-3, 3000,
    ...                        log_every=1000)
    >>> beta_TM.shape
    (4, 3)
  """
  return simulate.optimizer_path(ufm_loss, params, problem, make_optimizer, learning_rate,
                                 num_steps, log_every=log_every, record_fn=mode_strengths)
