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

Optimizers whose ``update`` needs more than ``(grads, state, params)`` (Sophia's
``obj_fn``, the line search's ``value`` / ``grad`` / ``value_fn``) say so in
``make_optimizer.extra_args``; the loop builds those keywords for them only, so
every other run's program is unchanged. Schedule-free's losses are recorded at
its averaged iterate (``make_optimizer.eval_params``).

Every step also tracks the loss for divergence: the initial loss, the largest
finite loss seen and whether any loss was NaN/inf. A sweep uses these to mask
runs that blow up (see `imbalance_jax.train.selection`). Stateless full-batch
runs track the loss of every step; mini-batch and stateful runs track the
full-training-set loss evaluated at the logged steps (and NaN/inf at every
step), since a mini-batch loss is not the objective.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from imbalance_jax import _checks
from imbalance_jax.train.batching import FullBatch, MiniBatch, accumulate, num_examples, take
from imbalance_jax.train.xla_cpu import cpu_convolutions

ObjectiveFn = Callable[..., tuple[jax.Array, dict]]
MetricsFn = Callable[[Any, Any, dict, Any], Any]

_TRAIN_SPLIT = "train"
UPDATE_KWARGS = ("obj_fn", "value_fn", "value", "grad")  # what an optimizer's update may take


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
    make_optimizer: ``learning_rate -> optax.GradientTransformation``. Two
      optional attributes (set by `imbalance_jax.optim.injectable`): ``extra_args``,
      the keywords its ``update`` takes beyond ``(grads, state, params)``, from
      ``obj_fn`` / ``value_fn`` (parameters -> the step's objective on the step's
      batch, keys and model state), ``value`` (the objective at ``params``) and
      ``grad`` (the step's gradient), built for that optimizer only (Sophia, the
      line search); ``eval_params``, ``(opt_state, params) -> iterate``: every
      record, the final loss and the returned parameters are at that iterate
      (schedule-free's average), the steps' gradients at ``params``.
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
      chunk_key = None if key is None else jax.random.fold_in(key, index)
      (value, (loss, state, aux)), grads = value_and_grad(params, model_state, batch, chunk_key,
                                                          step)
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
      chunk_key = None if key is None else jax.random.fold_in(key, index)
      _, loss, _, aux = evaluate(params, model_state, batch, chunk_key)
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
    split_key = lambda i: None if key is None else jax.random.fold_in(key, i)  # noqa: E731
    if step_metrics is None:
      loss, aux = self._evaluate(params, model_state, train_data, self._eval_chunk_size,
                                 split_key(0))
      metrics = self.metrics_fn(params, None, aux, train_data)
    else:
      loss, metrics = step_metrics
    for i, (name, split) in enumerate(held_out.items()):
      _, aux = self._evaluate(params, model_state, split, self._eval_chunk_size,
                              split_key(i + 1))
      for k, v in self.metrics_fn(params, None, aux, split).items():
        metrics[f"{name}/{k}"] = v
    return loss, metrics

  @staticmethod
  def _track(state: TrainState, loss, *, track_value: bool = True) -> TrainState:
    loss = loss.astype(state.max_loss.dtype)
    is_finite = jnp.isfinite(loss)
    if not track_value:
      return state.replace(finite=state.finite & is_finite)
    return state.replace(
        initial_loss=jnp.where(state.step == 0, loss, state.initial_loss),
        max_loss=jnp.where(is_finite, jnp.maximum(state.max_loss, loss), state.max_loss),
        finite=state.finite & is_finite)

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
    batching: MiniBatch = self.batching
    n = num_examples(train_data)
    steps_per_epoch = n // batching.batch_size
    epoch, position = jnp.divmod(state.step, steps_per_epoch)
    if batching.order == "strided":  # the same batches every epoch, no shuffling
      index = position + steps_per_epoch * jnp.arange(batching.batch_size)
      return index.reshape(batching.accumulation_steps, batching.micro_batch_size)
    # Step keys are fold_in(key, step) with step < 2**31 - 1: this one is distinct.
    shuffle_key = jax.random.fold_in(jax.random.wrap_key_data(state.key), 2**31 - 1)
    order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n)
    index = jax.lax.dynamic_slice_in_dim(order, position * batching.batch_size,
                                         batching.batch_size)
    return index.reshape(batching.accumulation_steps, batching.micro_batch_size)

  def _gradient(self, state: TrainState, data):
    """``(objective loss, new model state, aux, grads, objective value)`` of one optimizer
    step (a mini-batch step's objective value is None unless the optimizer takes it)."""
    train_data, _ = split_data(data)
    key = self._step_key(state)
    if not self.minibatch:
      value, loss, model_state, aux, grads = self._value_and_grad(
          state.params, state.model_state, train_data, key, self.batching.chunk_size, state.step)
      return loss, model_state, aux, grads, value
    index_AB = self._batch(state, train_data)
    with_value = "value" in self.extra_args

    def micro(model_state, inputs):
      index_B, a = inputs
      micro_key = None if key is None else jax.random.fold_in(key, a)
      value, loss, model_state, _, grads = self._value_and_grad(
          state.params, model_state, take(train_data, index_B), micro_key, None, state.step)
      return model_state, ((loss, grads, value) if with_value else (loss, grads))

    model_state, outputs = jax.lax.scan(
        micro, state.model_state,
        (index_AB, jnp.arange(index_AB.shape[0], dtype=jnp.int32)))
    losses, grads = outputs[:2]
    value = jnp.mean(outputs[2]) if with_value else None
    grads = jax.tree.map(lambda g: jnp.mean(g, axis=0), grads)
    return jnp.mean(losses), model_state, None, grads, value

  # -- what optimizers beyond (grads, state, params) see ---------------------------

  @property
  def extra_args(self) -> tuple[str, ...]:
    """Keywords the optimizer's ``update`` takes beyond ``(grads, state, params)``
    (``make_optimizer.extra_args``, e.g. Sophia's ``obj_fn``; ``()`` for most)."""
    return tuple(getattr(self.make_optimizer, "extra_args", ()))

  def _objective_value(self, params, model_state, data, key, chunk_size, step,
                       canonical: bool):
    """The objective (training mode) over ``data`` in chunks, as `_value_and_grad` sees it
    (``canonical``: with the CPU conv rewrite of `cpu_convolutions`, which is not twice
    differentiable)."""
    value_fn = lambda p, s, b, k, t: self._objective(p, s, b, k, True, t)[0]  # noqa: E731
    if canonical:
      value_fn = cpu_convolutions(value_fn, cache_key=(self, "objective_value"))

    def chunk(batch, index):
      chunk_key = None if key is None else jax.random.fold_in(key, index)
      return value_fn(params, model_state, batch, chunk_key, step), {}

    return accumulate(chunk, data, chunk_size)[0]

  def _step_objective(self, state: TrainState, data, canonical: bool = True):
    """``params -> the step's objective``: its batch (mini-batch: the mean over its
    micro-batches), dropout keys and model state, as the step's gradient differentiates it
    (BatchNorm statistics: the step's input state for every micro-batch). ``canonical=False``
    for a function that is differentiated (Sophia's Hessian-vector products)."""
    train_data, _ = split_data(data)
    key = self._step_key(state)
    if not self.minibatch:
      return lambda params: self._objective_value(
          params, state.model_state, train_data, key, self.batching.chunk_size, state.step,
          canonical)
    index_AB = self._batch(state, train_data)

    def objective(params):
      def micro(total, inputs):
        index_B, a = inputs
        micro_key = None if key is None else jax.random.fold_in(key, a)
        value = self._objective_value(params, state.model_state, take(train_data, index_B),
                                      micro_key, None, state.step, canonical)
        return total + value, None

      zero = jnp.zeros((), jnp.result_type(*jax.tree.leaves(params)))
      total, _ = jax.lax.scan(micro, zero,
                              (index_AB, jnp.arange(index_AB.shape[0], dtype=jnp.int32)))
      return total / index_AB.shape[0]

    return objective

  def _update_kwargs(self, state: TrainState, data, value, grads) -> dict:
    """The extra keywords of the optimizer's ``update`` (``{}`` for a plain optimizer)."""
    names = self.extra_args
    if not names:
      return {}
    provided = {"value": value, "grad": grads}
    if "value_fn" in names:  # evaluated only
      provided["value_fn"] = self._step_objective(state, data)
    if "obj_fn" in names:  # differentiated twice (Sophia's Hessian-vector products)
      provided["obj_fn"] = self._step_objective(state, data, canonical=False)
    return {name: provided[name] for name in names}

  @property
  def eval_params(self) -> Callable | None:
    """``(opt_state, params) -> iterate`` at which losses are recorded (schedule-free's
    averaged iterate: ``make_optimizer.eval_params``); None: at ``params``."""
    return getattr(self.make_optimizer, "eval_params", None)

  def _evaluated(self, state: TrainState) -> TrainState:
    """``state`` at the iterate its losses are recorded at (itself for most optimizers)."""
    if self.eval_params is None:
      return state
    return state.replace(params=self.eval_params(state.opt_state, state.params))

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
      state = self._track(state, loss)
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
        state = self._track(state, eval_loss)
      state = self._track(state, loss, track_value=False)
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
    return TrainState(params=params, opt_state=opt_state, model_state=model_state, key=key,
                      learning_rate=learning_rate, step=jnp.zeros((), jnp.int32),
                      initial_loss=jnp.full((), jnp.nan, dtype),
                      max_loss=jnp.full((), -jnp.inf, dtype), finite=jnp.ones((), bool))

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
    tracked = self._track(state, loss)
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
  unknown = set(getattr(make_optimizer, "extra_args", ())) - set(UPDATE_KWARGS)
  if unknown:
    raise ValueError(f"make_optimizer.extra_args must be among {UPDATE_KWARGS}, got "
                     f"{sorted(unknown)}")
  if record_train_mode and not stateful:
    raise ValueError("record_train_mode=True needs stateful=True (a model with dropout "
                     "and a key); a stateless full-batch run already records its steps")
  return Train(objective_fn=objective_fn, make_optimizer=make_optimizer, num_steps=num_steps,
               log_every=log_every, metrics_fn=metrics_fn or _default_metrics,
               stateful=bool(stateful), batching=batching,
               record_train_mode=bool(record_train_mode))
