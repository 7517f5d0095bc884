r"""Every theory figure of issue 5 (papers H, S, R): closed forms drawn over simulations.

Writes config.json, summary.json (the numbers behind each figure, including
the largest closed-form-vs-simulation errors) and one PNG per figure into
--workdir. A rerun with the same --workdir skips the figures already done.

Presets: ``quick`` (well under 2 minutes on a 2-core CPU) and ``paper`` (more
classes, longer GD runs, a larger init scale delta). ``--config.figures``
draws a subset.

  python -m experiments.theory_figures --workdir /tmp/theory
  python -m experiments.theory_figures --workdir /tmp/fig6 --config.figures=quadratic
"""

import math
import os
import time

import numpy as np
from absl import logging

from imbalance_jax import experiment as ex, plotting
from imbalance_jax.experiment import fields
from imbalance_jax.theory import studies

# figure name -> (config -> the study returning data and numbers, the function drawing the data)
STUDIES = {
    "quadratic": (lambda c: studies.quadratic_study(c.quadratic_classes, c.quadratic_steps),
                  plotting.theory.quadratic_figure),
    "simple_setting": (lambda c: studies.simple_setting_study(
        num_classes=c.simple_classes, gd_lr=c.simple_gd_lr, gd_steps=c.simple_gd_steps),
        plotting.theory.simple_setting_figure),
    "unigram_smoothness": (lambda c: studies.unigram_smoothness_study(
        np.logspace(1, c.unigram_max_log10_d, c.unigram_max_log10_d).astype(int),
        c.unigram_eps), plotting.theory.unigram_smoothness_figure),
    "ufm_spectrum": (lambda c: studies.ufm_spectrum_study(4, c.ufm_R),
                     plotting.theory.ufm_spectrum_figure),
    "ufm_dynamics": (lambda c: studies.ufm_dynamics_study(c.ufm_R, c.ufm_delta, c.ufm_hidden_dim,
                                                          c.ufm_lr, c.seed),
                     plotting.theory.ufm_dynamics_figure),
    "ufm_confusion": (lambda c: studies.ufm_confusion_study(c.ufm_R, c.ufm_delta, c.ufm_hidden_dim,
                                                            c.ufm_lr, seed=c.seed),
                      plotting.theory.ufm_confusion_figure),
    "ufm_learning_times": (lambda c: studies.ufm_times_study(R_convergence=c.ufm_R,
                                                             delta_finite=c.ufm_delta),
                           plotting.theory.ufm_times_figure),
}
FIGURES = tuple(STUDIES)

_FLOAT64_BYTES = 8  # the studies run in float64 whatever the default float width


