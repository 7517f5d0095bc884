"""Paper H, Thm. 3 (App. I): per-class loss in the simple imbalanced setting.

Inputs are one-hot, ``x_i = e_{y_i}`` in R^c, the model is ``W`` (c x c, no
bias) with ``W(0) = 0`` and the loss is the mean cross-entropy
``L(W) = sum_k pi_k l_k(W)``, ``l_k = -log softmax(W e_k)_k``. Column k of W
only sees class k, and by symmetry its diagonal entry ``a`` and its c - 1
off-diagonal entries ``b`` follow (Lemma 4)

    da/dt = pi (1 - e^a / (e^a + z e^b)),   db/dt = -pi e^b / (e^a + z e^b),

with ``z = c - 1``. Then ``a + z b`` is constant (= 0) and the margin ``u = a - b``
obeys ``(e^u + z) du = c pi dt``, i.e. ``e^u + z u = 1 + c pi t`` (Lemma 5).
Writing ``v = f/z - u`` with ``f = 1 + c pi t`` gives ``v e^v = e^{f/z} / z``, so

    v = omega(f/z - log z),   l = log(1 + z e^{-u}) = log(1 + 1/v),

where omega is the Wright omega function, ``omega(x) = W(e^x)``
(``scipy.special.wrightomega``); it never forms ``e^{f/z}``, which overflows
for large t. For t -> inf, ``l ~ (c - 1) / (c pi t)`` (the Theta(1/(pi t)) of Thm. 3).

Continuous-time sign descent moves every entry at unit speed against the sign
of its gradient: ``a = t``, ``b = -t`` and ``l = log(1 + (c - 1) e^{-2t})``,
independent of pi. (Paper H's Lemma 7 prints ``e^{-ct}``, reusing the
gradient-flow identity a = -(c-1) b, which does not hold here; see docs/theory.md.)
Time is the gradient-flow time of the mean loss: GD with step alpha after s
steps is at ``t = alpha s``, and so is sign descent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate, special

from imbalance_jax import _checks
from imbalance_jax.data.theory_problems import simple_imbalanced_setting
from imbalance_jax.losses import cross_entropy
from imbalance_jax.theory import simulate

METHODS = ("gd", "sign")


def _check_inputs(t, pi_k, num_classes, method):
  num_classes = _checks.check_int("num_classes", num_classes, minimum=2)
  _checks.check_choice("method", method, METHODS)
  t = np.asarray(_checks.check_positive("t", t, allow_zero=True), dtype=np.float64)
  pi = np.asarray(_checks.check_positive("pi_k", pi_k), dtype=np.float64)
  if np.any(pi > 1):
    raise ValueError(f"pi_k must lie in (0, 1], got {pi_k!r}")
  return t, pi, num_classes


def _lambert_v(t, pi, c):
  """``v = omega(f/z - log z)``, the root of ``v e^v = e^{f/z} / z``; ``v >= 1/z``."""
  z = c - 1.0
  return special.wrightomega((1.0 + c * pi * t) / z - np.log(z))


def simple_setting_margin(t, pi_k, num_classes: int, method: str = "gd") -> np.ndarray:
  """Margin ``u_k(t) = a_k(t) - b_k(t)`` of class k (broadcast over t and pi_k).

  Gradient flow: ``u = log(z v)`` with ``v = omega(f/z - log z)`` (since
  ``e^u = z v``; the equivalent ``f/z - v`` cancels catastrophically for large
  t); sign descent: ``u = 2t``.
  """
  t, pi, c = _check_inputs(t, pi_k, num_classes, method)
  if method == "sign":
    return np.broadcast_to(2.0 * t, np.broadcast_shapes(t.shape, pi.shape)).copy()
  return np.log(c - 1.0) + np.log(_lambert_v(t, pi, c))


def simple_setting_weights(t, pi_k, num_classes: int, method: str = "gd"):
  """``(a_k(t), b_k(t))``: diagonal and off-diagonal entries of column k of W(t).

  Gradient flow: ``a = z u / c``, ``b = -u / c`` (Lemma 5, since a + z b = 0);
  sign descent: ``a = t``, ``b = -t``.
  """
  u = simple_setting_margin(t, pi_k, num_classes, method)
  if method == "sign":
    return u / 2.0, -u / 2.0
  return (num_classes - 1.0) * u / num_classes, -u / num_classes


def simple_setting_class_loss(t, pi_k, num_classes: int, method: str = "gd") -> np.ndarray:
  """Loss ``l_k(t)`` of a class with frequency pi_k, from ``W(0) = 0``.

  Args:
    t: time(s) >= 0 (gradient-flow time: ``learning_rate * steps``).
    pi_k: class frequency (or frequencies) in (0, 1]; broadcast against t.
    num_classes: c >= 2.
    method: ``"gd"`` (gradient flow, Lemma 5) or ``"sign"`` (continuous-time
      sign descent, corrected Lemma 7).

  Returns:
    float64 array of the broadcast shape of ``t`` and ``pi_k``.

  Raises:
    ValueError: naming ``t``, ``pi_k``, ``num_classes`` or ``method``.

  Example:
    >>> float(simple_setting_class_loss(0.0, 0.5, 10))   # log(c) at W = 0
    2.302585092994046
    >>> simple_setting_class_loss([1e2, 1e4], 0.01, 10).round(4)
    array([1.5089, 0.0095])
  """
  t, pi, c = _check_inputs(t, pi_k, num_classes, method)
  if method == "sign":
    return np.log1p((c - 1.0) * np.exp(-2.0 * t)) + np.zeros_like(pi)
  # l = log(1 + z e^{-u}) and e^{-u} = 1 / (z v).
  return np.log1p(1.0 / _lambert_v(t, pi, c))


def simple_setting_time_to_loss(loss, pi_k, num_classes: int, method: str = "gd") -> np.ndarray:
  """Inverse of `simple_setting_class_loss`: the time at which ``l_k`` falls to ``loss``.

  Gradient flow: ``v = 1 / (e^loss - 1)`` and ``t = (z (v + log(z v)) - 1) / (c pi)``
  (from ``v e^v = e^{f/z} / z``); sign descent: ``t = log(z / (e^loss - 1)) / 2``.
  Losses at or above ``log(c)`` (the value at t = 0) give t = 0.

  Example:
    >>> simple_setting_time_to_loss(0.1, [0.5, 0.005], 10).round(1)
    array([  24.9, 2492.4])
  """
  _, pi, c = _check_inputs(0.0, pi_k, num_classes, method)
  loss = np.asarray(_checks.check_positive("loss", loss), np.float64)
  z = c - 1.0
  if method == "sign":
    return np.maximum(np.log(z / np.expm1(loss)) / 2.0, 0.0) + np.zeros_like(pi)
  v = 1.0 / np.expm1(loss)
  return np.maximum((z * (v + np.log(z * v)) - 1.0) / (c * pi), 0.0)


def simple_setting_gd_asymptote(t, pi_k, num_classes: int) -> np.ndarray:
  """Leading term of the gradient-flow loss, ``l_k(t) ~ (c - 1) / (c pi_k t)`` as t -> inf."""
  t, pi, c = _check_inputs(t, pi_k, num_classes, "gd")
  with np.errstate(divide="ignore"):
    return (c - 1.0) / (c * pi * t)


def simple_setting_ode(times, pi_k: float, num_classes: int, method: str = "gd",
                       rtol: float = 1e-11, atol: float = 1e-13):
  """Solves Lemma 4's 2-d ODE for one class with ``solve_ivp``; returns ``(a, b)`` at ``times``.

  For ``"sign"`` the right-hand side is ``(sign(da), sign(db)) = (1, -1)``.
  """
  times, pi, c = _check_inputs(times, pi_k, num_classes, method)
  z = c - 1.0

  def rhs(t, ab):
    a, b = ab
    # Subtract max(a, b) before exponentiating: the margin grows without bound.
    m = max(a, b)
    ea, eb = np.exp(a - m), np.exp(b - m)
    da, db = pi * (1.0 - ea / (ea + z * eb)), -pi * eb / (ea + z * eb)
    return (da, db) if method == "gd" else (np.sign(da), np.sign(db))

  times = np.atleast_1d(times)
  sol = integrate.solve_ivp(rhs, (0.0, float(times.max())), [0.0, 0.0], t_eval=np.sort(times),
                            method="DOP853", rtol=rtol, atol=atol)
  if not sol.success:
    raise RuntimeError(f"solve_ivp failed: {sol.message}")
  order = np.argsort(np.argsort(times))
  return sol.y[0][order], sol.y[1][order]


def softmax_model_loss(w_CC: jax.Array, data) -> jax.Array:
  """Mean cross-entropy of the bias-free linear model ``logits = x W^T`` on ``data``."""
  return jnp.mean(cross_entropy(data.x @ w_CC.T, data.y))


def per_class_loss(w_CC: jax.Array, data=None) -> jax.Array:
  """``l_k(W) = -log softmax(W e_k)_k`` for every class, ``[C]``."""
  del data
  return -jnp.diagonal(jax.nn.log_softmax(w_CC, axis=0))


def simulate_simple_setting(class_counts, make_optimizer, learning_rate: float, num_steps: int,
                            *, log_every: int = 1, dtype=jnp.float32) -> jax.Array:
  """Runs an optimizer on the actual softmax model of the simple setting from W = 0.

  The data set has ``n_k = class_counts[k]`` copies of ``(e_k, k)`` (so
  ``pi_k = n_k / n``) and the loss is their mean cross-entropy.

  Args:
    class_counts: positive integer counts ``[C]``.
    make_optimizer: ``learning_rate -> GradientTransformation``, e.g.
      ``imbalance_jax.optim.gd`` or ``imbalance_jax.optim.sign_descent``.
    learning_rate: step size; step s is at time ``learning_rate * s``.
    num_steps: steps (a multiple of ``log_every``).
    log_every: record every ``log_every`` steps.
    dtype: parameter dtype (float64 inside ``jax.enable_x64`` for tests).

  Returns:
    Per-class losses ``[num_steps // log_every + 1, C]``.

  Example:
    >>> from imbalance_jax import optim
    >>> loss_TC = simulate_simple_setting([90, 9, 1], optim.gd, 0.1, 1000, log_every=100)
    >>> loss_TC.shape
    (11, 3)
  """
  data = simple_imbalanced_setting(class_counts, dtype=np.dtype(dtype))
  w0 = jnp.zeros((data.num_classes, data.num_classes), dtype)
  return simulate.optimizer_path(softmax_model_loss, w0, data, make_optimizer, learning_rate,
                                 num_steps, log_every=log_every, record_fn=per_class_loss)
