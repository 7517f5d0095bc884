r"""Paper S: iterations to reach eps on the softmax unigram model as the vocabulary grows.

Normalized GD and sign descent (each with its best step size from a sweep and
with the theory step size eps / (L D_0)), Adam and GD, on Zipf token
frequencies over vocabulary sizes d. Writes config.json, metrics.jsonl (one
record per method and d, censored runs marked), summary.json (log-log slopes)
and unigram_scaling.png into --workdir. A rerun with the same --workdir resumes
after the last finished (method, d).

Presets: ``quick`` (a few minutes on a 2-core CPU: runs are capped at
``max_steps`` steps and ``max_work / d`` steps, so GD and normalized GD are
censored at the largest sizes) and ``paper`` (eps = 0.01, up to 10^5 steps;
hours on a CPU).

  python -m experiments.unigram_scaling --workdir /tmp/unigram
"""

import time

import numpy as np
from absl import logging

from imbalance_jax import data, experiment as ex, plotting
from imbalance_jax.experiment import fields
from imbalance_jax.theory import unigram_scaling
from imbalance_jax.theory.unigram_scaling import METHODS


def validate(config) -> None:
  """Sizes strictly increasing, ``segment_steps | max_steps``, the exponent range, memory.

  Memory: a sweep holds, per step size, the parameters, gradient and two
  optimizer moments of the largest vocabulary (``4 d`` numbers per member).
  """
  sizes = config.sizes
  if list(sizes) != sorted(set(sizes)):
    raise ValueError(f"config.sizes must be strictly increasing, got {config.raw.sizes!r}")
  if len(sizes) < 2:
    raise ValueError(f"config.sizes needs at least two sizes to fit a scaling exponent, got "
                     f"{config.raw.sizes!r}")
  if config.max_steps % config.segment_steps:
    raise ValueError(f"config.max_steps={config.max_steps} must be a multiple of "
                     f"config.segment_steps={config.segment_steps}")
  if config.min_exponent > config.max_exponent:
    raise ValueError(f"config.min_exponent={config.min_exponent} must be <= "
                     f"config.max_exponent={config.max_exponent}")
  members = max(int((config.max_exponent - config.min_exponent) / 0.5) + 1,
                int(2 * config.local_halfwidth / config.local_step) + 1, 4)
  ex.check_memory(ex.float_bytes() * 6 * members * max(sizes),
                  what=f"config.sizes up to d={max(sizes)} with {members} step sizes",
                  lower="the largest of config.sizes (or pick --config.preset=quick)")
  if config.max_work < max(sizes) * config.segment_steps:
    raise ValueError(f"config.max_work={config.max_work:g} leaves d={max(sizes)} (the largest of "
                     f"config.sizes) less than one segment of config.segment_steps="
                     f"{config.segment_steps} steps; raise it to at least "
                     f"{max(sizes) * config.segment_steps:g}")
  # The runs start at theta = 0 (uniform p): a target at or above that gap is met at step 0.
  pi = data.zipf_distribution(min(sizes), config.zipf_exponent)
  initial_gap = float(np.log(min(sizes)) + np.sum(pi * np.log(pi)))
  if config.eps >= initial_gap:
    raise ValueError(f"config.eps={config.eps:g} is met at initialisation: the smallest size "
                     f"d={min(sizes)} starts at f - f* = {initial_gap:.3g} (config.zipf_exponent="
                     f"{config.zipf_exponent:g})")


CONFIG = ex.Config(
    presets={
        "quick": dict(sizes="100,1000,10000,100000,300000,1000000", eps=0.02, max_steps=10_000,
                      max_work=3e9, segment_steps=50),
        "paper": dict(sizes="100,1000,10000,30000,100000,300000,1000000", eps=0.01,
                      max_steps=100_000, max_work=1e12, segment_steps=200),
    },
    fields=dict(
        sizes=fields.IntList(minimum=2, help="vocabulary sizes d, comma-separated, increasing"),
        eps=fields.Positive(help="target suboptimality f - f* = KL(pi || p)"),
        max_steps=fields.Int(minimum=1, help="iteration cap"),
        max_work=fields.Positive(help="cap on d x steps per run"),
        segment_steps=fields.Int(minimum=1, help="stopping granularity"),
        methods=fields.Names(METHODS, default="normalized_gd,sign_descent,adam,gd,"
                             "normalized_gd@theory,sign_descent@theory",
                             help="methods, comma-separated (@theory: the theory step size)"),
        min_exponent=fields.Real(minimum=-30.0, maximum=30.0, default=-3.0,
                                 help="first sweep: 10^e, e = min..max in half decades"),
        max_exponent=fields.Real(minimum=-30.0, maximum=30.0, default=2.0),
        local_halfwidth=fields.Positive(default=0.5,
                                        help="later sizes: previous best +- this many decades..."),
        local_step=fields.Positive(default=0.25, help="...in steps of this many decades"),
        zipf_exponent=fields.Real(minimum=0.0, maximum=10.0, default=1.0,
                                  help="alpha of pi_k ~ k^-alpha (10: nearly all mass on k=1)")),
    validate=validate)


def plan_note(config) -> str:
  """`experiments.reproduce --plan`: why this preset has no step to lower."""
  return (f"no network: scanned GD / sign descent on the unigram model's d-vector, d up to "
          f"{max(config.sizes):,}, each (method, d) run capped at config.max_work="
          f"{config.max_work:g} coordinate-steps and config.max_steps={config.max_steps:,}; "
          "O(d) elementwise work per step; not planned in FLOPs")


def run(config, workdir: str) -> dict:
  start = time.perf_counter()
  # Each finished (method, d) is saved at once; a rerun resumes after the last one.
  progress = ex.Progress(workdir)
  records = unigram_scaling.scaling_study(
      config.sizes, config.methods, eps=config.eps, max_steps=config.max_steps,
      max_work=config.max_work,
      exponents=np.arange(config.min_exponent, config.max_exponent + 1e-9, 0.5),
      local_halfwidth=config.local_halfwidth, local_step=config.local_step,
      segment_steps=config.segment_steps, zipf_exponent=config.zipf_exponent,
      completed=progress.values(),
      on_record=lambda r: progress.put(f"{r['method']}/d={r['d']}", r), log=logging.info)
  slopes = unigram_scaling.scaling_slopes(records)
  summary = {"eps": config.eps, "slopes": slopes,
             "censored": [r for r in records if r["censored"]],
             "seconds": time.perf_counter() - start}  # this process only
  ex.write_outputs(workdir, summary=summary, metrics=records, figures={
      "unigram_scaling.png": plotting.theory.unigram_scaling_figure(records, slopes)})
  for name, fit in slopes.items():
    logging.info("%s: slope %s over %d sizes; censored at %s", name, fit["slope"],
                 fit["num_points"], fit["censored_sizes"])
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
