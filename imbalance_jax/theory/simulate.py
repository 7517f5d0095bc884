"""Simulators the closed forms are checked against.

* `optimizer_path`: an optax optimizer (e.g. `imbalance_jax.optim.gd`) run on
  a loss in one ``lax.scan`` (via `imbalance_jax.train.make_train`), recording
  ``record_fn(params)`` every ``log_every`` steps.
* `gradient_flow_path`: the gradient flow (or any flow ``dx/dt = -direction(grad)``)
  of a loss integrated by ``scipy.integrate.solve_ivp`` with the gradient from
  ``jax.grad``: the slow, trusted reference.

Both work on any parameter pytree. Run them inside ``jax.enable_x64(True)``
with float64 parameters when comparing with a closed form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from scipy import integrate

from imbalance_jax import _checks
from imbalance_jax.train import make_train

LossFn = Callable[[Any, Any], jax.Array]


MakeOptimizer = Callable[[Any], optax.GradientTransformation]


def optimizer_path(loss_fn: LossFn, params, data, make_optimizer: MakeOptimizer, learning_rate,
                   num_steps: int, *, log_every: int = 1,
                   record_fn: Callable[[Any, Any], Any] | None = None):
  """Runs ``num_steps`` optimizer steps; returns the records at steps 0, k, 2k, ..., num_steps.

  Args:
    loss_fn: ``(params, data) -> scalar``.
    params: initial parameters (any pytree).
    data: passed through to ``loss_fn`` and ``record_fn``.
    make_optimizer: ``learning_rate -> GradientTransformation``, e.g.
      ``imbalance_jax.optim.injectable("sign_descent", 0.0)``.
    learning_rate: the step size; the continuous time reached is
      ``learning_rate * step`` for GD and sign descent.
    num_steps: steps to run (a multiple of ``log_every``).
    log_every: record every ``log_every`` steps.
    record_fn: ``(params, data) -> pytree`` recorded; defaults to the params.

  Returns:
    The records stacked on a leading axis of ``num_steps // log_every + 1``.

  Example:
    >>> from imbalance_jax import optim
    >>> path = optimizer_path(lambda w, _: 0.5 * jnp.sum(w**2), jnp.ones(3), None,
    ...                       optim.gd, 0.1, 10)
    >>> path.shape
    (11, 3)
  """
  _checks.check_positive("learning_rate", learning_rate)
  record_fn = record_fn or (lambda p, d: p)
  train = make_train(lambda p, d: (loss_fn(p, d), {}), make_optimizer, num_steps=num_steps,
                     log_every=log_every,
                     metrics_fn=lambda p, grads, aux, d: record_fn(p, d))
  return jax.jit(train)(params, data, learning_rate).history


def gradient_flow_path(loss_fn: LossFn, params, data, times, *,
                       direction: Callable[[jax.Array], jax.Array] | None = None,
                       rtol: float = 1e-10, atol: float = 1e-12,
                       record_fn: Callable[[Any, Any], Any] | None = None):
  """Integrates ``dparams/dt = -direction(grad loss)`` with ``solve_ivp`` (DOP853).

  Args:
    loss_fn: ``(params, data) -> scalar``.
    params: initial parameters (float64 inside ``jax.enable_x64``).
    data: passed to ``loss_fn``.
    times: increasing times ``[T]`` (>= 0) at which to record.
    direction: maps the flat gradient to the velocity; identity is gradient
      flow, ``jnp.sign`` is continuous-time sign descent.
    rtol, atol: solver tolerances.
    record_fn: ``(params, data) -> pytree``; defaults to the params.

  Returns:
    Records stacked on a leading axis ``[T]`` (numpy arrays).
  """
  times = np.asarray(times, dtype=np.float64)
  if times.ndim != 1 or times.size == 0 or np.any(times < 0) or np.any(np.diff(times) < 0):
    raise ValueError(f"times must be a non-empty, non-decreasing 1-d array >= 0, got {times!r}")
  flat0, unravel = ravel_pytree(params)
  direction = direction or (lambda g: g)
  velocity = jax.jit(lambda x: -direction(ravel_pytree(jax.grad(loss_fn)(unravel(x), data))[0]))
  solution = integrate.solve_ivp(lambda t, x: np.asarray(velocity(jnp.asarray(x, flat0.dtype))),
                                 (0.0, float(times[-1])), np.asarray(flat0), t_eval=times,
                                 method="DOP853", rtol=rtol, atol=atol)
  if not solution.success:
    raise RuntimeError(f"solve_ivp failed: {solution.message}")
  record_fn = record_fn or (lambda p, d: p)
  record = jax.jit(jax.vmap(lambda x: record_fn(unravel(x), data)))
  return jax.tree.map(np.asarray, record(jnp.asarray(solution.y.T, flat0.dtype)))
