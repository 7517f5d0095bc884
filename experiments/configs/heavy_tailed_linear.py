"""Config for experiments/heavy_tailed_linear.py (paper H Figs 4, 15, 16, 19, 22).

Presets (``--config.preset=...``): ``quick`` m=7 on CPU in a few minutes,
``small`` m=8 (paper App. C; about an hour on a 2-core CPU), ``paper`` m=11
(needs a GPU). Any field set on the command line wins over the preset, e.g.
``--config.num_steps=100`` or ``--config.input_dist=normal_0`` (Fig. 15) or
``--config.runs=gd+m,adam+m,gd+m@inverse_sqrt,gd+m@inverse`` (Fig. 22).
``fig16`` runs GD for 10,000 steps at one step size (the loss of every group
eventually falls); ``fig22`` compares 1/pi and 1/sqrt(pi) reweighting of GD
with GD and Adam (all with momentum), both at m=7.
"""

from ml_collections import config_dict

from imbalance_jax.optim import PAPER_RUNS

_ALL = ",".join(PAPER_RUNS)
PRESETS = {
    "quick": dict(m=7, num_seeds=3, num_steps=300, log_every=10, refine_rounds=1,
                  segment_steps=0, runs=_ALL, learning_rate=0.0),
    "small": dict(m=8, num_seeds=3, num_steps=1000, log_every=10, refine_rounds=1,
                  segment_steps=0, runs=_ALL, learning_rate=0.0),
    "paper": dict(m=11, num_seeds=3, num_steps=1000, log_every=10, refine_rounds=1,
                  segment_steps=100, runs=_ALL, learning_rate=0.0),
    "fig16": dict(m=7, num_seeds=3, num_steps=10_000, log_every=10, refine_rounds=0,
                  segment_steps=0, runs="gd", learning_rate=0.1),
    "fig22": dict(m=7, num_seeds=3, num_steps=300, log_every=10, refine_rounds=1,
                  segment_steps=0, runs="gd+m,adam+m,gd+m@inverse_sqrt,gd+m@inverse",
                  learning_rate=0.0),
}


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.m = config_dict.placeholder(int)  # frequency levels: n = m 2^m, d = (m+1) 2^m
  config.num_seeds = config_dict.placeholder(int)
  config.num_steps = config_dict.placeholder(int)  # full-batch steps per run
  config.log_every = config_dict.placeholder(int)
  config.refine_rounds = config_dict.placeholder(int)  # 1: half powers, 2: also quarters
  config.segment_steps = config_dict.placeholder(int)  # >0: checkpoint inside a sweep
  config.runs = config_dict.placeholder(str)  # <optimizer>[+m][@inverse|@inverse_sqrt],...
  config.learning_rate = config_dict.placeholder(float)  # >0: fixed step size, no tuning
  # Shared by all presets.
  config.loss_weighting = "none"  # applied to runs without an explicit @weighting
  config.input_dist = "uniform"  # uniform | normal_1 | normal_0 (Fig. 15)
  config.init_scheme = "pytorch"  # pytorch | zeros
  config.num_groups = 10
  config.divergence_threshold = 1.5
  config.seed = 0
  return config