def validate(config) -> None:
  """Each figure's problem against the machine's memory (float64 throughout).

  The quadratic's three optimizer paths ``3 (steps + 1) C``; the simple
  setting's ``n = sum_k lcm(1..c) / k`` one-hot examples (``n x c`` inputs,
  logits and gradients); the unigram figure's vectors of size ``10^k``; the
  UFM's ``hidden_dim x 2 (R + 1)`` features.
  """
  if "ufm_dynamics" in config.figures:
    try:
      steps = studies.ufm_dynamics_steps(config.ufm_R, config.ufm_delta, config.ufm_lr)
    except ValueError as error:
      raise ValueError(f"config.ufm_lr={config.ufm_lr} (with config.ufm_R={config.ufm_R}, "
                       f"config.ufm_delta={config.ufm_delta}): {error}") from None
    if max(steps.values()) > MAX_UFM_STEPS:
      raise ValueError(f"config.ufm_lr={config.ufm_lr} with config.ufm_delta="
                       f"{config.ufm_delta} needs {max(steps.values()):.3g} GD steps for the UFM "
                       f"dynamics (at most {MAX_UFM_STEPS:.0e}): raise config.ufm_lr or lower "
                       "config.ufm_delta")
  lower = " (or pick --config.preset=quick)"
  c = config.quadratic_classes
  ex.check_memory(_FLOAT64_BYTES * 3 * (config.quadratic_steps + 1) * c * 2,
                  what=f"config.quadratic_classes={c} x config.quadratic_steps="
                       f"{config.quadratic_steps}",
                  lower="config.quadratic_classes or config.quadratic_steps" + lower)
  c = config.simple_classes
  n = sum(math.lcm(*range(1, c + 1)) // k for k in range(1, c + 1))
  ex.check_memory(_FLOAT64_BYTES * 4 * n * c, what=f"config.simple_classes={c} (n={n} examples)",
                  lower="config.simple_classes" + lower)
  ex.check_memory(_FLOAT64_BYTES * 8 * 10**config.unigram_max_log10_d,
                  what=f"config.unigram_max_log10_d={config.unigram_max_log10_d}",
                  lower="config.unigram_max_log10_d" + lower)
  ex.check_memory(_FLOAT64_BYTES * 6 * (config.ufm_hidden_dim + 4) * 2 * (config.ufm_R + 1),
                  what=f"config.ufm_R={config.ufm_R} with config.ufm_hidden_dim="
                       f"{config.ufm_hidden_dim}",
                  lower="config.ufm_R or config.ufm_hidden_dim" + lower)


MAX_UFM_STEPS = 10**7  # an hour or so of the UFM's GD on this CPU

CONFIG = ex.Config(
    presets={
        "quick": dict(quadratic_classes=100, simple_gd_steps=20_000, unigram_max_log10_d=6,
                      ufm_delta=8.0, ufm_lr=5e-3),
        "paper": dict(quadratic_classes=1000, simple_gd_steps=100_000, unigram_max_log10_d=7,
                      ufm_delta=12.0, ufm_lr=1e-3),
    },
    fields=dict(
        quadratic_classes=fields.Int(minimum=2, help="Fig 6: pi_k ∝ 1/k"),
        simple_gd_steps=fields.Int(minimum=1, help="GD markers on the Thm 3 figure"),
        unigram_max_log10_d=fields.Int(minimum=1, maximum=12,
                                       help="smoothness vs d up to 10^this"),
        ufm_delta=fields.Positive(maximum=700.0,  # e^-745 underflows float64 to 0
                                  help="init scale e^{-delta}"),
        ufm_lr=fields.Positive(help="GD step on the UFM"),
        figures=fields.Names(FIGURES, default=",".join(FIGURES),
                             help="which figures to draw (comma-separated subset)"),
        quadratic_steps=fields.Int(minimum=1, default=200),
        simple_classes=fields.Int(minimum=2, maximum=40, default=8,
                                  help="n_k = lcm(1..c) / k: exactly Zipf, n = lcm(1..c) H_c"),
        simple_gd_lr=fields.Positive(maximum=0.5, default=0.05,  # GD tracks gradient flow
                                     help="GD step on the Thm 3 figure (<= 0.5: the loss is "
                                          "1/2-smooth; the figure compares with gradient flow)"),
        unigram_eps=fields.Positive(default=0.01),
        ufm_R=fields.Int(minimum=1, default=10,
                         help="imbalance ratio of the spectrum and dynamics figures"),
        ufm_hidden_dim=fields.Int(minimum=3, default=8,
                                  help=">= the 3 modes of the 4-class STEP labels"),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def _draw(name: str, config, workdir: str, progress: ex.Progress) -> dict:
  """One figure: its PNG and its numbers (with ``seconds``), or both from an earlier run.

  A figure is done once its PNG and its numbers are saved; a rerun skips it.
  """
  png = os.path.join(workdir, f"{name}.png")
  if name in progress and os.path.exists(png):
    logging.info("%s.png: done in an earlier run", name)
    return progress[name]
  study, figure = STUDIES[name]
  tick = time.perf_counter()
  result = study(config)
  plotting.save_figure(figure(**result.data), png)
  numbers = dict(result.summary, seconds=time.perf_counter() - tick)
  logging.info("%s.png in %.1fs", name, numbers["seconds"])
  return progress.put(name, numbers)


def plan_note(config) -> str:
  """`experiments.reproduce --plan`: why this preset has no step to lower."""
  return ("no network: closed forms drawn over small scanned simulations and ODE solves "
          f"(quadratic_classes={config.quadratic_classes}, simple_gd_steps="
          f"{config.simple_gd_steps}); sequential and latency-bound, run on a CPU")


def run(config, workdir: str) -> dict:
  progress = ex.Progress(workdir)
  start = time.perf_counter()
  summary = {name: _draw(name, config, workdir, progress) for name in config.figures}
  summary["total_seconds"] = time.perf_counter() - start  # this process only
  ex.write_outputs(workdir, summary=summary)
  logging.info("wrote %d figures to %s in %.1fs", len(config.figures), workdir,
               summary["total_seconds"])
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
