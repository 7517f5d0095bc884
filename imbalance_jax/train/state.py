"""What a training run carries and returns, and how it tracks its loss for divergence.

`TrainState` is the carry of `imbalance_jax.train.make_train`'s scan and
`TrainResult` its outcome. Both hold the divergence tracking that a sweep uses
to mask runs that blow up (`imbalance_jax.train.selection`): the initial loss,
the largest finite loss seen and whether any loss was NaN/inf, updated by
`track_loss`.

Example:
  >>> import jax.numpy as jnp
  >>> state = initial_state({"w": jnp.zeros(2)}, (), {}, None, jnp.float32(0.1))
  >>> state = track_loss(state, jnp.float32(2.0))
  >>> state = track_loss(state.replace(step=state.step + 1), jnp.float32(jnp.inf))
  >>> float(state.initial_loss), float(state.max_loss), bool(state.finite)
  (2.0, 2.0, False)
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  """Carry of the scan. Leading axes appear when vmapped over a sweep.

  ``model_state`` holds non-trainable model collections (e.g. ``batch_stats``;
  ``{}`` for a stateless model) and ``key`` the member's raw key data
  (``jax.random.key_data``; None when the run needs no randomness).
  """

  params: Any
  opt_state: optax.OptState
  model_state: Any
  key: Any
  learning_rate: jax.Array
  step: jax.Array
  initial_loss: jax.Array  # loss at step 0 (NaN before the first step)
  max_loss: jax.Array  # largest finite loss seen so far
  finite: jax.Array  # no NaN/inf loss seen so far


@flax.struct.dataclass
class TrainResult:
  """Outcome of a run: final parameters, metric history and loss tracking.

  ``params`` has the structure passed in (the full variables dict, model state
  included, for a stateful run). ``history`` leaves have a leading axis over
  ``Train.history_steps`` (steps 0, k, 2k, ..., num_steps). ``max_loss`` and
  ``finite`` cover every tracked step, including the final iterate.
  """

  params: Any
  history: Any
  initial_loss: jax.Array
  final_loss: jax.Array
  max_loss: jax.Array
  finite: jax.Array


def initial_state(params, opt_state, model_state, key, learning_rate: jax.Array) -> TrainState:
  """The state before step 0, its tracking empty (in ``learning_rate``'s dtype)."""
  dtype = learning_rate.dtype
  return TrainState(params=params, opt_state=opt_state, model_state=model_state, key=key,
                    learning_rate=learning_rate, step=jnp.zeros((), jnp.int32),
                    initial_loss=jnp.full((), jnp.nan, dtype),
                    max_loss=jnp.full((), -jnp.inf, dtype), finite=jnp.ones((), bool))


def track_loss(state: TrainState, loss, *, track_value: bool = True) -> TrainState:
  """``state`` having seen ``loss`` (a scalar): the initial loss (at step 0) and the largest
  finite loss updated, unless ``track_value=False``, and NaN/inf always."""
  loss = loss.astype(state.max_loss.dtype)
  is_finite = jnp.isfinite(loss)
  if not track_value:
    return state.replace(finite=state.finite & is_finite)
  return state.replace(
      initial_loss=jnp.where(state.step == 0, loss, state.initial_loss),
      max_loss=jnp.where(is_finite, jnp.maximum(state.max_loss, loss), state.max_loss),
      finite=state.finite & is_finite)
