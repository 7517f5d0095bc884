"""A training run as a pure function: ``lax.scan`` over optimizer steps.

`make_train` returns a `Train`: ``train(params, data, learning_rate, key)`` runs
``num_steps`` steps and returns a `TrainResult` whose metric history was
recorded inside the scan every ``log_every`` steps (stacked on device, one
transfer). The same run can be cut into segments (``init`` / ``run`` /
``finish``) so a driver can checkpoint between them; segments of equal length
share one compiled program.

What a step sees is set by ``batching`` (`imbalance_jax.train.batching`): the
exact full-batch gradient in one pass or accumulated over fixed-size chunks, or
mini-batches from a per-epoch permutation. Models with state (BatchNorm running
averages) and randomness (dropout) are supported with ``stateful=True``: the
state is carried in `TrainState` and the step's key is ``fold_in(key, step)``.
A stateless full-batch run compiles to the same program as before.

Optimizers whose ``update`` needs more than ``(grads, state, params)`` (Sophia,
the line search) or whose losses are recorded at another iterate (schedule-free)
say so on ``make_optimizer``: see `imbalance_jax.train.extra_args`.

Every step also tracks the loss for divergence (`imbalance_jax.train.state`):
stateless full-batch runs the loss of every step; mini-batch and stateful runs
the full-training-set loss evaluated at the logged steps (and NaN/inf at every
step), since a mini-batch loss is not the objective.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from imbalance_jax import _checks
from imbalance_jax.train import extra_args as _extra_args
from imbalance_jax.train.batching import (FullBatch, MiniBatch, accumulate, minibatch_indices,
                                          num_examples, part_key, scan_micro_batches)
from imbalance_jax.train.extra_args import UPDATE_KWARGS  # noqa: F401 (re-exported)
from imbalance_jax.train.state import TrainResult, TrainState, initial_state, track_loss
from imbalance_jax.train.xla_cpu import cpu_convolutions

ObjectiveFn = Callable[..., tuple[jax.Array, dict]]
MetricsFn = Callable[[Any, Any, dict, Any], Any]

_TRAIN_SPLIT = "train"


def _default_metrics(params, grads, aux, data):
  del params, grads, data
  return {"loss": aux["loss"]}


def split_data(data) -> tuple[Any, dict]:
  """``(train, {name: held-out split})`` of a data set or a dict of splits."""
  if isinstance(data, Mapping):
    if _TRAIN_SPLIT not in data:
      raise ValueError(f"data given as a dict of splits must have a 'train' entry, got "
                       f"{sorted(data)}")
    return data[_TRAIN_SPLIT], {k: v for k, v in data.items() if k != _TRAIN_SPLIT}
  return data, {}


@dataclasses.dataclass(frozen=True)
class Train:
  """Pure training run; build with `make_train`.

  Attributes:
    objective_fn: ``(params, data) -> (objective, aux)``, or with
      ``stateful=True`` ``(params, data, model_state, key, training) -> (objective,
      aux)`` with ``aux["model_state"]`` the updated state. ``aux["loss"]`` (if
      present) is the loss tracked for divergence, else the objective.
    make_optimizer: ``learning_rate -> optax.GradientTransformation``, with
      optional attributes ``extra_args`` (keywords its ``update`` takes beyond
      ``(grads, state, params)``) and ``eval_params`` (the iterate every record,
      the final loss and the returned parameters are at), set by
      `imbalance_jax.optim.injectable`: see `imbalance_jax.train.extra_args`.
    num_steps: optimizer steps of a full run.
    log_every: metrics are recorded at steps 0, k, 2k, ... and at the end.
    metrics_fn: ``(params, grads, aux, data) -> pytree``. Stateless full-batch
      runs evaluate it on the step's own forward pass and gradient; mini-batch
      and stateful runs on an evaluation pass over the whole split (model in
      evaluation mode, ``grads=None``).
    stateful: whether ``objective_fn`` takes model state and a key.
    batching: `FullBatch` or `MiniBatch`.
    record_train_mode: record in training mode (dropout active, as paper H's
      authors' loop, which never switches to evaluation mode): a full-batch
      run records the step's own forward pass and gradient; a mini-batch run
      evaluates every split with fresh dropout keys (distinct from the steps').
      Needs ``stateful=True``.
  """

  objective_fn: ObjectiveFn
  make_optimizer: Callable[[Any], optax.GradientTransformation]
  num_steps: int
  log_every: int
  metrics_fn: MetricsFn
  stateful: bool = False
  batching: FullBatch | MiniBatch = FullBatch()
  record_train_mode: bool = False

  @property
  def history_steps(self) -> np.ndarray:
    """Steps at which ``history`` was recorded, ``[num_steps // log_every + 1]``."""
    return np.arange(0, self.num_steps + 1, self.log_every)

  @property
  def minibatch(self) -> bool:
    return isinstance(self.batching, MiniBatch)

  @property
  def _tracks_every_step(self) -> bool:
    return not self.minibatch and (not self.stateful or self.record_train_mode)

  @property
  def needs_key(self) -> bool:
    return self.minibatch

  # -- building blocks ---------------------------------------------------------

  def _split_variables(self, params):
    if not self.stateful:
      return params, {}
    if not isinstance(params, Mapping) or "params" not in params:
      raise ValueError("with stateful=True, pass the model's full variables dict "
                       "{'params': ..., 'batch_stats': ...} as params")
    return params["params"], {k: v for k, v in params.items() if k != "params"}

  def _join_variables(self, params, model_state):
    return {"params": params, **model_state} if self.stateful else params

  def _objective(self, params, model_state, batch, key, training: bool, step=None):
    # An objective marked `takes_step` (e.g. LDAM-DRW) gets the optimizer step as `step=`.
    extra = ({"step": step} if step is not None and getattr(self.objective_fn, "takes_step",
                                                            False) else {})
    if self.stateful:
      value, aux = self.objective_fn(params, batch, model_state, key, training, **extra)
      aux = dict(aux)
      # Keep the carried dtypes (Flax makes float32 batch statistics even under x64).
      model_state = jax.tree.map(lambda new, old: new.astype(old.dtype),
                                 aux.pop("model_state", model_state), model_state)
    else:
      value, aux = self.objective_fn(params, batch, **extra)
      aux = dict(aux) if isinstance(aux, Mapping) else {}
    loss = aux.get("loss", value)
    return value, loss, model_state, aux

  def _value_and_grad(self, params, model_state, data, key, chunk_size, step=None):
    """Objective, tracked loss, new model state, aux and gradient over ``data``."""

    def value_and_grad(params, model_state, batch, chunk_key, step):
      def objective(p):
        value, loss, state, aux = self._objective(p, model_state, batch, chunk_key, True, step)
        return value, (loss, state, aux)

      return jax.value_and_grad(objective, has_aux=True)(params)

    # On CPU, a step with convolutions gets every conv (and conv gradient) canonical and
    # ungrouped, so XLA calls its conv kernels inside the scan; any other step runs as it
    # is. Decided once per run and argument types: see `imbalance_jax.train.xla_cpu`.
    value_and_grad = cpu_convolutions(value_and_grad, cache_key=(self, "value_and_grad"))

    def chunk(batch, index):
      (value, (loss, state, aux)), grads = value_and_grad(params, model_state, batch,
                                                          part_key(key, index), step)
      return (value, loss, state, grads), aux

    (value, loss, state, grads), aux = accumulate(chunk, data, chunk_size)
    aux["loss"] = loss
    return value, loss, state, aux, grads

  def _evaluate(self, params, model_state, data, chunk_size, key=None):
    """Forward pass over ``data`` in evaluation mode (with ``key``: training mode, chunk
    ``i`` drawing its dropout from ``fold_in(key, i)``): ``(loss, aux)``."""
    training = key is not None
    evaluate = cpu_convolutions(lambda p, s, b, k: self._objective(p, s, b, k, training),
                                cache_key=(self, "evaluate", training))

    def chunk(batch, index):
      _, loss, _, aux = evaluate(params, model_state, batch, part_key(key, index))
      return loss, aux

    loss, aux = accumulate(chunk, data, chunk_size)
    aux["loss"] = loss
    return loss, aux

  @property
  def _eval_chunk_size(self):
    return (self.batching.eval_chunk_size if self.minibatch else self.batching.chunk_size)

  def _record(self, params, model_state, data, step_metrics=None, key=None):
    """Metrics of the training split (and of held-out splits) at the current iterate
    (with ``key``: in training mode, split ``i`` with ``fold_in(key, i)``)."""
    train_data, held_out = split_data(data)
    if step_metrics is None:
      loss, aux = self._evaluate(params, model_state, train_data, self._eval_chunk_size,
                                 part_key(key, 0))
      metrics = self.metrics_fn(params, None, aux, train_data)
    else:
      loss, metrics = step_metrics
    for i, (name, split) in enumerate(held_out.items()):
      _, aux = self._evaluate(params, model_state, split, self._eval_chunk_size,
                              part_key(key, i + 1))
      for k, v in self.metrics_fn(params, None, aux, split).items():
        metrics[f"{name}/{k}"] = v
    return loss, metrics

  def _step_key(self, state: TrainState):
    if state.key is None:
      return None
    return jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)

  def _record_key(self, state: TrainState):
    """Dropout key of a training-mode record (None in evaluation mode or without a key)."""
    if not self.record_train_mode or state.key is None:
      return None
    # Step keys are fold_in(key, step) with step < 2**31 - 2: this one is distinct.
    record_key = jax.random.fold_in(jax.random.wrap_key_data(state.key), 2**31 - 2)
    return jax.random.fold_in(record_key, state.step)

  def _batch(self, state: TrainState, train_data):
    """The step's mini-batch indices ``[accumulation_steps, micro_batch]``."""
    return minibatch_indices(self.batching, state.step, state.key, num_examples(train_data))

  def _gradient(self, state: TrainState, data):
    """``(objective loss, new model state, aux, grads, objective value)`` of one optimizer
    step (a mini-batch step's objective value is None unless the optimizer takes it)."""
    train_data, _ = split_data(data)
    key = self._step_key(state)
    if not self.minibatch:
      value, loss, model_state, aux, grads = self._value_and_grad(
          state.params, state.model_state, train_data, key, self.batching.chunk_size, state.step)
      return loss, model_state, aux, grads, value
    with_value = "value" in self.extra_args

    def micro(model_state, batch, micro_key):
      value, loss, model_state, _, grads = self._value_and_grad(
          state.params, model_state, batch, micro_key, None, state.step)
      return model_state, ((loss, grads, value) if with_value else (loss, grads))

    model_state, outputs = scan_micro_batches(micro, state.model_state, train_data,
                                              self._batch(state, train_data), key)
    losses, grads = outputs[:2]
    value = jnp.mean(outputs[2]) if with_value else None
    grads = jax.tree.map(lambda g: jnp.mean(g, axis=0), grads)
    return jnp.mean(losses), model_state, None, grads, value

  # -- what optimizers beyond (grads, state, params) see: `imbalance_jax.train.extra_args`

  @property
  def extra_args(self) -> tuple[str, ...]:
    """Keywords the optimizer's ``update`` takes beyond ``(grads, state, params)``
    (``make_optimizer.extra_args``, e.g. Sophia's ``obj_fn``; ``()`` for most)."""
    return _extra_args.declared(self.make_optimizer)

  @property
  def eval_params(self) -> Callable | None:
    """``(opt_state, params) -> iterate`` at which losses are recorded (schedule-free's
    averaged iterate: ``make_optimizer.eval_params``); None: at ``params``."""
    return _extra_args.eval_params(self.make_optimizer)

  def _evaluated(self, state: TrainState) -> TrainState:
    """``state`` at the iterate its losses are recorded at (itself for most optimizers)."""
    return _extra_args.evaluated(self.eval_params, state)

  def _step_objective(self, state: TrainState, data, canonical: bool = True):
    """``params -> the step's objective`` (`extra_args.step_objective`) on the step's batch,
    keys and model state; ``canonical``: through `cpu_convolutions` (``False`` for a
    function differentiated again: Sophia's Hessian-vector products)."""
    objective = lambda p, s, b, k, t: self._objective(p, s, b, k, True, t)[0]  # noqa: E731
    if canonical:
      objective = cpu_convolutions(objective, cache_key=(self, "objective_value"))
    train_data, _ = split_data(data)
    key = self._step_key(state)
    if not self.minibatch:
      return _extra_args.step_objective(objective, train_data, state.model_state, key,
                                        state.step, chunk_size=self.batching.chunk_size)
    return _extra_args.step_objective(objective, train_data, state.model_state, key,
                                      state.step, index_AB=self._batch(state, train_data))

  def _update_kwargs(self, state: TrainState, data, value, grads) -> dict:
    """The extra keywords of the optimizer's ``update`` (``{}`` for a plain optimizer)."""
    return _extra_args.update_kwargs(self.extra_args, value, grads,
                                     lambda canonical: self._step_objective(state, data,
                                                                            canonical))

  def _record_with_gradient(self, state: TrainState, data):
    """``(loss, metrics)`` of a full-batch record at ``state.params``, its own gradient
    passed to ``metrics_fn``."""
    loss, _, aux, grads, _ = self._gradient(state, data)
    train_data, _ = split_data(data)
    step_metrics = (loss, self.metrics_fn(state.params, grads, aux, train_data))
    return self._record(state.params, state.model_state, data, step_metrics,
                        self._record_key(state))

  def _step(self, state: TrainState, data, record: bool):
    loss, model_state, aux, grads, value = self._gradient(state, data)
    metrics = None
    if self._tracks_every_step:
      state = track_loss(state, loss)
      if record and self.eval_params is not None:  # at the evaluated iterate, its gradient
        _, metrics = self._record_with_gradient(self._evaluated(state), data)
      elif record:
        train_data, _ = split_data(data)
        step_metrics = (loss, self.metrics_fn(state.params, grads, aux, train_data))
        _, metrics = self._record(state.params, state.model_state, data, step_metrics,
                                  self._record_key(state))
    else:
      if record:
        at = self._evaluated(state)
        eval_loss, metrics = self._record(at.params, at.model_state, data,
                                          key=self._record_key(state))
        state = track_loss(state, eval_loss)
      state = track_loss(state, loss, track_value=False)
    optimizer = self.make_optimizer(state.learning_rate)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params,
                                          **self._update_kwargs(state, data, value, grads))
    params = optax.apply_updates(state.params, updates)
    state = state.replace(params=params, opt_state=opt_state, model_state=model_state,
                          step=state.step + 1)
    return state, metrics

  # -- public API --------------------------------------------------------------

  def init(self, params, data, learning_rate, key=None) -> TrainState:
    """The state before step 0. ``key``: the member's PRNG key (None if unused)."""
    train_data, _ = split_data(data)
    if self.minibatch:
      n = num_examples(train_data)
      if self.batching.batch_size > n:
        raise ValueError(f"batching.batch_size={self.batching.batch_size} exceeds the "
                         f"{n} training examples")
      if key is None:
        raise ValueError("mini-batch training shuffles with the member's key: pass key "
                         "(keys_S for a Sweep)")
    params, model_state = self._split_variables(params)
    dtype = jnp.result_type(*jax.tree.leaves(params))
    learning_rate = jnp.asarray(learning_rate, dtype)
    opt_state = self.make_optimizer(learning_rate).init(params)
    if key is not None and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
      key = jax.random.key_data(key)  # raw uint32 data: checkpointable like any array
    return initial_state(params, opt_state, model_state, key, learning_rate)

  def step(self, state: TrainState, data, record: bool = False):
    """One optimizer step: ``(state, metrics)``, metrics None unless ``record`` (what
    `run` scans; lowered alone by `experiment.plan` for its cost and memory)."""
    return self._step(state, data, record)

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
    at = self._evaluated(state)
    if self._tracks_every_step:
      loss, metrics = self._record_with_gradient(at, data)
    else:
      loss, metrics = self._record(at.params, at.model_state, data,
                                   key=self._record_key(state))
    tracked = track_loss(state, loss)
    result = TrainResult(params=self._join_variables(at.params, at.model_state),
                         history=None, initial_loss=tracked.initial_loss,
                         final_loss=loss.astype(tracked.max_loss.dtype),
                         max_loss=tracked.max_loss, finite=tracked.finite)
    return result, metrics

  def __call__(self, params, data, learning_rate, key=None) -> TrainResult:
    state, history = self.run(self.init(params, data, learning_rate, key), data)
    result, final_metrics = self.finish(state, data)
    history = jax.tree.map(lambda h, f: jnp.concatenate([h, f[None]]), history, final_metrics)
    return result.replace(history=history)


def make_train(objective_fn: ObjectiveFn,
               make_optimizer: Callable[[Any], optax.GradientTransformation], *,
               num_steps: int, log_every: int = 1, metrics_fn: MetricsFn | None = None,
               stateful: bool = False, batching: FullBatch | MiniBatch | None = None,
               record_train_mode: bool = False) -> Train:
  """Builds a pure training run (see `Train`).

  Args:
    objective_fn: ``(params, data) -> (objective, aux)``, e.g.
      `imbalance_jax.train.classification_objective`; with ``stateful=True``
      ``(params, data, model_state, key, training) -> (objective, aux)``.
    make_optimizer: ``learning_rate -> GradientTransformation``, e.g.
      ``imbalance_jax.optim.injectable("adam", momentum=0.9)``.
    num_steps: number of optimizer steps, ``>= 1``.
    log_every: record metrics every ``log_every`` steps; must divide
      ``num_steps``.
    metrics_fn: ``(params, grads, aux, data) -> pytree``; defaults to the loss.
    stateful: the model carries state (BatchNorm) and/or randomness (dropout);
      ``train`` then takes the full variables dict as ``params``.
    batching: `FullBatch` (default: one pass) or `MiniBatch`.
    record_train_mode: record losses in training mode, dropout active (paper
      H's authors' way; see `Train`); needs ``stateful=True``.

  Returns:
    A `Train`; ``train(params, data, learning_rate, key=None) -> TrainResult``
    is pure, so ``jax.jit(jax.vmap(train, (None, None, 0)))`` sweeps learning
    rates. ``data`` is a `Dataset` or ``{"train": Dataset, "test": Dataset}``
    (held-out metrics are recorded as ``"test/<name>"``).

  Example:
    >>> from imbalance_jax import data, models, optim
    >>> from imbalance_jax.train import classification_objective, make_train
    >>> ds = data.heavy_tailed_labels(jax.random.key(0), m=3)
    >>> model = models.LinearSoftmax(ds.num_classes)
    >>> params = model.init(jax.random.key(1), ds.x[:1])
    >>> train = make_train(classification_objective(model.apply),
    ...                    optim.injectable("gd", momentum=0.0), num_steps=20, log_every=5)
    >>> result = jax.jit(train)(params, ds, 0.1)
    >>> result.history["loss"].shape
    (5,)
  """
  num_steps = _checks.check_int("num_steps", num_steps, minimum=1)
  log_every = _checks.check_int("log_every", log_every, minimum=1)
  if num_steps % log_every:
    raise ValueError(f"log_every={log_every} must divide num_steps={num_steps}")
  batching = FullBatch() if batching is None else batching
  if not isinstance(batching, (FullBatch, MiniBatch)):
    raise ValueError(f"batching must be a FullBatch or MiniBatch, got {batching!r}")
  if not callable(objective_fn):
    raise ValueError(f"objective_fn must be callable, got {objective_fn!r}")
  _extra_args.check_declared(make_optimizer)
  if record_train_mode and not stateful:
    raise ValueError("record_train_mode=True needs stateful=True (a model with dropout "
                     "and a key); a stateless full-batch run already records its steps")
  return Train(objective_fn=objective_fn, make_optimizer=make_optimizer, num_steps=num_steps,
               log_every=log_every, metrics_fn=metrics_fn or _default_metrics,
               stateful=bool(stateful), batching=batching,
               record_train_mode=bool(record_train_mode))
