r"""Softmax linear model on Random Heavy-Tailed Labels (paper H Figs 4, 15, 16, 19, 22).

Tunes the step size of every run (GD, normalized GD, sign descent and Adam,
each with and without momentum) by a seeds x step-sizes sweep compiled once per
round, and writes config.json, summary.json, dataset.json, metrics.jsonl and
PNG figures into --workdir. A rerun with the same --workdir and config resumes
from the checkpoints of finished sweep rounds and, with --config.segment_steps,
from the last saved segment of an interrupted round.

Presets: ``quick`` m=7 on CPU in a few minutes, ``small`` m=8 (paper App. C;
about an hour on a 2-core CPU), ``paper`` m=11 (needs a GPU); ``fig16`` runs GD
for 10,000 steps at one step size (the loss of every group eventually falls);
``fig22`` compares 1/pi and 1/sqrt(pi) reweighting of GD with GD and Adam.
Fig 15's inputs: ``--config.input_dist=normal_0``.

  python -m experiments.heavy_tailed_linear --workdir /tmp/htl
  python -m experiments.heavy_tailed_linear --workdir /tmp/htl8 --config.preset=small
"""

import dataclasses

import jax
import numpy as np
from absl import logging

from imbalance_jax import data, experiment as ex, losses, models, optim, plotting
from imbalance_jax.experiment import fields
from imbalance_jax.models.linear import INITS
from imbalance_jax.train import SPARSE_EXPONENTS

_ALL = ",".join(optim.PAPER_RUNS)
_STEPS = dict(num_seeds=3, log_every=10, refine_rounds=1, segment_steps=0, learning_rate=0.0)


def estimate_bytes(config) -> int:
  """Rough peak memory: the data of every seed plus every sweep member's working set.

  Per member: logits, probabilities and their gradient (``3 n c``) and the
  parameters, gradients and two optimizer moments (``4 c (d + 1)``); a sweep
  round holds ``num_seeds`` x (8 sparse step sizes, or 1 fixed) members.
  """
  m, seeds = config.m, config.num_seeds
  n, d, c = m * 2**m, (m + 1) * 2**m, 2**m - 1
  rates = 1 if config.learning_rate > 0 else len(SPARSE_EXPONENTS)
  return ex.float_bytes() * (seeds * n * d + seeds * rates * (3 * n * c + 4 * c * (d + 1)))


def validate(config) -> None:
  ex.check_step_schedule(config)
  m = config.m
  ex.check_memory(estimate_bytes(config), what=(
      f"config.m={m} with config.num_seeds={config.num_seeds} (n={m * 2**m}, "
      f"d={(m + 1) * 2**m}, c={2**m - 1})"),
      lower="config.m or config.num_seeds (presets: quick m=7, small m=8, paper m=11)")


# The linear task's sweep fields, shared with experiments.optimizer_catalogue.
SWEEP_FIELDS = dict(
    m=fields.Int(minimum=2, maximum=60,
                 help="frequency levels: n = m 2^m, d = (m+1) 2^m, 2^m - 1 classes (m=1: one)"),
    num_seeds=fields.Int(minimum=1),
    num_steps=fields.Int(minimum=1, help="full-batch steps per run"),
    log_every=fields.Int(minimum=1),
    refine_rounds=fields.Int(minimum=0, maximum=5, help="1: half powers, 2: also quarters"),
    segment_steps=fields.Int(minimum=0, help=">0: checkpoint every k steps of a round"),
    runs=fields.Runs(),
    learning_rate=fields.LearningRate())


