r"""Kunstner & Bach (arXiv 2505.19227): iterations to eps on the linear bigram model as d grows.

GD (step ``1 / pi_1``, closed form) and sign descent (constant step tuned per d
and alpha over ``c * sqrt(sum_k p_k^2 / d)``, simulated in ``lax.scan``) on the
bigram model with Zipf(alpha) marginal and conditional frequencies
(`imbalance_jax.theory.bigram`). For every alpha it fits the log-log exponent
of the iterations to relative error ``eps`` against d. Writes config.json,
metrics.jsonl (one record per d), summary.json (the fitted exponents and the
predicted rates) and bigram_scaling.png into --workdir; a rerun resumes after
the last finished d.

Presets: ``quick`` (d = 100..10^5, about 2 minutes on a 2-core CPU) and
``paper`` (d up to 10^6, a GPU).

  python -m experiments.bigram_scaling --workdir /tmp/bigram
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from absl import logging

from imbalance_jax import experiment as ex
from imbalance_jax.experiment import fields
from imbalance_jax.theory import bigram
from imbalance_jax.theory.unigram_scaling import loglog_slope


def parse_alphas(text: str) -> tuple[float, ...]:
  """``"1,0.5"`` -> ``(0.5, 1.0)``: distinct Zipf exponents in [0, 10], sorted.

  Example:
    >>> parse_alphas("1,0.5")
    (0.5, 1.0)
  """
  try:
    values = tuple(float(a) for a in text.split(","))
  except ValueError:
    raise ValueError("expected numbers") from None
  if len(set(values)) != len(values):
    raise ValueError("duplicate exponents")
  if not all(0 <= a <= 10 for a in values):
    raise ValueError("exponents must lie in [0, 10]")
  return tuple(sorted(values))


def validate(config) -> None:
  """Sizes increasing (>= 2 of them), the factor range, memory of the sign-descent sweep."""
  sizes = config.sizes
  if list(sizes) != sorted(set(sizes)) or len(sizes) < 2:
    raise ValueError(f"config.sizes must be at least two strictly increasing sizes, got "
                     f"{config.raw.sizes!r}")
  if config.min_factor >= config.max_factor:
    raise ValueError(f"config.min_factor={config.min_factor:g} must be < "
                     f"config.max_factor={config.max_factor:g}")
  if config.eps >= 1:
    raise ValueError(f"config.eps={config.eps:g} must be < 1 (a relative error; 1 is met at "
                     f"initialisation)")
  members = len(config.alphas) * config.num_factors
  ex.check_memory(ex.float_bytes() * (3 * members * max(sizes)
                                      + members * (config.sign_max_steps + 1)),
                  what=f"sign descent at d={max(sizes)} with {members} (alpha, step) members",
                  lower="the largest of config.sizes or config.num_factors")


CONFIG = ex.Config(
    presets={
        "quick": dict(sizes="100,300,1000,3000,10000,30000,100000", sign_max_steps=2000),
        "paper": dict(sizes="100,300,1000,3000,10000,30000,100000,300000,1000000",
                      sign_max_steps=6000, num_factors=41),
    },
    fields=dict(
        sizes=fields.IntList(minimum=2, maximum=10**7,
                             help="vocabulary sizes d, comma-separated, increasing"),
        alphas=fields.Text(parse=parse_alphas, default="0.5,1.0,1.5,2.0",
                           description="comma-separated Zipf exponents in [0, 10]",
                           invalid=("1,x", "1,1", "11"), help="Zipf exponents alpha"),
        eps=fields.Positive(default=0.1, help="target relative error (L_t - L*) / (L_0 - L*)"),
        sign_max_steps=fields.Int(minimum=2, maximum=10**6, default=2000,
                                  help="sign descent's horizon (censored beyond)"),
        gd_max_steps=fields.Int(minimum=1, maximum=2**30, default=10**8,
                                help="GD's cap (closed form: costs log2 of it)"),
        min_factor=fields.Positive(default=0.03, help="sign descent steps c sqrt(sum p^2 / d), "
                                   "c geometric from min_factor..."),
        max_factor=fields.Positive(default=3.0, help="...to max_factor..."),
        num_factors=fields.Int(minimum=2, maximum=1000, default=21, help="...in this many")),
    validate=validate)


def exponents(records, alphas) -> dict:
  """Per method and alpha: `loglog_slope` over the uncensored sizes, and the predicted rate."""
  sizes = [r["d"] for r in records]
  out = {}
  for method in bigram.METHODS:
    out[method] = {}
    for index, alpha in enumerate(alphas):
      fit = loglog_slope(sizes, [r[method][index] for r in records])
      fit["predicted"] = bigram.predicted_exponent(method, alpha)
      fit["censored_sizes"] = [r["d"] for r in records if r[method][index] < 0]
      out[method][str(alpha)] = fit
  return out


def figure(records, fits, alphas, eps):
  """Left: iterations vs d per alpha (GD solid, sign descent dashed). Right: exponent vs alpha."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(alphas)))
  for index, alpha in enumerate(alphas):
    for method, ls, marker in (("gd", "-", "o"), ("sign_descent", "--", "s")):
      pts = [(r["d"], r[method][index]) for r in records if r[method][index] > 0]
      slope = fits[method][str(alpha)]["slope"]
      label = (f"{'GD' if method == 'gd' else 'sign descent'}, alpha={alpha:g}"
               + (f" (slope {slope:.2f})" if slope is not None else ""))
      if pts:
        left.loglog(*zip(*pts), ls=ls, marker=marker, color=colors[index], label=label)
  left.set(xlabel="vocabulary size d", ylabel=f"iterations to relative error {eps:g}",
           title="Linear bigram, Zipf(alpha) marginal and conditionals")
  left.legend(fontsize=7)
  grid = np.linspace(0.0, max(2.5, max(alphas)), 501)
  for method, color in (("gd", "C0"), ("sign_descent", "C3")):
    name = "GD" if method == "gd" else "sign descent"
    right.plot(grid, [bigram.predicted_exponent(method, a) for a in grid], color=color, lw=1,
               label=f"{name}: rate (large d)")
    measured = [(a, fits[method][str(a)]["slope"]) for a in alphas
                if fits[method][str(a)]["slope"] is not None]
    if measured:
      right.plot(*zip(*measured), "o", color=color, label=f"{name}: fitted over d")
  right.plot([1.0], [1.0 - eps], "x", color="C0", label=f"GD rate at alpha=1: 1 - eps")
  right.set(xlabel="Zipf exponent alpha", ylabel="exponent of d", ylim=(-0.1, 1.2),
            title="Fitted exponent vs the rates")
  right.legend(fontsize=8)
  fig.tight_layout()
  return fig


