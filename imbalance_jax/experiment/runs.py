"""Run names in, tuned runs out: the orchestration every training study shares.

`tune_runs` takes run specs (`optim.RunSpec`, e.g. from a `fields.Runs` field),
a builder from a spec to its `train.Train`, the data and initial parameters,
and a step-size `Grid`; it tunes each run by paper H's rule (`train.tune_sweep`:
one compiled seeds x step-sizes program per round, resumable from ``store``)
and returns `TunedRuns`, which gives what every binary writes: the summary
entries, the metrics.jsonl records, the best histories and step sizes.

Example:
  >>> import jax
  >>> from imbalance_jax import data, models, optim
  >>> keys = jax.random.split(jax.random.key(0), 2)
  >>> data_S = jax.vmap(lambda k: data.heavy_tailed_labels(k, m=3))(keys)
  >>> model = models.LinearSoftmax(data_S.num_classes)
  >>> params_S = jax.vmap(lambda k: model.init(k, data_S.x[0, :1]))(keys)
  >>> groups = data.frequency_groups(np.asarray(data_S.class_counts[0]), 2)
  >>> build = train_builder(model.apply, num_steps=10, log_every=5, groups=groups)
  >>> tuned = tune_runs(optim.parse_runs("gd,adam"), build, params_S, data_S,
  ...                   grid=Grid((-1.0, 0.0)), log=lambda *a: None)
  >>> sorted(tuned), tuned.steps.tolist(), sorted(tuned.summaries()["adam"])[:3]
  (['adam', 'gd'], [0, 5, 10], ['diverged', 'fallback_from', 'final_group_accuracy'])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from absl import logging

from imbalance_jax import _checks, losses, metrics, optim, reporting, train
from imbalance_jax.train.selection import SPARSE_EXPONENTS


@dataclasses.dataclass(frozen=True)
class Grid:
  """The step sizes of a tuning: ``10**exponents`` first, then ``refine_rounds`` rounds
  of half (then quarter, ...) powers around the best (paper H, App. A.4)."""

  exponents: tuple[float, ...] = SPARSE_EXPONENTS
  refine_rounds: int = 1

  @classmethod
  def from_config(cls, config: Any) -> Grid:
    """A fixed step size if ``config.learning_rate > 0``, else ``config.exponents`` (if the
    config has it; else paper H's grid) with ``config.refine_rounds``."""
    if config.learning_rate > 0:
      return cls((float(np.log10(config.learning_rate)),), 0)
    exponents = config.exponents if "exponents" in config.keys() else SPARSE_EXPONENTS
    return cls(tuple(exponents), config.refine_rounds)


def train_builder(model_apply: Callable, *, num_steps: int, log_every: int,
                  groups=None, metrics_fn: Callable | None = None,
                  batching: train.FullBatch | train.MiniBatch | None = None,
                  stateful: bool = False, record_train_mode: bool = False,
                  weight_normalization: str = "set"
                  ) -> Callable[[optim.RunSpec], train.Train]:
  """spec -> the `train.Train` of a classifier under the spec's optimizer and weighting.

  Args:
    model_apply: the Flax model's ``apply``.
    num_steps, log_every, batching, stateful, record_train_mode: as for
      `train.make_train`.
    weight_normalization: of a reweighted run's loss, ``"set"``: ``(1/B) sum_i
      w_{y_i} loss_i`` with ``w`` from the whole training set's counts (ours;
      a mini-batch mean estimates the full-set loss); ``"batch"``: divided by
      ``sum_i w_{y_i}`` of each (micro-)batch instead (paper H's authors'
      class-weighted PTB loss, PyTorch's ``CrossEntropyLoss(weight=...)``).
      The same in full batch up to a constant factor.
    groups: ``class_to_group [C]``: record `metrics.classification_metrics` (group
      losses, accuracies) unless ``metrics_fn`` is given.
    metrics_fn: what to record every ``log_every`` steps (see `train.make_train`).
  """
  if metrics_fn is None and groups is not None:
    metrics_fn = metrics.classification_metrics(groups)

  _checks.check_choice("weight_normalization", weight_normalization, ("set", "batch"))

  def build(spec: optim.RunSpec) -> train.Train:
    kwargs = {} if batching is None else {"batching": batching}
    objective = train.classification_objective(model_apply, spec.weighting, stateful=stateful)
    if weight_normalization == "batch" and spec.weighting != "none":
      objective = _batch_normalized(train.classification_objective(
          model_apply, "none", stateful=stateful), spec.weighting, stateful)
    return train.make_train(
        objective,
        optim.injectable(spec.optimizer, spec.momentum), num_steps=num_steps,
        log_every=log_every, metrics_fn=metrics_fn, stateful=stateful,
        record_train_mode=record_train_mode, **kwargs)

  return build


def _batch_normalized(objective, weighting: str, stateful: bool):
  """``objective`` (unweighted) -> ``sum_i w_{y_i} loss_i / sum_i w_{y_i}`` over its batch."""
  def reweigh(value_aux, data):
    _, aux = value_aux
    w_N = losses.class_weights(data.class_counts, weighting).astype(
        aux["loss_N"].dtype)[aux["label_N"]]
    return jnp.sum(w_N * aux["loss_N"]) / jnp.sum(w_N), aux

  if stateful:
    return lambda params, data, state, key, training: reweigh(
        objective(params, data, state, key, training), data)
  return lambda params, data: reweigh(objective(params, data), data)


@dataclasses.dataclass(frozen=True)
class TunedRuns(Mapping):
  """``{run name: train.TunedSweep}`` in the order run, and the logged ``steps [T]``."""

  tuned: Mapping[str, train.TunedSweep]
  steps: np.ndarray

  def __getitem__(self, name: str) -> train.TunedSweep:
    return self.tuned[name]

  def __iter__(self):
    return iter(self.tuned)

  def __len__(self) -> int:
    return len(self.tuned)

  def best_histories(self) -> dict[str, Any]:
    """Per run, the history at its selected step size (leaves ``[S, T, ...]``)."""
    return {name: t.best_history for name, t in self.tuned.items()}

  def learning_rates(self) -> dict[str, float]:
    return {name: t.selection.learning_rate for name, t in self.tuned.items()}

  def summaries(self) -> dict[str, dict]:
    """Per run, `reporting.summarize_run`: ``learning_rate``, ``final_loss``,
    ``final_group_losses`` (group 0 = most frequent), the evidence of the selection."""
    return {name: reporting.summarize_run(t) for name, t in self.tuned.items()}

  def records(self, **extra) -> Iterator[dict]:
    """metrics.jsonl records of every run (`reporting.history_records`), with ``extra``."""
    for name, t in self.tuned.items():
      for record in reporting.history_records(name, t, self.steps):
        yield dict(record, **extra) if extra else record


def tune_runs(specs: Sequence[optim.RunSpec], build: Callable[[optim.RunSpec], train.Train],
              params_S, data, *, grid: Grid = Grid(), store: train.ResultStore | None = None,
              keys_S=None, data_per_seed: bool = True, threshold: float = 1.5,
              segment_steps: int | None = None, key_prefix: str = "",
              members_at_once: tuple[int, int] | None = None, drop_decided: bool = True,
              log: Callable[..., None] = logging.info) -> TunedRuns:
  """Tunes the step size of every run spec: `train.tune_sweep` of ``build(spec)``.

  Args:
    specs: the runs, e.g. ``config.runs`` of a `fields.Runs` field.
    build: spec -> `train.Train` (e.g. `train_builder`).
    params_S: initial parameters, one per seed.
    data: the data (one per seed if ``data_per_seed``), e.g. ``{"train": ..., "valid": ...}``.
    grid: the step sizes (`Grid.from_config`).
    store: finished rounds are saved here and reloaded on a rerun, under
      ``<key_prefix><run name>/round<i>``.
    keys_S, threshold, segment_steps: as for `train.tune_sweep`.
    members_at_once: ``(seeds, rates)`` computed at once (`train.Sweep`; None: all).
    drop_decided: as for `train.tune_sweep` (False: one compiled program per round, for
      compile-bound runs whose narrower re-compiles cost more than the dropped steps).
    log: progress printer (``log(format, *args)``).
  """
  tuned, steps = {}, None
  for spec in specs:
    run = build(spec)
    steps = run.history_steps
    result = train.tune_sweep(
        train.Sweep(run, data_per_seed=data_per_seed, members_at_once=members_at_once),
        params_S, data, keys_S=keys_S,
        exponents=grid.exponents, refine_rounds=grid.refine_rounds, threshold=threshold,
        store=store, store_key=key_prefix + spec.name, segment_steps=segment_steps,
        drop_decided=drop_decided, log=log)
    tuned[spec.name] = result
    log("%s: selected lr=%.3g (final loss %.4f)", spec.name, result.selection.learning_rate,
        float(np.mean(result.stats[result.selection.exponent].final)))
  return TunedRuns(tuned, np.asarray(steps))
