r"""Issue 8 item 4: wall time of step-size tuning with diverged members dropped.

Each figure is a ratio (without dropping / with dropping) measured in the same
process, runs alternating in order, each on a fresh `Sweep` so compile time
counts as it does for a new user (dropping compiles one segment program per
member-count bucket).

(a) ``experiments.heavy_tailed_linear`` quick preset's sweeps: m=7, 3 seeds,
    300 steps, log every 10, sparse grid 1e-6..1e1 then one refinement round,
    `tune_sweep` per run of ``optim.PAPER_RUNS`` (``--runs`` picks a subset).
    Also checks that selections and summary numbers agree.
(b) ``curvature_linear``'s step-size selection (``--config.tune=True``,
    quick preset: m=7, one seed, 300 steps, adam+m and gd over the sparse
    grid), as `imbalance_jax.curvature.study.tune_learning_rate` builds it
    (``log_every=num_steps``: one segment, so nothing can be dropped) and with
    ``log_every=30`` (10 segments).

  python benchmarks/bench_member_dropping.py                 # (a) all 8 runs, (b)
  python benchmarks/bench_member_dropping.py --only a --runs sign_descent,adam+m
  python benchmarks/bench_member_dropping.py --only a --runs sign_descent --warm
"""

import argparse
import time

import jax
import numpy as np

from imbalance_jax import data, metrics, models, optim, reporting, results, train


def heavy_tailed_quick(num_seeds=3, m=7):
  """The quick preset's data sets and initial parameters (as the binary builds them)."""
  data_key, init_key = jax.random.split(jax.random.key(0))
  datasets = jax.vmap(lambda k: data.heavy_tailed_labels(k, m))(
      jax.random.split(data_key, num_seeds))
  model = models.LinearSoftmax(datasets.num_classes)
  params_S = jax.vmap(lambda k: model.init(k, datasets.x[0, :1]))(
      jax.random.split(init_key, num_seeds))
  groups = data.frequency_groups(np.asarray(datasets.class_counts[0]), 10)
  return datasets, model, params_S, groups


def timed_pair(make_call, first_drop: bool):
  """``({"wall", "cpu"}: [without dropping, with]), results``; order set by ``first_drop``.

  CPU time (all threads of this process) is printed beside wall time: on a
  shared machine it is much less sensitive to other processes' load.
  """
  out, times = {}, {"wall": [0.0, 0.0], "cpu": [0.0, 0.0]}
  for drop in ((True, False) if first_drop else (False, True)):
    wall, cpu = time.perf_counter(), time.process_time()
    out[drop] = make_call(drop)
    times["wall"][drop] = time.perf_counter() - wall
    times["cpu"][drop] = time.process_time() - cpu
  return times, out


def fmt(times) -> str:
  (w0, w1), (c0, c1) = times["wall"], times["cpu"]
  return (f"wall {w0:6.1f}s -> {w1:6.1f}s ratio {w0 / w1:5.2f} | cpu {c0:6.1f}s -> {c1:6.1f}s "
          f"ratio {c0 / c1:5.2f}")


def add(total, times):
  for k in total:
    total[k] = [a + b for a, b in zip(total[k], times[k])]


def max_rel_diff(a, b) -> float:
  worst = 0.0
  for x, y in zip(jax.tree.leaves(results.to_jsonable(a)), jax.tree.leaves(results.to_jsonable(b))):
    if isinstance(x, float) and isinstance(y, float) and x != y:
      worst = max(worst, abs(x - y) / max(abs(x), abs(y)))
  return worst