def plan_note(config) -> str:
  """`experiments.reproduce --plan`: why this preset has no step to lower."""
  members = len(config.alphas) * config.num_factors
  return (f"no network: GD in closed form, sign descent scanned for "
          f"{config.sign_max_steps:,} steps over {members} (alpha, step) members on d-vectors, "
          f"d up to {max(config.sizes):,}: O(members d) elementwise work per step, "
          "memory-bound; not planned in FLOPs")


def run(config, workdir: str) -> dict:
  start = time.perf_counter()
  progress = ex.Progress(workdir)  # one unit per d; a rerun resumes after the last one
  relative = np.geomspace(config.min_factor, config.max_factor, config.num_factors)
  records = []
  for d in config.sizes:  # each d has its own shapes (its own compiled program)
    key = f"d={d}"
    if key not in progress:
      record = bigram.scaling_record(d, config.alphas, config.eps, relative_steps=relative,
                                     sign_max_steps=config.sign_max_steps,
                                     gd_max_steps=config.gd_max_steps)
      progress.put(key, record)
      logging.info("d=%d: gd %s, sign descent %s", d, record["gd"], record["sign_descent"])
    records.append(progress[key])
  fits = exponents(records, config.alphas)
  summary = {"eps": config.eps, "alphas": list(config.alphas), "exponents": fits,
             "sign_descent_best_at_edge": [[r["d"], a] for r in records
                                           for a, e in zip(r["alphas"], r["sign_descent_at_edge"])
                                           if e],
             "seconds": time.perf_counter() - start}  # this process only
  ex.write_outputs(workdir, summary=summary, metrics=records, figures={
      "bigram_scaling.png": figure(records, fits, config.alphas, config.eps)})
  for method, per_alpha in fits.items():
    for alpha, fit in per_alpha.items():
      logging.info("%s alpha=%s: exponent %s (rate %s)", method, alpha, fit["slope"],
                   fit["predicted"])
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
