r"""Paper S: iterations to reach eps on the softmax unigram model as the vocabulary grows.

Normalized GD and sign descent (each with its best step size from a sweep and
with the theory step size eps / (L D_0)), Adam and GD, on Zipf token
frequencies over vocabulary sizes d. Writes config.json, metrics.jsonl (one
record per method and d, censored runs marked), summary.json (log-log slopes)
and unigram_scaling.png into --workdir. A rerun with the same --workdir resumes
after the last finished (method, d).

  python -m experiments.unigram_scaling --workdir /tmp/unigram
"""

import os
import time

import numpy as np
from absl import app, logging

from experiments.configs import unigram_scaling as config_lib
from imbalance_jax import cli, plotting, results
from imbalance_jax.theory import unigram_scaling

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  start = time.perf_counter()
  # Each finished (method, d) is saved at once; a rerun resumes after the last one.
  progress = cli.Progress(workdir)
  records = unigram_scaling.scaling_study(
      [int(d) for d in config.sizes.split(",")], config.methods.split(","), eps=config.eps,
      max_steps=config.max_steps, max_work=config.max_work,
      exponents=np.arange(config.min_exponent, config.max_exponent + 1e-9, 0.5),
      local_halfwidth=config.local_halfwidth, local_step=config.local_step,
      segment_steps=config.segment_steps,
      zipf_exponent=config.zipf_exponent, completed=progress.values(),
      on_record=lambda r: progress.put(f"{r['method']}/d={r['d']}", r), log=logging.info)
  slopes = unigram_scaling.scaling_slopes(records)
  results.write_jsonl(os.path.join(workdir, "metrics.jsonl"), records)
  results.write_json(os.path.join(workdir, "summary.json"),
                     {"eps": config.eps, "slopes": slopes,
                      "censored": [r for r in records if r["censored"]],
                      "seconds": time.perf_counter() - start})  # this process only
  plotting.save_figure(plotting.theory.unigram_scaling_figure(records, slopes),
                       os.path.join(workdir, "unigram_scaling.png"))
  for name, fit in slopes.items():
    logging.info("%s: slope %s over %d sizes; censored at %s", name, fit["slope"],
                 fit["num_points"], fit["censored_sizes"])


if __name__ == "__main__":
  app.run(main)
