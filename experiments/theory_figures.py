r"""Every theory figure of issue 5 (papers H, S, R): closed forms drawn over simulations.

Writes config.json, summary.json (the numbers behind each figure, including
the largest closed-form-vs-simulation errors) and one PNG per figure into
--workdir. A rerun with the same --workdir skips the figures already done.

  python -m experiments.theory_figures --workdir /tmp/theory
"""

import os
import time

import numpy as np
from absl import app, logging

from experiments.configs import theory_figures as config_lib
from imbalance_jax import cli, plotting, results
from imbalance_jax.theory import figures

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  jobs = {
      "quadratic": lambda: figures.quadratic_figure(config.quadratic_classes,
                                                    config.quadratic_steps),
      "simple_setting": lambda: figures.simple_setting_figure(
          num_classes=config.simple_classes, gd_lr=config.simple_gd_lr,
          gd_steps=config.simple_gd_steps),
      "unigram_smoothness": lambda: figures.unigram_smoothness_figure(
          np.logspace(1, config.unigram_max_log10_d, config.unigram_max_log10_d).astype(int),
          config.unigram_eps),
      "ufm_spectrum": lambda: figures.ufm_spectrum_figure(4, config.ufm_R),
      "ufm_dynamics": lambda: figures.ufm_dynamics_figure(config.ufm_R, config.ufm_delta,
                                                          config.ufm_hidden_dim, config.ufm_lr,
                                                          config.seed),
      "ufm_confusion": lambda: figures.ufm_confusion_figure(config.ufm_R, config.ufm_delta,
                                                            config.ufm_hidden_dim, config.ufm_lr,
                                                            seed=config.seed),
      "ufm_learning_times": lambda: figures.ufm_times_figure(R_convergence=config.ufm_R,
                                                             delta_finite=config.ufm_delta),
  }
  assert tuple(jobs) == config_lib.FIGURES
  jobs = {name.strip(): jobs[name.strip()] for name in config.figures.split(",")}
  # A figure is done once its PNG and its numbers are saved; a rerun skips it.
  progress = cli.Progress(workdir)
  summary, start = {}, time.perf_counter()
  for name, job in jobs.items():
    png = os.path.join(workdir, f"{name}.png")
    if name in progress and os.path.exists(png):
      summary[name] = progress[name]
      logging.info("%s.png: done in an earlier run", name)
      continue
    tick = time.perf_counter()
    fig, numbers = job()
    plotting.save_figure(fig, png)
    numbers["seconds"] = time.perf_counter() - tick
    summary[name] = progress.put(name, numbers)
    logging.info("%s.png in %.1fs", name, numbers["seconds"])
  summary["total_seconds"] = time.perf_counter() - start  # this process only
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  logging.info("wrote %d figures to %s in %.1fs", len(jobs), workdir, summary["total_seconds"])


if __name__ == "__main__":
  app.run(main)
