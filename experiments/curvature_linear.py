r"""Gradient / Hessian block diagnostics of the linear model (paper H Figs 7, 8, 23, 27, 28).

Trains Adam and GD on Random Heavy-Tailed Labels, recording inside the scanned
step (every ``log_every`` steps) the per-class gradient norms, exact Hessian
block traces, mean true-class probability per frequency group, the same along
the path -W_t (Adam), and block-trace / entrywise Hessian maps on 40 sampled
classes. Writes config.json, summary.json, metrics.npz, metrics.jsonl and
PNGs into --workdir. A rerun with the same --workdir and config loads the
finished runs (and tuning rounds) from checkpoints/ instead of training again.

Presets: ``quick`` m=7 (about a minute on a 2-core CPU), ``small`` m=8 (a few
minutes), ``paper`` m=11 (Fig 7's scale: needs a GPU or patience). Step sizes
default to the values the authors' code selects (DESIGN.md, "Step sizes the
authors found": m=7, 300 steps: GD 10^-1, Adam 10^-2.5; m=11: GD 10^-2.5, Adam
10^-3.5); m=8 reuses the m=7 values. ``--config.tune=True`` instead tunes both
on one seed with the library's paper H App. A.4 selection (sparse grid
1e-6..1e1, then half powers).

  python -m experiments.curvature_linear --workdir /tmp/curv --config.preset=small
"""

import jax
import numpy as np
from absl import logging

from imbalance_jax import curvature, data, experiment as ex, models, plotting
from imbalance_jax.curvature import study
from imbalance_jax.experiment import fields
from imbalance_jax.models.linear import INITS
from imbalance_jax.train import SPARSE_EXPONENTS

RUNS = ("adam", "gd")  # the run keys; Adam's run also records the negated path and maps


def problem_size(m: int) -> tuple[int, int, int]:
  """``(n, d, c)`` of Random Heavy-Tailed Labels: ``m 2^m``, ``(m+1) 2^m``, ``2^m - 1``."""
  return m * 2**m, (m + 1) * 2**m, 2**m - 1


def estimate_bytes(config) -> int:
  """Rough peak memory: the data, and per run member ``3 n c + 4 c (d + 1)`` numbers.

  With ``tune`` a sweep over the 8 sparse step sizes is the largest step.
  """
  n, d, c = problem_size(config.m)
  members = len(SPARSE_EXPONENTS) if config.tune else 1
  return ex.float_bytes() * (n * d + members * (3 * n * c + 4 * c * (d + 1)))


def validate(config) -> None:
  ex.check_step_schedule(config)
  if max(config.snapshot_steps) > config.num_steps:
    raise ValueError(f"config.snapshot_steps must lie in [0, config.num_steps="
                     f"{config.num_steps}], got {config.raw.snapshot_steps!r}")
  m = config.m
  n, d, c = problem_size(m)
  ex.check_memory(estimate_bytes(config), what=f"config.m={m} (n={n}, d={d}, c={c})",
                  lower="config.m (presets: quick m=7, small m=8, paper m=11)")
  if config.map_classes > c:
    raise ValueError(f"config.map_classes must be in [2, {c}] (the classes at m={m}), "
                     f"got {config.map_classes}")
  if config.map_dims > d:
    raise ValueError(f"config.map_dims must be in [1, {d}] (the input dims at m={m}), "
                     f"got {config.map_dims}")


