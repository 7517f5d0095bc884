"""A training run as a pure function: ``lax.scan`` over full-batch steps.

`make_train` returns a `Train`: ``train(params, data, learning_rate)`` runs
``num_steps`` steps and returns a `TrainResult` whose metric history was
recorded inside the scan every ``log_every`` steps (stacked on device, one
transfer). The same run can be cut into segments (``init`` / ``run`` /
``finish``) so a driver can checkpoint between them; segments of equal length
share one compiled program.

Every step also tracks the loss for divergence: the initial loss, the largest
finite loss seen and whether any loss was NaN/inf. A sweep uses these to mask
runs that blow up (see `imbalance_jax.train.selection`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from imbalance_jax import _checks

ObjectiveFn = Callable[[Any, Any], tuple[jax.Array, dict]]
MetricsFn = Callable[[Any, Any, dict, Any], Any]


@flax.struct.dataclass
class TrainState:
  """Carry of the scan. Leading axes appear when vmapped over a sweep."""

  params: Any
  opt_state: optax.OptState
  learning_rate: jax.Array
  step: jax.Array
  initial_loss: jax.Array  # loss at step 0 (NaN before the first step)
  max_loss: jax.Array  # largest finite loss seen so far
  finite: jax.Array  # no NaN/inf loss seen so far


@flax.struct.dataclass
class TrainResult:
  """Outcome of a run: final parameters, metric history and loss tracking.

  ``history`` leaves have a leading axis over ``Train.history_steps`` (steps
  0, k, 2k, ..., num_steps). ``max_loss`` and ``finite`` cover every step,
  including the final iterate.
  """

  params: Any
  history: Any
  initial_loss: jax.Array
  final_loss: jax.Array
  max_loss: jax.Array
  finite: jax.Array


def _default_metrics(params, grads, aux, data):
  del params, grads, data
  return {"loss": aux["loss"]}


@dataclasses.dataclass(frozen=True)
class Train:
  """Pure training run; build with `make_train`.

  Attributes:
    objective_fn: ``(params, data) -> (objective, aux)``; ``aux["loss"]`` (if
      present) is the loss tracked for divergence, else the objective.
    make_optimizer: ``learning_rate -> optax.GradientTransformation``.
    num_steps: optimizer steps of a full run.
    log_every: metrics are recorded at steps 0, k, 2k, ... and at the end.
    metrics_fn: ``(params, grads, aux, data) -> pytree`` evaluated inside the
      step on the step's own forward pass and gradient.
  """

  objective_fn: ObjectiveFn
  make_optimizer: Callable[[Any], optax.GradientTransformation]
  num_steps: int
  log_every: int
  metrics_fn: MetricsFn

  @property
  def history_steps(self) -> np.ndarray:
    """Steps at which ``history`` was recorded, ``[num_steps // log_every + 1]``."""
    return np.arange(0, self.num_steps + 1, self.log_every)

  def init(self, params, data, learning_rate) -> TrainState:
    del data
    dtype = jnp.result_type(*jax.tree.leaves(params))
    learning_rate = jnp.asarray(learning_rate, dtype)
    opt_state = self.make_optimizer(learning_rate).init(params)
    return TrainState(params=params, opt_state=opt_state, learning_rate=learning_rate,
                      step=jnp.zeros((), jnp.int32), initial_loss=jnp.full((), jnp.nan, dtype),
                      max_loss=jnp.full((), -jnp.inf, dtype), finite=jnp.ones((), bool))

  def _evaluate(self, params, data):
    (objective, aux), grads = jax.value_and_grad(self.objective_fn, has_aux=True)(params, data)
    loss = aux.get("loss", objective) if isinstance(aux, dict) else objective
    return loss, grads, aux

  @staticmethod
  def _track(state: TrainState, loss) -> TrainState:
    loss = loss.astype(state.max_loss.dtype)
    is_finite = jnp.isfinite(loss)
    return state.replace(
        initial_loss=jnp.where(state.step == 0, loss, state.initial_loss),
        max_loss=jnp.where(is_finite, jnp.maximum(state.max_loss, loss), state.max_loss),
        finite=state.finite & is_finite)

  def _step(self, state: TrainState, data, record: bool):
    loss, grads, aux = self._evaluate(state.params, data)
    metrics = self.metrics_fn(state.params, grads, aux, data) if record else None
    optimizer = self.make_optimizer(state.learning_rate)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    state = self._track(state, loss).replace(params=params, opt_state=opt_state,
                                             step=state.step + 1)
    return state, metrics

  def run(self, state: TrainState, data, num_steps: int | None = None):
    """Runs ``num_steps`` (a multiple of ``log_every``) steps; returns ``(state, history)``."""
    num_steps = self.num_steps if num_steps is None else num_steps
    if num_steps % self.log_every:
      raise ValueError(f"num_steps={num_steps} must be a multiple of log_every={self.log_every}")

    def quiet_step(state, _):
      return self._step(state, data, record=False)[0], None

    def logged_chunk(state, _):
      state, metrics = self._step(state, data, record=True)
      state, _ = jax.lax.scan(quiet_step, state, length=self.log_every - 1)
      return state, metrics

    return jax.lax.scan(logged_chunk, state, length=num_steps // self.log_every)

  def finish(self, state: TrainState, data):
    """Evaluates the final iterate; returns ``(TrainResult without history, final metrics)``."""
    loss, grads, aux = self._evaluate(state.params, data)
    metrics = self.metrics_fn(state.params, grads, aux, data)
    tracked = self._track(state, loss)
    result = TrainResult(params=state.params, history=None, initial_loss=tracked.initial_loss,
                         final_loss=loss.astype(tracked.max_loss.dtype),
                         max_loss=tracked.max_loss, finite=tracked.finite)
    return result, metrics

  def __call__(self, params, data, learning_rate) -> TrainResult:
    state, history = self.run(self.init(params, data, learning_rate), data)
    result, final_metrics = self.finish(state, data)
    history = jax.tree.map(lambda h, f: jnp.concatenate([h, f[None]]), history, final_metrics)
    return result.replace(history=history)


def make_train(objective_fn: ObjectiveFn,
               make_optimizer: Callable[[Any], optax.GradientTransformation], *,
               num_steps: int, log_every: int = 1, metrics_fn: MetricsFn | None = None) -> Train:
  """Builds a pure full-batch training run (see `Train`).

  Args:
    objective_fn: ``(params, data) -> (objective, aux)``, e.g.
      `imbalance_jax.train.classification_objective`.
    make_optimizer: ``learning_rate -> GradientTransformation``, e.g.
      ``imbalance_jax.optim.injectable("adam", momentum=0.9)``.
    num_steps: number of optimizer steps, ``>= 1``.
    log_every: record metrics every ``log_every`` steps; must divide
      ``num_steps``.
    metrics_fn: ``(params, grads, aux, data) -> pytree``; defaults to the loss.

  Returns:
    A `Train`; ``train(params, data, learning_rate) -> TrainResult`` is pure,
    so ``jax.jit(jax.vmap(train, (None, None, 0)))`` sweeps learning rates.

  Example:
    >>> train = make_train(classification_objective(model.apply),
    ...                    injectable("gd", momentum=0.0), num_steps=100, log_every=10)
    >>> result = jax.jit(train)(params, data, 0.1)
    >>> result.history["loss"].shape
    (11,)
  """
  num_steps = _checks.check_int("num_steps", num_steps, minimum=1)
  log_every = _checks.check_int("log_every", log_every, minimum=1)
  if num_steps % log_every:
    raise ValueError(f"log_every={log_every} must divide num_steps={num_steps}")
  return Train(objective_fn=objective_fn, make_optimizer=make_optimizer, num_steps=num_steps,
               log_every=log_every, metrics_fn=metrics_fn or _default_metrics)
