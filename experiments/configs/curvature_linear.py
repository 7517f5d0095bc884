"""Config for experiments/curvature_linear.py (paper H Figs 7, 8, 23, 27, 28).

Presets (``--config.preset=...``): ``quick`` m=7 (about a minute on a 2-core
CPU), ``small`` m=8 (a few minutes), ``paper`` m=11 (Fig 7's scale: needs a
GPU or patience). Step sizes default to the values the authors' code selects
(DESIGN.md, "Step sizes the authors found": m=7, 300 steps: GD 10^-1, Adam
10^-2.5; m=11: GD 10^-2.5, Adam 10^-3.5); m=8 reuses the m=7 values.
``--config.tune=True`` instead tunes both on one seed with the library's
paper H App. A.4 selection (sparse grid 1e-6..1e1, then half powers).
"""

from ml_collections import config_dict

PRESETS = {
    "quick": dict(m=7, num_steps=300, log_every=10, adam_lr=10**-2.5, gd_lr=10**-1.0,
                  snapshot_steps="0,10,50,300"),
    "small": dict(m=8, num_steps=500, log_every=10, adam_lr=10**-2.5, gd_lr=10**-1.0,
                  snapshot_steps="0,10,100,500"),
    "paper": dict(m=11, num_steps=1000, log_every=10, adam_lr=10**-3.5, gd_lr=10**-2.5,
                  snapshot_steps="0,10,100,1000"),
}


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.m = config_dict.placeholder(int)  # n = m 2^m, d = (m+1) 2^m, c = 2^m - 1
  config.num_steps = config_dict.placeholder(int)
  config.log_every = config_dict.placeholder(int)  # diagnostics recorded every k steps
  config.adam_lr = config_dict.placeholder(float)
  config.gd_lr = config_dict.placeholder(float)
  config.snapshot_steps = config_dict.placeholder(str)  # scatter / map panels (nearest logged)
  # Shared by all presets.
  config.adam_run = "adam+m"  # run names as in imbalance_jax.optim.parse_run
  config.gd_run = "gd"
  config.tune = False  # tune both step sizes instead of using adam_lr / gd_lr
  config.map_classes = 40  # classes in the block maps (Figs 8, 28)
  config.map_dims = 4  # input dims per class in the entrywise map: 40 x 4 = 160 x 160
  config.include_bias = True  # block k = (w_k, b_k)
  config.input_dist = "uniform"
  config.init_scheme = "pytorch"  # pytorch | zeros
  config.num_groups = 10
  config.seed = 0
  return config
