r"""Issue 19: what each optimizer of the catalogue costs per step, against GD in the same run.

For every run name of ``optim.OPTIMIZERS`` (with ``+m``), a `train.Sweep` over
``--rates`` step sizes (one vmapped program per optimizer) is timed in
alternation with the same sweep for ``gd+m`` (these machines are noisy), and
the ratio of their times is printed, with how many times each sweep compiled
(expected: 1 for any number of calls and step sizes).

Problems: ``linear`` is paper H's linear model on heavy-tailed labels (m=6,
full batch); ``transformer`` a 1-layer transformer on random tokens (full
batch, vocabulary 256), where LayerNorm, embeddings and 2-D kernels exist, so
Muon, Coupled Adam and last-layer Adam differ from Adam.

  python benchmarks/bench_optimizer_catalogue.py                 # both problems
  python benchmarks/bench_optimizer_catalogue.py --problem linear --only adam,muon
"""

import argparse

import jax
import numpy as np

from bench_linear_sweep import timed
from imbalance_jax import data, models, optim, train


def linear_problem(m):
  ds = data.heavy_tailed_labels(jax.random.key(0), m)
  model = models.LinearSoftmax(ds.num_classes)
  params = model.init(jax.random.key(1), ds.x[:1])
  return ds, params, train.classification_objective(model.apply), False


def transformer_problem(vocab=256, seq_len=16, windows=64):
  model = models.make_transformer("one_layer", vocab, d_model=32, num_heads=2, mlp_dim=64)
  stream = np.random.default_rng(0).zipf(1.3, windows * seq_len + 1) % vocab
  ds = data.next_token_windows(stream, seq_len, vocab)
  variables = model.init(jax.random.key(0), ds.x[:1])
  return ds, variables, train.classification_objective(model.apply, stateful=True), True


def bench(problem, names, rates, steps, repeats):
  ds, params, objective, stateful = problem
  counts = np.bincount(np.asarray(ds.y).ravel(), minlength=ds.num_classes)
  ds, params = jax.tree.map(lambda a: a[None], (ds, params))  # one seed
  keys = jax.random.split(jax.random.key(2), 1) if stateful else None

  def sweep_for(name):
    options = {"class_counts": np.maximum(counts, 1)} if name == "frequency_oracle" else {}
    run = train.make_train(objective, optim.injectable(name, 0.9, **options), num_steps=steps,
                           log_every=steps, stateful=stateful)
    sweep = train.Sweep(run)
    return sweep, lambda: sweep(params, ds, rates, keys).final_loss

  gd_sweep, gd = sweep_for("gd")
  rows = []
  for name in names:
    sweep, fn = sweep_for(name)
    t_gd, t = timed(gd, fn, repeats=repeats)
    fn()  # a further call: still the one compiled program
    rows.append((name, t / t_gd, t / (len(rates) * steps), sweep._full._cache_size()))
    print(f"  {name:24s} {t / t_gd:6.2f} x gd   {t / (len(rates) * steps) * 1e3:8.3f} ms "
          f"per member-step   compiled {sweep._full._cache_size()}x", flush=True)
  print(f"  (gd+m: {t_gd / (len(rates) * steps) * 1e3:.3f} ms per member-step, "
        f"compiled {gd_sweep._full._cache_size()}x)")
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--problem", choices=("linear", "transformer"), action="append")
  parser.add_argument("--only", help="comma-separated optimizer names (default: all)")
  parser.add_argument("--m", type=int, default=6)
  parser.add_argument("--steps", type=int, default=50)
  parser.add_argument("--rates", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  names = args.only.split(",") if args.only else [n for n in optim.OPTIMIZERS if n != "gd"]
  rates = np.logspace(-3, -1, args.rates)
  print(f"devices: {jax.devices()}; {args.rates} step sizes x {args.steps} steps per sweep")
  for problem in args.problem or ("linear", "transformer"):
    print(f"[{problem}]")
    made = linear_problem(args.m) if problem == "linear" else transformer_problem()
    bench(made, names, rates, args.steps, args.repeats)


if __name__ == "__main__":
  main()