CONFIG = ex.Config(
    presets={
        "quick": dict(m=7, num_steps=300, log_every=10, adam_lr=10**-2.5, gd_lr=10**-1.0,
                      snapshot_steps="0,10,50,300"),
        "small": dict(m=8, num_steps=500, log_every=10, adam_lr=10**-2.5, gd_lr=10**-1.0,
                      snapshot_steps="0,10,100,500"),
        "paper": dict(m=11, num_steps=1000, log_every=10, adam_lr=10**-3.5, gd_lr=10**-2.5,
                      snapshot_steps="0,10,100,1000"),
    },
    fields=dict(
        m=fields.Int(minimum=2, maximum=60, help="n = m 2^m, d = (m+1) 2^m, c = 2^m - 1"),
        num_steps=fields.Int(minimum=1, help="full-batch steps per run"),
        log_every=fields.Int(minimum=1, help="diagnostics recorded every k steps"),
        adam_lr=fields.Positive(help="step size of adam_run (unless tune)"),
        gd_lr=fields.Positive(help="step size of gd_run (unless tune)"),
        snapshot_steps=fields.IntList(minimum=0,
                                      help="steps of the scatter / map panels (nearest logged)"),
        adam_run=fields.Run(default="adam+m"),
        gd_run=fields.Run(default="gd"),
        tune=fields.Bool(default=False,
                         help="tune both step sizes instead of using adam_lr / gd_lr"),
        map_classes=fields.Int(minimum=2, default=40,
                               help="classes in the block maps (Figs 8, 28)"),
        map_dims=fields.Int(minimum=1, default=4, help="input dims per class in the entrywise "
                            "map: 40 x 4 = 160 x 160"),
        include_bias=fields.Bool(default=True, help="block k = (w_k, b_k)"),
        input_dist=fields.Choice(data.INPUT_DISTRIBUTIONS, default="uniform"),
        init_scheme=fields.Choice(INITS, default="pytorch"),
        num_groups=fields.Int(minimum=1, default=10),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def _correlations(histories) -> dict[str, dict[str, np.ndarray]]:
  """Gradient norm vs trace correlations over time along Adam, GD and Adam's -W_t."""
  adam, gd = histories["adam"], histories["gd"]
  return {"adam": study.correlations_over_time(adam["grad_norm_C"], adam["trace_C"]),
          "gd": study.correlations_over_time(gd["grad_norm_C"], gd["trace_C"]),
          "negated_path": study.correlations_over_time(adam["neg_grad_norm_C"],
                                                       adam["neg_trace_C"])}


def _at_init_and_end(corr, name: str) -> dict[str, float]:
  return {"adam_init": corr["adam"][name][0], "adam_end": corr["adam"][name][-1],
          "gd_end": corr["gd"][name][-1], "negated_path_end": corr["negated_path"][name][-1]}


def _frequency_summaries(histories, counts, frequent) -> dict[str, dict]:
  """Correlations over the frequent classes only, and of trace / gradient with frequency."""
  adam = histories["adam"]
  sub = lambda key, prefix, t: study.rank_correlations(  # noqa: E731
      histories[key][prefix + "grad_norm_C"][t][frequent],
      histories[key][prefix + "trace_C"][t][frequent])["spearman"]
  return {
      "spearman_frequent_classes": {"num_classes": int(frequent.sum()),
                                    "adam_init": sub("adam", "", 0),
                                    "adam_end": sub("adam", "", -1), "gd_end": sub("gd", "", -1),
                                    "negated_path_end": sub("adam", "neg_", -1)},
      "frequency_spearman": {
          f"{q}_{when}": study.rank_correlations(counts.astype(float),
                                                 adam[f"{q}_C"][t])["spearman"]
          for q in ("trace", "grad_norm") for when, t in (("adam_init", 0), ("adam_end", -1))}}


_NOTES = ("spearman.* are over all classes; with PyTorch init the rare classes "
          "(pi_k < 1/c) line up at step 0 because their gradient and trace both scale "
          "with the random initial p_k (no frequency dependence: see "
          "frequency_spearman and spearman_frequent_classes, pi_k > 1/c, where Prop 2 "
          "applies). See docs/curvature.md.")


def _summary(config, ds, counts, names, rates, recorded, corr, maps, prop2) -> dict:
  histories, steps = recorded.histories, recorded.steps
  ratios = {s: float(curvature.diag_to_offdiag_ratio(histories["adam"][f"trace_matrix_{s}"][-1]))
            for s in maps}
  # Prop 2 concerns classes with pi_k = omega(1/c): report them separately.
  frequent = counts * ds.num_classes > ds.x.shape[0]
  return {
      "spearman": _at_init_and_end(corr, "spearman"),
      "loglog_pearson": _at_init_and_end(corr, "loglog_pearson"),
      **_frequency_summaries(histories, counts, frequent),
      "diag_to_offdiag_trace_ratio": ratios["log_uniform"],
      "diag_to_offdiag_trace_ratio_by_sampling": ratios,
      "prop2_along_adam": {f"step_{int(steps[t])}": prop2[t][0] for t in prop2},
      "notes": _NOTES,
      "learning_rates": {names[k]: rates[k] for k in RUNS},
      "final_loss": {names[k]: float(histories[k]["loss"][-1]) for k in RUNS},
      "wall_seconds": recorded.wall_seconds,
      "m": config.m, "n": ds.x.shape[0], "d": ds.x.shape[1], "num_classes": ds.num_classes,
  }


def _records(names, recorded, corr):
  """metrics.jsonl: per run and logged step, the loss, group probabilities, correlations."""
  for k in RUNS:
    h = recorded.histories[k]
    for i, s in enumerate(recorded.steps):
      yield {"run": names[k], "step": int(s), "loss": h["loss"][i],
             "group_prob": h["group_prob_G"][i], "spearman": corr[k]["spearman"][i],
             "loglog_pearson": corr[k]["loglog_pearson"][i],
             **({"negated_spearman": corr["negated_path"]["spearman"][i]} if k == "adam"
                else {})}


def _scatter_figures(names, rates, recorded, corr, snaps, groups) -> dict:
  titles = {"adam": f"Adam path ({names['adam']}, lr={rates['adam']:.2g})",
            "gd": f"GD path ({names['gd']}, lr={rates['gd']:.2g})",
            "negated_path": "Path -W_t of Adam's iterates"}
  figures = {}
  for key, run, prefix, fig_name in (
      ("adam", "adam", "", "fig07_fig23b_adam_scatter.png"),
      ("gd", "gd", "", "fig23a_gd_scatter.png"),
      ("negated_path", "adam", "neg_", "fig27_negated_path_scatter.png")):
    h = recorded.histories[run]
    figures[fig_name] = plotting.curvature.plot_block_scatter(
        recorded.steps, h[prefix + "grad_norm_C"], h[prefix + "trace_C"], snaps, groups,
        title=titles[key], correlations=corr[key]["spearman"][snaps])
  return figures


def _map_figures(config, maps, adam, steps, snaps) -> dict:
  titles = [f"step {int(steps[t])}" for t in snaps]
  figures = {}
  for scheme in maps:
    figures[f"fig08_block_traces_{scheme}.png"] = plotting.curvature.plot_block_maps(
        [adam[f"trace_matrix_{scheme}"][t] for t in snaps], titles,
        suptitle=f"Block traces, {config.map_classes} classes ({scheme}), Adam")
    figures[f"fig28_hessian_entries_{scheme}.png"] = plotting.curvature.plot_block_maps(
        [adam[f"entries_{scheme}"][t] for t in snaps], titles, block_size=config.map_dims,
        suptitle=(f"Hessian entries, {config.map_classes} classes ({scheme}) x "
                  f"{config.map_dims} input dims, Adam"))
  return figures


def _figures(config, names, rates, recorded, corr, snaps, groups, maps, prop2) -> dict:
  steps, adam, gd = recorded.steps, recorded.histories["adam"], recorded.histories["gd"]
  figures = _scatter_figures(names, rates, recorded, corr, snaps, groups)
  figures["fig23c_group_probability.png"] = plotting.curvature.plot_group_probabilities(
      steps, {f"GD ({names['gd']})": gd["group_prob_G"],
              f"Adam ({names['adam']})": adam["group_prob_G"]}, int(groups.max()) + 1)
  figures.update(_map_figures(config, maps, adam, steps, snaps))
  figures["prop2_along_adam.png"] = plotting.curvature.plot_prediction_vs_measurement(
      {f"{what}, step {int(steps[t])}": (arrays[f"{key}_predicted"], arrays[f"{key}_measured"])
       for what, key in (("Hessian trace", "trace"), ("grad norm / trace", "ratio"))
       for t, (_, arrays) in prop2.items()}, groups, ncols=len(prop2),
      suptitle="Prop 2 eq. (2) (with measured p_k) vs measurement along Adam's path")
  return figures


def _problem(config):
  """The data, the model, its initial parameters and the block maps' samples."""
  data_key, init_key, map_key = jax.random.split(jax.random.key(config.seed), 3)
  ds = data.heavy_tailed_labels(data_key, config.m, config.input_dist)
  model = models.LinearSoftmax(ds.num_classes, init_scheme=config.init_scheme)
  params = model.init(init_key, ds.x[:1])
  keys = jax.random.split(map_key, 3)
  dims = curvature.sample_dims(keys[2], ds.x.shape[1], config.map_dims)
  counts = np.asarray(ds.class_counts)
  maps = {s: (curvature.sample_classes(k, counts, config.map_classes, s), dims)
          for s, k in zip(curvature.SCHEMES, keys)}
  return ds, model, params, maps, dims


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """Both recorded runs on abstract shapes (`experiment.plan`; the logged step holds the
  curvature metrics). ``config.tune`` adds paper H's grid per run."""
  ds = jax.eval_shape(lambda k: data.heavy_tailed_labels(k, config.m, config.input_dist),
                      jax.random.key(0))
  model = models.LinearSoftmax(ds.num_classes, init_scheme=config.init_scheme)
  counts = data.heavy_tailed_class_counts(config.m)
  groups = data.frequency_groups(counts, config.num_groups)
  keys = jax.random.split(jax.random.key(0), 3)
  dims = curvature.sample_dims(keys[2], ds.x.shape[1], config.map_dims)
  maps = {s: (curvature.sample_classes(k, counts, config.map_classes, s), dims)
          for s, k in zip(curvature.SCHEMES, keys)}
  (n, d), c = ds.x.shape, ds.num_classes
  steps = []
  for k, spec in {"adam": config.adam_run, "gd": config.gd_run}.items():
    metrics_fn = curvature.linear_curvature_metrics(
        groups, include_bias=config.include_bias, negated=k == "adam",
        maps=maps if k == "adam" else None)
    run = ex.train_builder(model.apply, num_steps=config.num_steps, log_every=config.log_every,
                           metrics_fn=metrics_fn)(spec)
    rate = config.adam_lr if k == "adam" else config.gd_lr
    grid = ex.Grid() if config.tune else ex.Grid((float(np.log10(rate)),), 0)
    steps.append(ex.plan.StepPlan(spec.name, run, ex.plan.init_shapes(model.init, ds.x), ds,
                                  grid=grid, analytic_flops=4.0 * n * d * c))
  return steps


def _prop2_along_adam(config, ds, recorded, snaps) -> dict:
  """Prop 2 eq. (2) with the measured per-class p_k, at the snapshots after init."""
  steps, adam = recorded.steps, recorded.histories["adam"]
  return {t: study.prop2_comparison(ds.x, ds.y, ds.num_classes, adam["class_prob_C"][t],
                                    adam["grad_norm_C"][t], adam["trace_C"][t],
                                    bias=config.include_bias) for t in snaps if steps[t] > 0}


def run(config, workdir: str) -> dict:
  ds, model, params, maps, dims = _problem(config)
  counts = np.asarray(ds.class_counts)
  groups = data.frequency_groups(counts, config.num_groups)
  logging.info("m=%d: n=%d d=%d c=%d", config.m, *ds.x.shape, ds.num_classes)
  runs = {"adam": config.adam_run, "gd": config.gd_run}
  names = {k: spec.name for k, spec in runs.items()}
  store = ex.store(workdir)  # finished tuning rounds and runs; a rerun resumes after them
  rates = study.select_step_sizes(model.apply, params, ds, runs,
                                  {"adam": config.adam_lr, "gd": config.gd_lr}, tune=config.tune,
                                  num_steps=config.num_steps, log=logging.info, store=store)
  metrics_fns = {k: curvature.linear_curvature_metrics(
      groups, include_bias=config.include_bias, negated=k == "adam",
      maps=maps if k == "adam" else None) for k in RUNS}
  recorded = study.record_runs(model.apply, params, ds, runs, rates, metrics_fns,
                               num_steps=config.num_steps, log_every=config.log_every,
                               store=store, log=logging.info)
  corr = _correlations(recorded.histories)
  snaps = study.closest_steps(recorded.steps, config.snapshot_steps)
  prop2 = _prop2_along_adam(config, ds, recorded, snaps)
  summary = _summary(config, ds, counts, names, rates, recorded, corr, maps, prop2)
  ex.write_outputs(
      workdir, summary=summary, metrics=_records(names, recorded, corr),
      figures=_figures(config, names, rates, recorded, corr, snaps, groups, maps, prop2),
      arrays={"metrics.npz": dict(
          steps=recorded.steps, class_counts=counts, class_to_group=groups, map_dims=dims,
          **{f"map_classes_{s}": c for s, (c, _) in maps.items()},
          **{f"{k}/{name}": v for k, h in recorded.histories.items() for name, v in h.items()})})
  logging.info("Spearman: %s; diag/off-diag trace ratio: %s", summary["spearman"],
               summary["diag_to_offdiag_trace_ratio_by_sampling"])
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
