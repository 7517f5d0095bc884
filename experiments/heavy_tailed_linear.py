r"""Softmax linear model on Random Heavy-Tailed Labels (paper H Figs 4, 15, 16, 19, 22).

Tunes the step size of every run (GD, normalized GD, sign descent and Adam,
each with and without momentum) by a seeds x step-sizes sweep compiled once per
round, and writes config.json, summary.json, dataset.json, metrics.jsonl and
PNG figures into --workdir. A rerun with the same --workdir and config resumes
from the checkpoints of finished sweep rounds and, with --config.segment_steps,
from the last saved segment of an interrupted round.

  python -m experiments.heavy_tailed_linear --workdir /tmp/htl
  python -m experiments.heavy_tailed_linear --workdir /tmp/htl8 --config.preset=small
"""

import os

import jax
import numpy as np
from absl import app, logging

from experiments.configs import heavy_tailed_linear as config_lib
from imbalance_jax import cli, data, metrics, models, optim, plotting, reporting, results, train

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  specs = optim.parse_runs(config.runs, config.loss_weighting)

  data_key, init_key = jax.random.split(jax.random.key(config.seed))
  make_data = lambda key: data.heavy_tailed_labels(key, config.m, config.input_dist)
  datasets = jax.vmap(make_data)(jax.random.split(data_key, config.num_seeds))
  model = models.LinearSoftmax(datasets.num_classes, init_scheme=config.init_scheme)
  params_S = jax.vmap(lambda k: model.init(k, datasets.x[0, :1]))(
      jax.random.split(init_key, config.num_seeds))
  counts = np.asarray(datasets.class_counts[0])
  groups = data.frequency_groups(counts, config.num_groups)
  n, d = datasets.x.shape[1:]
  logging.info("Random heavy-tailed labels m=%d: n=%d, d=%d, c=%d, %d groups, %d seeds",
               config.m, n, d, datasets.num_classes, groups.max() + 1, config.num_seeds)
  results.write_json(os.path.join(workdir, "dataset.json"), {
      "m": config.m, "n": n, "d": d, "num_classes": datasets.num_classes,
      "class_counts": counts, "class_to_group": groups,
      "group_share": np.bincount(groups, weights=counts) / counts.sum()})

  store = train.ResultStore(os.path.join(workdir, "checkpoints"))
  grid = dict(exponents=train.SPARSE_EXPONENTS, refine_rounds=config.refine_rounds)
  if config.learning_rate > 0:
    grid = dict(exponents=(float(np.log10(config.learning_rate)),), refine_rounds=0)
  tuned = {}
  for spec in specs:
    run = train.make_train(train.classification_objective(model.apply, spec.weighting),
                           optim.injectable(spec.optimizer, spec.momentum),
                           num_steps=config.num_steps, log_every=config.log_every,
                           metrics_fn=metrics.classification_metrics(groups))
    tuned[spec.name] = train.tune_sweep(
        train.Sweep(run), params_S, datasets, **grid, threshold=config.divergence_threshold,
        store=store, store_key=spec.name, segment_steps=config.segment_steps or None,
        log=logging.info)
    selection = tuned[spec.name].selection
    logging.info("%s: selected lr=%.3g (final loss %.4f)", spec.name, selection.learning_rate,
                 np.mean(tuned[spec.name].stats[selection.exponent].final))

  steps = run.history_steps
  summary = {name: reporting.summarize_run(t) for name, t in tuned.items()}
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_jsonl(os.path.join(workdir, "metrics.jsonl"),
                      (r for name, t in tuned.items()
                       for r in reporting.history_records(name, t, steps)))
  best = {name: t.best_history for name, t in tuned.items()}
  rates = {name: t.selection.learning_rate for name, t in tuned.items()}
  plotting.save_figure(
      plotting.linear.plot_heavy_tailed_overview(counts, groups, steps, best, rates),
      os.path.join(workdir, "overview.png"))
  plotting.save_figure(plotting.linear.plot_group_grid(steps, best, rates, int(groups.max()) + 1),
                       os.path.join(workdir, "all_runs.png"))
  if config.num_steps >= 1000:  # paper H Fig. 16: the same runs seen at growing horizons
    plotting.save_figure(plotting.linear.plot_horizons(steps, best, rates),
                         os.path.join(workdir, "horizons.png"))
  for name, entry in summary.items():
    logging.info("%-28s lr=%-9.3g final loss=%.4f  most frequent group=%.4f  rarest group=%.4f",
                 name, entry["learning_rate"], entry["final_loss"],
                 entry["final_group_losses"][0], entry["final_group_losses"][-1])
  logging.info("Wrote summary.json, metrics.jsonl and figures to %s", workdir)


if __name__ == "__main__":
  app.run(main)
