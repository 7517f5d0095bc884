r"""Issue 3 performance figures for the linear model sweep, each a ratio against a
baseline measured in the same process (these machines are noisy).

1. m=8: sweep time per member per step (Adam, per-class metrics every step)
   vs. the two matmuls of one step (logits = X W and X^T (P - Y)) timed alone.
   Target: <= 1.25.
2. m=7, 3 seeds x 8 step sizes x 200 steps: Python loop over the 24 configs
   (one jitted run function reused) / vmapped sweep. Target: >= 0.9, compiled
   once; peak memory vs number of members (compiled memory analysis).
3. m=4 with 256 members (4 seeds x 64 step sizes): loop / sweep. Target: >= 3.

  python benchmarks/bench_linear_sweep.py            # all three
  python benchmarks/bench_linear_sweep.py --only 1
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import data, metrics, models, optim, train


def timed(*fns, repeats):
  """Min wall time of each ``fn()`` (blocked), after a warm-up.

  The functions are timed in alternation so that load from other processes
  hits baseline and target alike.
  """
  for fn in fns:
    jax.block_until_ready(fn())
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, record in zip(fns, times):
      start = time.perf_counter()
      jax.block_until_ready(fn())
      record.append(time.perf_counter() - start)
  return [min(t) for t in times]


def problem(m, num_seeds, name="adam", momentum=0.9, num_steps=200, log_every=10,
            per_class=False):
  keys = jax.random.split(jax.random.key(0), num_seeds)
  ds = jax.vmap(lambda k: data.heavy_tailed_labels(k, m))(keys)
  model = models.LinearSoftmax(ds.num_classes)
  params = jax.vmap(lambda k: model.init(k, ds.x[0, :1]))(keys)
  groups = data.frequency_groups(np.asarray(ds.class_counts[0]))
  run = train.make_train(train.classification_objective(model.apply),
                         optim.injectable(name, momentum), num_steps=num_steps,
                         log_every=log_every,
                         metrics_fn=metrics.classification_metrics(groups, per_class=per_class))
  return ds, params, run


def bench_step_vs_matmuls(repeats):
  m, steps = 8, 20
  ds, params, run = problem(m, 1, num_steps=steps, log_every=1, per_class=True)
  n, d = ds.x.shape[1:]
  c = ds.num_classes
  x = ds.x[0]
  w = jax.random.normal(jax.random.key(1), (d, c))
  g = jax.random.normal(jax.random.key(2), (n, c))
  matmuls = jax.jit(lambda x, w, g: (x @ w, x.T @ g))
  for num_rates in (1, 8):
    sweep = train.Sweep(run)
    rates = np.logspace(-4, -2, num_rates)
    t_mm, t = timed(lambda: matmuls(x, w, g), lambda: sweep(params, ds, rates).final_loss,
                    repeats=repeats)
    print(f"[1] m=8 (n={n}, d={d}, c={c}): two matmuls {t_mm * 1e3:.2f} ms "
          f"({4 * n * d * c / t_mm / 1e9:.0f} GFLOP/s)")
    per = t / (num_rates * steps)
    print(f"[1] sweep of {num_rates} member(s): {per * 1e3:.2f} ms per member-step "
          f"(Adam + per-class metrics every step) -> ratio to matmuls {per / t_mm:.3f} "
          f"(target <= 1.25)")


def loop_vs_sweep(m, num_seeds, rates, steps, repeats, tag):
  ds, params, run = problem(m, num_seeds, num_steps=steps, log_every=10)
  sweep = train.Sweep(run)
  solo = jax.jit(run)
  members = [(jax.tree.map(lambda a: a[s], params), jax.tree.map(lambda a: a[s], ds), lr)
             for s in range(num_seeds) for lr in rates]
  t_sweep, t_loop = timed(lambda: sweep(params, ds, rates).final_loss,
                          lambda: [solo(p, dd, lr).final_loss for p, dd, lr in members],
                          repeats=repeats)
  print(f"[{tag}] m={m}, {num_seeds} seeds x {len(rates)} step sizes x {steps} steps: "
        f"sweep {t_sweep:.3f}s, loop {t_loop:.3f}s -> loop/sweep = {t_loop / t_sweep:.2f}; "
        f"sweep compiled {sweep._full._cache_size()} time(s), solo run {solo._cache_size()}")
  return sweep, ds, params, run


def bench_m7(repeats):
  rates = np.logspace(-4, -1, 8)
  sweep, ds, params, run = loop_vs_sweep(7, 3, rates, 200, repeats, "2")
  x_bytes = ds.x.nbytes
  print(f"[2] dataset: {x_bytes / 2**20:.1f} MiB for 3 seeds; compiled memory by members:")
  for num_rates in (1, 2, 4, 8, 16):
    placed = sweep._place(params, ds, jnp.asarray(np.logspace(-4, -1, num_rates), jnp.float32),
                          None)  # as Sweep.__call__ lays the members out
    layout, args = placed[0], placed[1:]
    stats = sweep._full.lower(*args, layout.num_seeds, layout.num_rates
                              ).compile().memory_analysis()
    print(f"[2]   {3 * num_rates:3d} members: arguments {stats.argument_size_in_bytes / 2**20:7.1f}"
          f" MiB (data held once: {x_bytes / 2**20:.1f} MiB), temporaries "
          f"{stats.temp_size_in_bytes / 2**20:7.1f} MiB, outputs "
          f"{stats.output_size_in_bytes / 2**20:6.1f} MiB")


def bench_small(repeats):
  loop_vs_sweep(4, 4, np.logspace(-4, 0, 64), 200, repeats, "3")
  loop_vs_sweep(4, 1, np.logspace(-4, 0, 256), 200, repeats, "3")
  print(f"[3] target: loop/sweep >= 3 ({jax.device_count()} device(s); with one CPU device the "
        "sweep is bound by elementwise work XLA runs on one core; try "
        "XLA_FLAGS=--xla_force_host_platform_device_count=2 to shard members over cores)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", type=int, choices=(1, 2, 3))
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  print(f"devices: {jax.devices()}")
  for i, bench in ((1, bench_step_vs_matmuls), (2, bench_m7), (3, bench_small)):
    if args.only in (None, i):
      bench(args.repeats)


if __name__ == "__main__":
  main()
