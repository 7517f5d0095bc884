"""What an optimizer's ``update`` sees beyond ``(grads, state, params)``, and where a run's
losses are recorded: the hook of `imbalance_jax.train.make_train`.

Most optimizers are ``update(grads, state, params)``. A factory
(``learning_rate -> GradientTransformation``, e.g. from
`imbalance_jax.optim.injectable`) may carry two attributes:

- ``extra_args``: keywords its ``update`` also takes (optax's
  ``GradientTransformationExtraArgs``), among `UPDATE_KWARGS`: ``obj_fn`` /
  ``value_fn`` (parameters -> the step's objective on the step's own batch,
  dropout keys and model state: `step_objective`), ``value`` (the objective at
  ``params``) and ``grad`` (the step's gradient). Sophia (Liu et al. 2023,
  arXiv 2305.14342) takes ``obj_fn`` for its Hutchinson Hessian-vector
  products; paper H's line-search SGD takes ``value``, ``grad`` and
  ``value_fn``. The loop builds them for such an optimizer only
  (`update_kwargs`), so every other run's program is unchanged.
- ``eval_params``: ``(opt_state, params) -> iterate``, the point at which
  every loss is recorded and which a run returns (schedule-free's averaged
  iterate ``x``, Defazio et al. 2024, arXiv 2405.15682; the gradients stay at
  ``params`` = ``y``): `evaluated`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from imbalance_jax.train.batching import accumulate, part_key, scan_micro_batches

UPDATE_KWARGS = ("obj_fn", "value_fn", "value", "grad")  # what an optimizer's update may take


def declared(make_optimizer) -> tuple[str, ...]:
  """Keywords ``make_optimizer``'s ``update`` takes beyond ``(grads, state, params)``
  (its ``extra_args``; ``()`` for most).

  Example:
    >>> from imbalance_jax import optim
    >>> declared(optim.injectable("sophia", 0.9)), declared(lambda lr: None)
    (('obj_fn',), ())
  """
  return tuple(getattr(make_optimizer, "extra_args", ()))


def check_declared(make_optimizer) -> None:
  """Refuses ``make_optimizer.extra_args`` outside `UPDATE_KWARGS`."""
  unknown = set(getattr(make_optimizer, "extra_args", ())) - set(UPDATE_KWARGS)
  if unknown:
    raise ValueError(f"make_optimizer.extra_args must be among {UPDATE_KWARGS}, got "
                     f"{sorted(unknown)}")


def eval_params(make_optimizer) -> Callable | None:
  """``(opt_state, params) -> iterate`` at which losses are recorded
  (``make_optimizer.eval_params``: schedule-free's average); None: at ``params``."""
  return getattr(make_optimizer, "eval_params", None)


def evaluated(eval_params_fn: Callable | None, state):
  """``state`` (a `TrainState`) at the iterate its losses are recorded at (itself when
  ``eval_params_fn`` is None, as for most optimizers)."""
  if eval_params_fn is None:
    return state
  return state.replace(params=eval_params_fn(state.opt_state, state.params))


def step_objective(objective: Callable, train_data, model_state, key, step, *,
                   chunk_size: int | None = None,
                   index_AB: jax.Array | None = None) -> Callable[[Any], jax.Array]:
  """``params -> the step's objective``, as the step's gradient differentiates it.

  Args:
    objective: ``(params, model_state, batch, key, step) -> scalar``, the
      objective in training mode.
    train_data: the training split.
    model_state: the step's input model state (BatchNorm statistics: the same
      for every chunk and micro-batch).
    key: the step's key (None without randomness); chunk or micro-batch ``i``
      draws ``fold_in(key, i)``.
    step: the optimizer step (for an objective that takes it).
    chunk_size: a full-batch step's chunks (None: one pass).
    index_AB: a mini-batch step's examples ``[A, B]``
      (`imbalance_jax.train.batching.minibatch_indices`): the objective is the
      mean over its ``A`` micro-batches. None: a full-batch step.

  Example:
    >>> from imbalance_jax import data
    >>> ds = data.heavy_tailed_labels(jax.random.key(0), m=2)
    >>> mean_x = lambda p, s, b, k, t: jnp.mean(b.x) * p  # noqa: E731
    >>> fn = step_objective(mean_x, ds, {}, None, 0, chunk_size=3)
    >>> bool(jnp.allclose(fn(2.0), 2 * jnp.mean(ds.x)))
    True
  """
  def over(params, data, key, chunk_size):
    def chunk(batch, index):
      return objective(params, model_state, batch, part_key(key, index), step), {}

    return accumulate(chunk, data, chunk_size)[0]

  if index_AB is None:
    return lambda params: over(params, train_data, key, chunk_size)

  def mean_over_micro_batches(params):
    def micro(total, batch, micro_key):
      return total + over(params, batch, micro_key, None), None

    zero = jnp.zeros((), jnp.result_type(*jax.tree.leaves(params)))
    total, _ = scan_micro_batches(micro, zero, train_data, index_AB, key)
    return total / index_AB.shape[0]

  return mean_over_micro_batches


def update_kwargs(names: tuple[str, ...], value, grad,
                  step_objective_fn: Callable[[bool], Callable]) -> dict:
  """The keywords ``names`` of the optimizer's ``update`` (``{}`` for a plain optimizer).

  Args:
    names: `declared` keywords.
    value: the step's objective at ``params`` (None where not computed).
    grad: the step's gradient.
    step_objective_fn: ``canonical -> (params -> the step's objective)``;
      ``canonical=False`` for ``obj_fn``, which is differentiated twice
      (Sophia's Hessian-vector products) and so must not go through the CPU
      conv rewrite of `imbalance_jax.train.xla_cpu.cpu_convolutions`.

  Example:
    >>> update_kwargs((), 1.0, {}, None)
    {}
    >>> update_kwargs(("grad", "value"), 1.0, {"w": 0.5}, None)
    {'grad': {'w': 0.5}, 'value': 1.0}
  """
  if not names:
    return {}
  provided = {"value": value, "grad": grad}
  if "value_fn" in names:  # evaluated only
    provided["value_fn"] = step_objective_fn(True)
  if "obj_fn" in names:  # differentiated twice (Sophia's Hessian-vector products)
    provided["obj_fn"] = step_objective_fn(False)
  return {name: provided[name] for name in names}
