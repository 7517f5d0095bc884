r"""Peak temporary memory of a full-batch step: one pass vs fixed-size chunks (issue 8, item 2).

Compiles one logged training step (objective, gradient, per-class metrics,
Adam update) of a linear softmax model for growing data sets, without
allocating the data (abstract shapes), and prints XLA's memory analysis: the
temporary buffers of the one-pass step grow with the number of examples (the
``[N, C]`` logits, their softmax and gradient), those of the chunked step with
the chunk only. Also times one step of each at the smallest size.

  python benchmarks/bench_chunked_memory.py
  python benchmarks/bench_chunked_memory.py --sizes 4096,65536 --chunk 2048
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import data, metrics, models, optim, train
from imbalance_jax.types import Dataset, make_dataset


def compiled_step(run, params, dataset):
  state = jax.eval_shape(lambda p, d: run.init(p, d, 1e-3), params, dataset)
  return jax.jit(lambda s, d: run.run(s, d, 1)).lower(state, dataset).compile()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="4096,16384,65536,262144")
  parser.add_argument("--dim", type=int, default=512)
  parser.add_argument("--classes", type=int, default=1024)
  parser.add_argument("--chunk", type=int, default=2048)
  args = parser.parse_args()
  sizes = [int(s) for s in args.sizes.split(",")]

  model = models.LinearSoftmax(args.classes)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, args.dim))))
  groups = data.frequency_groups(np.arange(args.classes, 0, -1), num_groups=10)
  runs = {
      "one pass": train.FullBatch(),
      f"chunks of {args.chunk}": train.FullBatch(chunk_size=args.chunk),
  }
  print(f"linear softmax, D={args.dim}, C={args.classes}; one logged Adam step; XLA:CPU "
        f"memory analysis (MiB)")
  print(f"{'examples':>9} {'data (args)':>12} " + " ".join(f"{k + ' temp':>22}" for k in runs))
  for n in sizes:
    dataset = Dataset(x=jax.ShapeDtypeStruct((n, args.dim), jnp.float32),
                           y=jax.ShapeDtypeStruct((n,), jnp.int32),
                           class_counts=jax.ShapeDtypeStruct((args.classes,), jnp.int32),
                           num_classes=args.classes)
    temps = []
    for batching in runs.values():
      run = train.make_train(train.classification_objective(model.apply),
                             optim.injectable("adam", 0.9), num_steps=1, log_every=1,
                             metrics_fn=metrics.classification_metrics(groups),
                             batching=batching)
      analysis = compiled_step(run, params, dataset).memory_analysis()
      temps.append(analysis.temp_size_in_bytes / 2**20)
      arg_mib = analysis.argument_size_in_bytes / 2**20
    print(f"{n:>9} {arg_mib:>12.1f} " + " ".join(f"{t:>22.1f}" for t in temps))

  # Time one step of each at the smallest size (real arrays).
  n = sizes[0]
  key = jax.random.key(0)
  x = jax.random.uniform(key, (n, args.dim))
  y = jax.random.randint(key, (n,), 0, args.classes)
  dataset = make_dataset(x, y, args.classes)
  real_params = model.init(key, x[:1])
  times = {}
  for name, batching in runs.items():
    run = train.make_train(train.classification_objective(model.apply),
                           optim.injectable("adam", 0.9), num_steps=10, log_every=10,
                           metrics_fn=metrics.classification_metrics(groups), batching=batching)
    fn = jax.jit(run)
    jax.block_until_ready(fn(real_params, dataset, 1e-3))
    samples = []
    for _ in range(3):
      start = time.perf_counter()
      jax.block_until_ready(fn(real_params, dataset, 1e-3))
      samples.append((time.perf_counter() - start) / 11)
    times[name] = float(np.median(samples))
  base = times["one pass"]
  print(f"time per step at n={n}: " + ", ".join(
      f"{k} {v * 1e3:.1f} ms ({v / base:.2f}x one pass)" for k, v in times.items()))


if __name__ == "__main__":
  main()
