"""Config for experiments/theory_figures.py (issue 5: every theory figure).

Presets (``--config.preset=...``): ``quick`` (well under 2 minutes on a 2-core
CPU) and ``paper`` (more classes, longer GD runs, a larger init scale delta).

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS`` and the sizes of each figure's problem against the machine's memory.
"""

import math

from ml_collections import config_dict

from imbalance_jax import _checks, config

FIGURES = ("quadratic", "simple_setting", "unigram_smoothness", "ufm_spectrum", "ufm_dynamics",
           "ufm_confusion", "ufm_learning_times")

PRESETS = {
    "quick": dict(quadratic_classes=100, simple_gd_steps=20_000, unigram_max_log10_d=6,
                  ufm_delta=8.0, ufm_lr=5e-3),
    "paper": dict(quadratic_classes=1000, simple_gd_steps=100_000, unigram_max_log10_d=7,
                  ufm_delta=12.0, ufm_lr=1e-3),
}


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.quadratic_classes = config_dict.placeholder(int)  # Fig 6: pi_k ∝ 1/k
  config.simple_gd_steps = config_dict.placeholder(int)  # GD markers on the Thm 3 figure
  config.unigram_max_log10_d = config_dict.placeholder(int)  # smoothness vs d up to 10^this
  config.ufm_delta = config_dict.placeholder(float)  # init scale e^{-delta}
  config.ufm_lr = config_dict.placeholder(float)  # GD step on the UFM
  # Shared by all presets.
  config.figures = ",".join(FIGURES)  # which figures to draw (comma-separated subset)
  config.quadratic_steps = 200
  config.simple_classes = 8  # n_k = 840 / k: exactly Zipf
  config.simple_gd_lr = 0.05
  config.unigram_eps = 0.01
  config.ufm_R = 10  # imbalance ratio of the spectrum and dynamics figures
  config.ufm_hidden_dim = 8
  config.seed = 0
  return config


def _figures(text: str) -> list[str]:
  names = [name.strip() for name in text.split(",")]
  for name in names:
    _checks.check_choice("figure", name, FIGURES)
  if len(set(names)) != len(names):
    raise ValueError(f"duplicate figures in {names}")
  return names


FIELDS = {
    "preset": config.Choice(PRESETS),
    "figures": config.Parsed(_figures, f"a comma-separated subset of {FIGURES}"),
    "quadratic_classes": config.Int(minimum=2),
    "simple_gd_steps": config.Int(minimum=1),
    "unigram_max_log10_d": config.Int(minimum=1, maximum=12),
    "ufm_delta": config.Positive(),
    "ufm_lr": config.Positive(),
    "quadratic_steps": config.Int(minimum=1),
    "simple_classes": config.Int(minimum=2, maximum=40),  # n = lcm(1..c) H_c examples
    "simple_gd_lr": config.Positive(),
    "unigram_eps": config.Positive(),
    "ufm_R": config.Int(minimum=1),
    "ufm_hidden_dim": config.Int(minimum=3),  # >= the 3 modes of the 4-class STEP labels
    "seed": config.Int(minimum=0),
}


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field (its range), before any work.

  Memory (float64 throughout): the quadratic's three optimizer paths
  ``3 (steps + 1) C``; the simple setting's ``n = sum_k lcm(1..c) / k`` one-hot
  examples (``n x c`` inputs, logits and gradients); the unigram figure's
  vectors of size ``10^k``; the UFM's ``hidden_dim x 2 (R + 1)`` features.
  """
  config.check_fields(cfg, FIELDS)
  lower = " (or pick --config.preset=quick)"
  c = cfg.quadratic_classes
  _checks.check_memory(8 * 3 * (cfg.quadratic_steps + 1) * c * 2,
                       what=f"config.quadratic_classes={c} x config.quadratic_steps="
                            f"{cfg.quadratic_steps}",
                       lower="config.quadratic_classes or config.quadratic_steps" + lower)
  c = cfg.simple_classes
  n = sum(math.lcm(*range(1, c + 1)) // k for k in range(1, c + 1))
  _checks.check_memory(8 * 4 * n * c, what=f"config.simple_classes={c} (n={n} examples)",
                       lower="config.simple_classes" + lower)
  _checks.check_memory(8 * 8 * 10**cfg.unigram_max_log10_d,
                       what=f"config.unigram_max_log10_d={cfg.unigram_max_log10_d}",
                       lower="config.unigram_max_log10_d" + lower)
  _checks.check_memory(8 * 6 * (cfg.ufm_hidden_dim + 4) * 2 * (cfg.ufm_R + 1),
                       what=f"config.ufm_R={cfg.ufm_R} with config.ufm_hidden_dim="
                            f"{cfg.ufm_hidden_dim}",
                       lower="config.ufm_R or config.ufm_hidden_dim" + lower)
