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
from imbalance_jax.theory import studies

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  # figure name -> (study returning data and numbers, figure function drawing the data)
  draw = plotting.theory
  jobs = {
      "quadratic": (lambda: studies.quadratic_study(config.quadratic_classes,
                                                    config.quadratic_steps),
                    draw.quadratic_figure),
      "simple_setting": (lambda: studies.simple_setting_study(
          num_classes=config.simple_classes, gd_lr=config.simple_gd_lr,
          gd_steps=config.simple_gd_steps), draw.simple_setting_figure),
      "unigram_smoothness": (lambda: studies.unigram_smoothness_study(
          np.logspace(1, config.unigram_max_log10_d, config.unigram_max_log10_d).astype(int),
          config.unigram_eps), draw.unigram_smoothness_figure),
      "ufm_spectrum": (lambda: studies.ufm_spectrum_study(4, config.ufm_R),
                       draw.ufm_spectrum_figure),
      "ufm_dynamics": (lambda: studies.ufm_dynamics_study(config.ufm_R, config.ufm_delta,
                                                          config.ufm_hidden_dim, config.ufm_lr,
                                                          config.seed),
                       draw.ufm_dynamics_figure),
      "ufm_confusion": (lambda: studies.ufm_confusion_study(config.ufm_R, config.ufm_delta,
                                                            config.ufm_hidden_dim, config.ufm_lr,
                                                            seed=config.seed),
                        draw.ufm_confusion_figure),
      "ufm_learning_times": (lambda: studies.ufm_times_study(R_convergence=config.ufm_R,
                                                             delta_finite=config.ufm_delta),
                             draw.ufm_times_figure),
  }
  assert tuple(jobs) == config_lib.FIGURES
  jobs = {name.strip(): jobs[name.strip()] for name in config.figures.split(",")}
  # A figure is done once its PNG and its numbers are saved; a rerun skips it.
  progress = cli.Progress(workdir)
  summary, start = {}, time.perf_counter()
  for name, (study, figure) in jobs.items():
    png = os.path.join(workdir, f"{name}.png")
    if name in progress and os.path.exists(png):
      summary[name] = progress[name]
      logging.info("%s.png: done in an earlier run", name)
      continue
    tick = time.perf_counter()
    result = study()
    plotting.save_figure(figure(**result.data), png)
    numbers = result.summary
    numbers["seconds"] = time.perf_counter() - tick
    summary[name] = progress.put(name, numbers)
    logging.info("%s.png in %.1fs", name, numbers["seconds"])
  summary["total_seconds"] = time.perf_counter() - start  # this process only
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  logging.info("wrote %d figures to %s in %.1fs", len(jobs), workdir, summary["total_seconds"])


if __name__ == "__main__":
  app.run(main)