def bench_heavy_tailed(runs, warm=False):
  datasets, model, params_S, groups = heavy_tailed_quick()
  logs = []
  total = {"wall": [0.0, 0.0], "cpu": [0.0, 0.0]}
  identical, worst = True, 0.0
  print(f"(a) heavy_tailed_linear quick: m=7, 3 seeds, 300 steps, runs {','.join(runs)}"
        + (" (compiled programs reused: compute only)" if warm else " (fresh, compiles included)"))
  for i, name in enumerate(runs):
    spec = optim.parse_run(name)
    run = train.make_train(train.classification_objective(model.apply, spec.weighting),
                           optim.injectable(spec.optimizer, spec.momentum), num_steps=300,
                           log_every=10, metrics_fn=metrics.classification_metrics(groups))

    sweeps = {drop: train.Sweep(run) for drop in (False, True)}

    def call(drop):
      sweep = sweeps[drop] if warm else train.Sweep(run)
      return train.tune_sweep(sweep, params_S, datasets, refine_rounds=1, drop_decided=drop,
                              log=logs.append)

    if warm:
      for drop in (False, True):
        call(drop)

    seen = len(logs)
    times, out = timed_pair(call, first_drop=bool(i % 2))
    add(total, times)
    dropped = sum("dropped early" in line for line in logs[seen:])
    pick = lambda sel: (sel.exponent, sel.diverged, sel.fallback_from)  # noqa: E731
    same = pick(out[False].selection) == pick(out[True].selection)  # scores: in the summary
    summary = [reporting.summarize_run(out[d]) for d in (False, True)]
    rel = max_rel_diff(*summary)
    identical &= same and summary[0] == summary[1]
    worst = max(worst, rel)
    print(f"  {name:<16} {fmt(times)}  (rounds with drops: {dropped}; same step size, diverged set, fallback: {same};"
          f" summary max rel diff {rel:.1e})", flush=True)
  print(f"  {'total':<16} {fmt(total)}; selections and summaries bitwise identical: "
        f"{identical} (max rel diff {worst:.1e})", flush=True)


def bench_curvature(log_everies=(30, 300)):
  ds = data.heavy_tailed_labels(jax.random.split(jax.random.key(0), 3)[0], 7)
  model = models.LinearSoftmax(ds.num_classes)
  params = model.init(jax.random.split(jax.random.key(0), 3)[1], ds.x[:1])
  add_seed = lambda tree: jax.tree.map(lambda v: v[None], tree)  # noqa: E731
  print("(b) curvature_linear --config.tune=True quick: m=7, 1 seed, 300 steps, adam+m and gd")
  for log_every in log_everies:
    total = {"wall": [0.0, 0.0], "cpu": [0.0, 0.0]}
    chosen = {}
    for i, name in enumerate(("adam+m", "gd")):
      spec = optim.parse_run(name)
      run = train.make_train(train.classification_objective(model.apply, spec.weighting),
                             optim.injectable(spec.optimizer, spec.momentum), num_steps=300,
                             log_every=log_every)

      def call(drop):
        return train.tune_sweep(train.Sweep(run), add_seed(params), add_seed(ds),
                                exponents=train.SPARSE_EXPONENTS, drop_decided=drop,
                                log=lambda _: None)

      times, out = timed_pair(call, first_drop=bool(i % 2))
      add(total, times)
      chosen[name] = (out[False].selection.learning_rate, out[True].selection.learning_rate)
    print(f"  log_every={log_every:<4} {fmt(total)}  selected (without, with): {chosen}",
          flush=True)


def warm_up():
  """One small sweep each way, so one-time start-up costs fall on no timed run."""
  ds = jax.vmap(lambda k: data.heavy_tailed_labels(k, 3))(jax.random.split(jax.random.key(1), 2))
  model = models.LinearSoftmax(ds.num_classes)
  params_S = jax.vmap(lambda k: model.init(k, ds.x[0, :1]))(jax.random.split(jax.random.key(2), 2))
  run = train.make_train(train.classification_objective(model.apply),
                         optim.injectable("sign_descent", 0.0), num_steps=20, log_every=10)
  for drop in (False, True):
    train.tune_sweep(train.Sweep(run), params_S, ds, exponents=(-2.0, 2.0), refine_rounds=0,
                     drop_decided=drop, log=lambda _: None)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--only", choices=["a", "b"])
  parser.add_argument("--runs", default=",".join(optim.PAPER_RUNS))
  parser.add_argument("--warm", action="store_true",
                      help="(a): time a second call of each sweep (compiled programs reused)")
  args = parser.parse_args()
  print(f"{jax.devices()[0].platform}, {jax.device_count()} device(s)")
  warm_up()
  if args.only in (None, "a"):
    bench_heavy_tailed(args.runs.split(","), warm=args.warm)
  if args.only in (None, "b"):
    bench_curvature()


if __name__ == "__main__":
  main()
