"""Paper H, Sec. 3.1: the weighted quadratic f(w) = sum_k pi_k w_k^2 / 2.

Each coordinate is one "class". GD multiplies coordinate k by
``(1 - alpha pi_k)`` per step, so rare coordinates (small pi_k) crawl; sign
descent moves every coordinate by ``alpha`` per step whatever its weight, and
Adam (scale-invariant up to its epsilon) does the same (paper H, Fig. 6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.theory import simulate


def weighted_quadratic(w_C: jax.Array, pi_C: jax.Array) -> jax.Array:
  """``f(w) = sum_k pi_k w_k^2 / 2``; gradient ``pi * w``, Hessian ``diag(pi)``."""
  return 0.5 * jnp.sum(pi_C * w_C**2)


def _steps_and_start(steps, w0):
  steps = np.asarray(steps)
  if not np.issubdtype(steps.dtype, np.integer) or np.any(steps < 0):
    raise ValueError(f"steps must be non-negative integers, got {steps!r}")
  return steps[..., None].astype(np.float64), np.asarray(w0, dtype=np.float64)


def gd_quadratic_path(steps, pi_C, learning_rate: float, w0=1.0) -> np.ndarray:
  """GD iterates in closed form: ``w_k(t) = (1 - alpha pi_k)^t w_k(0)``.

  Args:
    steps: integer steps ``[T]``.
    pi_C: weights ``[C]`` (positive).
    learning_rate: alpha > 0.
    w0: initial point, scalar or ``[C]``.

  Returns:
    ``[T, C]`` float64.

  Example:
    >>> gd_quadratic_path([0, 1, 2], [1.0, 0.5], 1.0).tolist()
    [[1.0, 1.0], [0.0, 0.5], [0.0, 0.25]]
  """
  _checks.check_positive("pi_C", pi_C)
  _checks.check_positive("learning_rate", learning_rate)
  t, w0 = _steps_and_start(steps, w0)
  return (1.0 - learning_rate * np.asarray(pi_C, np.float64)) ** t * w0


def sign_descent_quadratic_path(steps, learning_rate: float, w0=1.0, num_classes: int = 1
                                ) -> np.ndarray:
  """Sign-descent iterates in closed form (independent of the weights pi).

  ``w_{t+1} = w_t - alpha sign(w_t)`` with ``sign(0) = 0``: |w| falls by alpha per
  step until step ``m = ceil(|w0| / alpha)``; then the iterate stays at 0 if
  it hit it exactly, else it alternates between ``w_m`` and ``w_m + alpha sign(w0)``.

  Args:
    steps: integer steps ``[T]``.
    learning_rate: alpha > 0.
    w0: initial point, scalar or ``[C]``.
    num_classes: broadcast a scalar ``w0`` to ``[C]``.

  Returns:
    ``[T, C]`` float64.

  Example:
    >>> sign_descent_quadratic_path([0, 1, 2, 3], 0.4).ravel().round(2).tolist()
    [1.0, 0.6, 0.2, -0.2]
  """
  _checks.check_positive("learning_rate", learning_rate)
  t, w0 = _steps_and_start(steps, w0)
  w0 = np.broadcast_to(w0, (num_classes,) if w0.ndim == 0 else w0.shape)
  sign, size = np.sign(w0), np.abs(w0)
  crossing = np.ceil(size / learning_rate)  # first step with |w0| - alpha m <= 0
  landing = size - learning_rate * crossing  # in (-alpha, 0]
  after = np.where(landing == 0.0, 0.0, landing + learning_rate * ((t - crossing) % 2))
  return sign * np.where(t <= crossing, size - learning_rate * t, after)


def simulate_quadratic(make_optimizer, pi_C, learning_rate: float, num_steps: int, w0=1.0):
  """Runs an optax optimizer on `weighted_quadratic`; returns iterates ``[num_steps + 1, C]``.

  Example:
    >>> from imbalance_jax import optim
    >>> from imbalance_jax.data import zipf_distribution
    >>> path = simulate_quadratic(optim.gd, zipf_distribution(5), 1.0, 100)
    >>> path.shape
    (101, 5)
  """
  pi_C = jnp.asarray(pi_C)
  w0_C = jnp.broadcast_to(jnp.asarray(w0, pi_C.dtype), pi_C.shape)
  return simulate.optimizer_path(weighted_quadratic, w0_C, pi_C, make_optimizer,
                                 learning_rate, num_steps)
