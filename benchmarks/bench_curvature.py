"""Benchmarks of the curvature diagnostics (issue 4), as ratios to baselines timed in the same run.

  python benchmarks/bench_curvature.py [--m 8] [--probes 16] [--repeats 5]

1. Exact traces of all c blocks (m=8: 255) vs one loss-and-gradient evaluation
   (target <= 2x; reported from the logits and including the forward pass).
2. Hutchinson all-block estimate with K probes vs K x one hvp (target <= 1.5),
   and vs the naive one-probe-series-per-block estimator (timed on a subset
   of blocks and extrapolated linearly to all blocks).
3. A training run recording the diagnostics every 10 steps vs the same run
   recording only the loss (target <= 1.25x).

Timings are the min and median over --repeats runs after a warm-up (compile)
call (training runs are timed round-robin); the machine is shared, so the
median is noisier than the min.
"""

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import curvature, data, models, optim, train


def timeit(fn, repeats):
  jax.block_until_ready(fn())  # compile + warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return np.min(times), np.median(times)


def report(name, value, baseline, target=None):
  ratio_min, ratio_med = value[0] / baseline[0], value[1] / baseline[1]
  flag = "" if target is None else ("  OK" if ratio_min <= target else f"  ABOVE {target}")
  print(f"{name:58s} {value[0] * 1e3:9.2f} ms  ratio {ratio_min:6.3f} (median {ratio_med:6.3f})"
        f"{flag}")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--m", type=int, default=8)
  parser.add_argument("--probes", type=int, default=16)
  parser.add_argument("--naive_blocks", type=int, default=8)
  parser.add_argument("--train_steps", type=int, default=100)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  ds = data.heavy_tailed_labels(jax.random.key(0), args.m)
  model = models.LinearSoftmax(ds.num_classes)
  params = model.init(jax.random.key(1), ds.x[:1])
  objective = train.classification_objective(model.apply)
  print(f"m={args.m}: n={ds.x.shape[0]} d={ds.x.shape[1]} c={ds.num_classes}; "
        f"{jax.devices()[0].platform}, repeats={args.repeats}")

  # 1. Exact block traces.
  value_and_grad = jax.jit(jax.value_and_grad(lambda p: objective(p, ds)[0]))
  base = timeit(lambda: value_and_grad(params), args.repeats)
  report("loss and gradient (baseline)", base, base)
  logits = jax.jit(model.apply)(params, ds.x)
  traces = jax.jit(curvature.linear_block_traces)
  report(f"exact traces, all {ds.num_classes} blocks, from logits", timeit(
      lambda: traces(logits, ds.x), args.repeats), base, 2.0)
  forward_traces = jax.jit(lambda p: curvature.linear_block_traces(model.apply(p, ds.x), ds.x))
  report("exact traces including the forward pass", timeit(
      lambda: forward_traces(params), args.repeats), base, 2.0)

  # 2. Hutchinson.
  head_loss, head = curvature.restrict_to_layer(lambda p: objective(p, ds)[0], params)
  ids = curvature.dense_block_ids(head)
  v = jax.tree.map(jnp.ones_like, head)
  one_hvp = jax.jit(lambda h: curvature.hvp(head_loss, h, v))
  hvp_time = timeit(lambda: one_hvp(head), args.repeats)
  report("one hvp", hvp_time, base)
  k_hvps = (args.probes * hvp_time[0], args.probes * hvp_time[1])
  shared = jax.jit(functools.partial(curvature.hutchinson_block_traces, head_loss, head, ids,
                                     num_blocks=ds.num_classes, num_probes=args.probes))
  shared_time = timeit(lambda: shared(key=jax.random.key(2)), args.repeats)
  report(f"Hutchinson all blocks, K={args.probes} (vs K x one hvp)", shared_time, k_hvps, 1.5)
  subset = args.naive_blocks
  sub_ids = jax.tree.map(lambda i: jnp.where(i < subset, i, -1), ids)
  naive = jax.jit(functools.partial(curvature.hutchinson_block_traces_naive, head_loss, head,
                                    sub_ids, num_blocks=subset, num_probes=args.probes))
  naive_sub = timeit(lambda: naive(key=jax.random.key(2)), max(2, args.repeats // 2))
  scale = ds.num_classes / subset
  naive_all = (naive_sub[0] * scale, naive_sub[1] * scale)
  report(f"naive per-block, {subset} blocks measured, x{scale:.1f} to all", naive_all, k_hvps)
  report("naive (extrapolated) / shared-probe estimator", naive_all, shared_time)

  # 3. Recording diagnostics every 10 steps inside a training run.
  groups = data.frequency_groups(np.asarray(ds.class_counts))
  make_opt = optim.injectable("adam", 0.9)
  runs = {"loss only (baseline)": None,
          "exact block diagnostics": curvature.linear_curvature_metrics(groups),
          "exact diagnostics + path -W_t": curvature.linear_curvature_metrics(groups,
                                                                             negated=True),
          "Hutchinson diagnostics (8 probes)": curvature.hutchinson_curvature_metrics(
              objective, groups, key=jax.random.key(3), num_probes=8)}
  compiled = {name: jax.jit(train.make_train(objective, make_opt, num_steps=args.train_steps,
                                             log_every=10, metrics_fn=metrics_fn))
              for name, metrics_fn in runs.items()}
  for run in compiled.values():
    jax.block_until_ready(run(params, ds, 1e-3))  # compile
  samples = {name: [] for name in compiled}
  for _ in range(args.repeats):  # round-robin, so load drift hits every variant alike
    for name, run in compiled.items():
      start = time.perf_counter()
      jax.block_until_ready(run(params, ds, 1e-3))
      samples[name].append(time.perf_counter() - start)
  times = {name: (np.min(t), np.median(t)) for name, t in samples.items()}
  for name in compiled:
    report(f"train {args.train_steps} steps, {name}", times[name],
           times["loss only (baseline)"], 1.25 if name != "loss only (baseline)" else None)

if __name__ == "__main__":
  main()
