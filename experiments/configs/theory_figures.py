"""Config for experiments/theory_figures.py (issue 5: every theory figure).

Presets (``--config.preset=...``): ``quick`` (well under 2 minutes on a 2-core
CPU) and ``paper`` (more classes, longer GD runs, a larger init scale delta).
"""

from ml_collections import config_dict

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
  config.quadratic_steps = 200
  config.simple_classes = 8  # n_k = 840 / k: exactly Zipf
  config.simple_gd_lr = 0.05
  config.unigram_eps = 0.01
  config.ufm_R = 10  # imbalance ratio of the spectrum and dynamics figures
  config.ufm_hidden_dim = 8
  config.seed = 0
  return config