CONFIG = ex.Config(
    presets={
        "quick": dict(_STEPS, m=7, num_steps=300, runs=_ALL),
        "small": dict(_STEPS, m=8, num_steps=1000, runs=_ALL),
        "paper": dict(_STEPS, m=11, num_steps=1000, segment_steps=100, runs=_ALL),
        "fig16": dict(_STEPS, m=7, num_steps=10_000, refine_rounds=0, runs="gd",
                      learning_rate=0.1),
        "fig22": dict(_STEPS, m=7, num_steps=300, runs="gd+m,adam+m,gd+m@inverse_sqrt,"
                      "gd+m@inverse"),
    },
    fields=dict(
        **SWEEP_FIELDS,
        loss_weighting=fields.Choice(losses.WEIGHTINGS, default="none",
                                     help="applied to runs without an explicit @weighting"),
        input_dist=fields.Choice(data.INPUT_DISTRIBUTIONS, default="uniform",
                                 help="uniform | normal_1 | normal_0 (Fig. 15)"),
        init_scheme=fields.Choice(INITS, default="pytorch"),
        num_groups=fields.Int(minimum=1, default=10),
        divergence_threshold=fields.DivergenceThreshold(),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """The sweep on abstract shapes (`experiment.plan`); analytic FLOPs: the logits and the
  weight gradient, ``2 n d c`` each."""
  key = jax.random.key(0)
  ds = jax.eval_shape(lambda k: data.heavy_tailed_labels(k, config.m, config.input_dist), key)
  model = models.LinearSoftmax(ds.num_classes, init_scheme=config.init_scheme)
  groups = data.frequency_groups(data.heavy_tailed_class_counts(config.m), config.num_groups)
  build = ex.train_builder(model.apply, num_steps=config.num_steps, log_every=config.log_every,
                           groups=groups)
  (n, d), c = ds.x.shape, ds.num_classes
  return [ex.plan.StepPlan("all runs", build(config.runs[0]),
                           ex.plan.init_shapes(model.init, ds.x), ds,
                           num_runs=len(config.runs), num_seeds=config.num_seeds,
                           grid=ex.Grid.from_config(config), data_per_seed=True,
                           analytic_flops=4.0 * n * d * c)]


def run(config, workdir: str) -> dict:
  specs = [s if "@" in s.name else dataclasses.replace(s, weighting=config.loss_weighting)
           for s in config.runs]
  data_key, init_key = jax.random.split(jax.random.key(config.seed))
  make_data = lambda key: data.heavy_tailed_labels(key, config.m, config.input_dist)  # noqa: E731
  datasets = jax.vmap(make_data)(jax.random.split(data_key, config.num_seeds))
  model = models.LinearSoftmax(datasets.num_classes, init_scheme=config.init_scheme)
  params_S = jax.vmap(lambda k: model.init(k, datasets.x[0, :1]))(
      jax.random.split(init_key, config.num_seeds))
  counts = np.asarray(datasets.class_counts[0])
  groups = data.frequency_groups(counts, config.num_groups)
  n, d = datasets.x.shape[1:]
  logging.info("Random heavy-tailed labels m=%d: n=%d, d=%d, c=%d, %d groups, %d seeds",
               config.m, n, d, datasets.num_classes, groups.max() + 1, config.num_seeds)
  tuned = ex.tune_runs(
      specs, ex.train_builder(model.apply, num_steps=config.num_steps,
                              log_every=config.log_every, groups=groups),
      params_S, datasets, grid=ex.Grid.from_config(config), store=ex.store(workdir),
      threshold=config.divergence_threshold, segment_steps=config.segment_steps or None)
  steps, best, rates = tuned.steps, tuned.best_histories(), tuned.learning_rates()
  figures = {"overview.png": plotting.linear.plot_heavy_tailed_overview(counts, groups, steps,
                                                                        best, rates),
             "all_runs.png": plotting.linear.plot_group_grid(steps, best, rates,
                                                             int(groups.max()) + 1)}
  if config.num_steps >= 1000:  # paper H Fig. 16: the same runs seen at growing horizons
    figures["horizons.png"] = plotting.linear.plot_horizons(steps, best, rates)
  summary = tuned.summaries()
  ex.write_outputs(workdir, summary=summary, metrics=tuned.records(), figures=figures, files={
      "dataset.json": {"m": config.m, "n": n, "d": d, "num_classes": datasets.num_classes,
                       "class_counts": counts, "class_to_group": groups,
                       "group_share": np.bincount(groups, weights=counts) / counts.sum()}})
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
