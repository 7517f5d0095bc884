r"""Gradient / Hessian block diagnostics of the linear model (paper H Figs 7, 8, 23, 27, 28).

Trains Adam and GD on Random Heavy-Tailed Labels, recording inside the scanned
step (every ``log_every`` steps) the per-class gradient norms, exact Hessian
block traces, mean true-class probability per frequency group, the same along
the path -W_t (Adam), and block-trace / entrywise Hessian maps on 40 sampled
classes. Writes config.json, summary.json, metrics.npz, metrics.jsonl and
PNGs into --workdir. A rerun with the same --workdir and config loads the
finished runs (and tuning rounds) from checkpoints/ instead of training again.

  python -m experiments.curvature_linear --workdir /tmp/curv --config.preset=small
"""

import os
import time

import jax
import numpy as np
from absl import app, logging

from experiments.configs import curvature_linear as config_lib
from imbalance_jax import cli, curvature, data, models, plotting, results, train
from imbalance_jax.curvature import study

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  data_key, init_key, map_key = jax.random.split(jax.random.key(config.seed), 3)
  ds = data.heavy_tailed_labels(data_key, config.m, config.input_dist)
  model = models.LinearSoftmax(ds.num_classes, init_scheme=config.init_scheme)
  params = model.init(init_key, ds.x[:1])
  counts = np.asarray(ds.class_counts)
  groups = data.frequency_groups(counts, config.num_groups)
  keys = jax.random.split(map_key, 3)
  dims = curvature.sample_dims(keys[2], ds.x.shape[1], config.map_dims)
  maps = {s: (curvature.sample_classes(k, counts, config.map_classes, s), dims)
          for s, k in zip(curvature.SCHEMES, keys)}
  logging.info("m=%d: n=%d d=%d c=%d", config.m, *ds.x.shape, ds.num_classes)

  runs = {"adam": config.adam_run, "gd": config.gd_run}
  # Finished tuning rounds and runs are saved here; a rerun resumes after them.
  store = train.ResultStore(os.path.join(workdir, "checkpoints"))
  rates = study.select_step_sizes(model.apply, params, ds, runs,
                                  {"adam": config.adam_lr, "gd": config.gd_lr}, tune=config.tune,
                                  num_steps=config.num_steps, log=logging.info, store=store)
  histories, wall = {}, {}
  for key, negated in (("adam", True), ("gd", False)):
    metrics_fn = curvature.linear_curvature_metrics(
        groups, include_bias=config.include_bias, negated=negated,
        maps=maps if key == "adam" else None)
    start = time.perf_counter()
    steps, histories[key], _ = study.record_run(
        model.apply, params, ds, runs[key], rates[key], num_steps=config.num_steps,
        log_every=config.log_every, metrics_fn=metrics_fn, store=store, store_key=f"run/{key}")
    wall[key] = time.perf_counter() - start  # a run restored on resume counts its loading
    logging.info("%s lr=%.3g: loss %.3f -> %.3f in %.1fs", runs[key], rates[key],
                 histories[key]["loss"][0], histories[key]["loss"][-1], wall[key])

  adam, gd = histories["adam"], histories["gd"]
  corr = {"adam": study.correlations_over_time(adam["grad_norm_C"], adam["trace_C"]),
          "gd": study.correlations_over_time(gd["grad_norm_C"], gd["trace_C"]),
          "negated_path": study.correlations_over_time(adam["neg_grad_norm_C"],
                                                       adam["neg_trace_C"])}
  # Prop 2 concerns classes with pi_k = omega(1/c): report them separately.
  frequent = counts * ds.num_classes > ds.x.shape[0]
  sub = lambda key, prefix, t: study.rank_correlations(  # noqa: E731
      histories[key][prefix + "grad_norm_C"][t][frequent],
      histories[key][prefix + "trace_C"][t][frequent])["spearman"]
  ratios = {s: float(curvature.diag_to_offdiag_ratio(adam[f"trace_matrix_{s}"][-1]))
            for s in maps}
  # Prop 2 eq. (2) with the measured per-class p_k, at the snapshots after init.
  snaps = study.closest_steps(steps, [int(s) for s in config.snapshot_steps.split(",")])
  prop2 = {t: study.prop2_comparison(ds.x, ds.y, ds.num_classes, adam["class_prob_C"][t],
                                     adam["grad_norm_C"][t], adam["trace_C"][t],
                                     bias=config.include_bias) for t in snaps if steps[t] > 0}
  summary = {
      "spearman": {"adam_init": corr["adam"]["spearman"][0],
                   "adam_end": corr["adam"]["spearman"][-1],
                   "gd_end": corr["gd"]["spearman"][-1],
                   "negated_path_end": corr["negated_path"]["spearman"][-1]},
      "loglog_pearson": {"adam_init": corr["adam"]["loglog_pearson"][0],
                         "adam_end": corr["adam"]["loglog_pearson"][-1],
                         "gd_end": corr["gd"]["loglog_pearson"][-1],
                         "negated_path_end": corr["negated_path"]["loglog_pearson"][-1]},
      "spearman_frequent_classes": {"num_classes": int(frequent.sum()),
                                    "adam_init": sub("adam", "", 0),
                                    "adam_end": sub("adam", "", -1),
                                    "gd_end": sub("gd", "", -1),
                                    "negated_path_end": sub("adam", "neg_", -1)},
      "frequency_spearman": {
          f"{q}_{when}": study.rank_correlations(counts.astype(float),
                                                 adam[f"{q}_C"][t])["spearman"]
          for q in ("trace", "grad_norm") for when, t in (("adam_init", 0), ("adam_end", -1))},
      "diag_to_offdiag_trace_ratio": ratios["log_uniform"],
      "diag_to_offdiag_trace_ratio_by_sampling": ratios,
      "prop2_along_adam": {f"step_{int(steps[t])}": prop2[t][0] for t in prop2},
      "notes": ("spearman.* are over all classes; with PyTorch init the rare classes "
                "(pi_k < 1/c) line up at step 0 because their gradient and trace both scale "
                "with the random initial p_k (no frequency dependence: see "
                "frequency_spearman and spearman_frequent_classes, pi_k > 1/c, where Prop 2 "
                "applies). See docs/curvature.md."),
      "learning_rates": {runs[k]: rates[k] for k in runs},
      "final_loss": {runs[k]: float(histories[k]["loss"][-1]) for k in runs},
      "wall_seconds": wall,
      "m": config.m, "n": ds.x.shape[0], "d": ds.x.shape[1], "num_classes": ds.num_classes,
  }
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_npz(os.path.join(workdir, "metrics.npz"), steps=steps, class_counts=counts,
                    class_to_group=groups, map_dims=dims,
                    **{f"map_classes_{s}": c for s, (c, _) in maps.items()},
                    **{f"{k}/{name}": v for k, h in histories.items() for name, v in h.items()})
  results.write_jsonl(os.path.join(workdir, "metrics.jsonl"), (
      {"run": runs[k], "step": int(s), "loss": histories[k]["loss"][i],
       "group_prob": histories[k]["group_prob_G"][i],
       "spearman": corr[k]["spearman"][i], "loglog_pearson": corr[k]["loglog_pearson"][i],
       **({"negated_spearman": corr["negated_path"]["spearman"][i]} if k == "adam" else {})}
      for k in runs for i, s in enumerate(steps)))

  for key, name, fig_name in (("adam", "adam", "fig07_fig23b_adam_scatter.png"),
                              ("gd", "gd", "fig23a_gd_scatter.png"),
                              ("negated_path", "adam", "fig27_negated_path_scatter.png")):
    prefix = "neg_" if key == "negated_path" else ""
    h = histories[name]
    title = {"adam": f"Adam path ({runs['adam']}, lr={rates['adam']:.2g})",
             "gd": f"GD path ({runs['gd']}, lr={rates['gd']:.2g})",
             "negated_path": "Path -W_t of Adam's iterates"}[key]
    plotting.save_figure(plotting.curvature.plot_block_scatter(
        steps, h[prefix + "grad_norm_C"], h[prefix + "trace_C"], snaps, groups, title=title,
        correlations=corr[key]["spearman"][snaps]), os.path.join(workdir, fig_name))
  plotting.save_figure(plotting.curvature.plot_group_probabilities(
      steps, {f"GD ({runs['gd']})": gd["group_prob_G"],
              f"Adam ({runs['adam']})": adam["group_prob_G"]}, int(groups.max()) + 1),
      os.path.join(workdir, "fig23c_group_probability.png"))
  titles = [f"step {int(steps[t])}" for t in snaps]
  for scheme in maps:
    plotting.save_figure(plotting.curvature.plot_block_maps(
        [adam[f"trace_matrix_{scheme}"][t] for t in snaps], titles,
        suptitle=f"Block traces, {config.map_classes} classes ({scheme}), Adam"),
        os.path.join(workdir, f"fig08_block_traces_{scheme}.png"))
    plotting.save_figure(plotting.curvature.plot_block_maps(
        [adam[f"entries_{scheme}"][t] for t in snaps], titles, block_size=config.map_dims,
        suptitle=(f"Hessian entries, {config.map_classes} classes ({scheme}) x "
                  f"{config.map_dims} input dims, Adam")),
        os.path.join(workdir, f"fig28_hessian_entries_{scheme}.png"))
  plotting.save_figure(plotting.curvature.plot_prediction_vs_measurement(
      {f"{what}, step {int(steps[t])}": (arrays[f"{key}_predicted"], arrays[f"{key}_measured"])
       for what, key in (("Hessian trace", "trace"), ("grad norm / trace", "ratio"))
       for t, (_, arrays) in prop2.items()}, groups, ncols=len(prop2),
      suptitle="Prop 2 eq. (2) (with measured p_k) vs measurement along Adam's path"),
      os.path.join(workdir, "prop2_along_adam.png"))
  logging.info("Spearman: %s; diag/off-diag trace ratio: %s", summary["spearman"], ratios)
  logging.info("Wrote summary.json, metrics.npz, metrics.jsonl and figures to %s", workdir)


if __name__ == "__main__":
  app.run(main)
