r"""Block diagnostics of the last layer of a deep model (paper H Fig 24 shapes).

Trains the library's SmallCNN (or, with --config.model=mlp, its MLP) with Adam
and GD on heavy-tailed labels with image-shaped inputs and records, inside the
scanned step every ``log_every`` steps, the per-class gradient norms of the
``head`` layer, Hutchinson estimates of its Hessian block traces (with
standard errors), the exact traces (the head's Hessian is that of a softmax
linear model on the penultimate features) and the mean true-class probability
per frequency group. Writes config.json, summary.json, metrics.npz,
metrics.jsonl and PNGs. A rerun with the same --workdir and config loads the
finished runs (and tuning rounds) from checkpoints/ instead of training again.

  python -m experiments.curvature_cnn --workdir /tmp/curv_cnn
  python -m experiments.curvature_cnn --workdir /tmp/curv_mlp --config.model=mlp
"""

import os
import time

import jax
import numpy as np
from absl import app, logging

from experiments.configs import curvature_cnn as config_lib
from imbalance_jax import cli, curvature, data, plotting, results, train
from imbalance_jax.curvature import figures, study
from imbalance_jax.models.cnn import SmallCNN
from imbalance_jax.models.mlp import MLP

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  data_key, init_key, probe_key, map_key = jax.random.split(jax.random.key(config.seed), 4)
  ds = data.heavy_tailed_images(data_key, config.m, config.image_size, signal=config.signal)
  widths = lambda text: tuple(int(f) for f in text.split(","))  # noqa: E731
  model = (SmallCNN(ds.num_classes, features=widths(config.cnn_features))
           if config.model == "cnn" else MLP(ds.num_classes, hidden=widths(config.mlp_hidden)))
  params = model.init(init_key, ds.x[:1])
  counts = np.asarray(ds.class_counts)
  groups = data.frequency_groups(counts, config.num_groups)
  features_fn = lambda p, x: model.apply(p, x, return_features=True)[1]  # noqa: E731
  logging.info("heavy-tailed images m=%d: x %s, c=%d, head %s", config.m, ds.x.shape,
               ds.num_classes, params["params"]["head"]["kernel"].shape)

  runs = {"adam": config.adam_run, "gd": config.gd_run}
  # Finished tuning rounds and runs are saved here; a rerun resumes after them.
  store = train.ResultStore(os.path.join(workdir, "checkpoints"))
  rates = study.select_step_sizes(model.apply, params, ds, runs,
                                  {"adam": config.adam_lr, "gd": config.gd_lr}, tune=config.tune,
                                  num_steps=config.num_steps, log=logging.info, store=store)
  metrics_fn = curvature.hutchinson_curvature_metrics(
      train.classification_objective(model.apply), groups, key=probe_key,
      num_probes=config.num_probes, features_fn=features_fn)
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
      "data": "random heavy-tailed labels, image-shaped U[0,1) inputs (no Barcoded MNIST offline)",
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
  }
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_npz(os.path.join(workdir, "metrics.npz"), steps=steps, class_counts=counts,
                    class_to_group=groups, map_classes=classes, trace_matrix_end=trace_matrix,
                    **{f"{k}/{n}": v for k, h in histories.items() for n, v in h.items()})
  results.write_jsonl(os.path.join(workdir, "metrics.jsonl"), (
      {"run": runs[k], "step": int(s), "loss": histories[k]["loss"][i],
       "group_prob": histories[k]["group_prob_G"][i], "spearman": corr[k]["spearman"][i],
       "spearman_exact": exact_corr[k]["spearman"][i]}
      for k in runs for i, s in enumerate(steps)))

  snaps = study.closest_steps(steps, [int(s) for s in config.snapshot_steps.split(",")])
  for key, fig_name in (("adam", "fig24_adam_scatter.png"), ("gd", "fig24_gd_scatter.png")):
    plotting.save_figure(figures.plot_block_scatter(
        steps, histories[key]["grad_norm_C"], histories[key]["trace_C"], snaps, groups,
        title=f"{config.model.upper()} head, {runs[key]} (lr={rates[key]:.2g}), Hutchinson traces "
              f"({config.num_probes} probes)", correlations=corr[key]["spearman"][snaps]),
        os.path.join(workdir, fig_name))
  plotting.save_figure(figures.plot_group_probabilities(
      steps, {runs[k]: histories[k]["group_prob_G"] for k in runs}, int(groups.max()) + 1),
      os.path.join(workdir, "group_probability.png"))
  plotting.save_figure(figures.plot_prediction_vs_measurement(
      {"Hutchinson vs exact trace": (exact, est)}, np.tile(groups, est.size // groups.size),
      suptitle=(f"{config.model.upper()} head: Hutchinson vs exact block traces "
                "(all records, both runs)"),
      xlabel="exact trace (linear model on the head's features)",
      ylabel=f"Hutchinson estimate ({config.num_probes} probes)"),
      os.path.join(workdir, "hutchinson_vs_exact.png"))
  plotting.save_figure(figures.plot_block_maps(
      [trace_matrix], [f"step {int(steps[-1])}"],
      suptitle=(f"{config.model.upper()} head block traces, {len(classes)} classes "
                "(log-uniform), Adam")),
      os.path.join(workdir, "block_traces_end.png"))
  logging.info("Spearman (Hutchinson traces): %s; Hutchinson vs exact: %s",
               summary["spearman"], summary["hutchinson_vs_exact"])
  logging.info("Wrote summary.json, metrics.npz, metrics.jsonl and figures to %s", workdir)


if __name__ == "__main__":
  app.run(main)
