"""Config for experiments/curvature_linear.py (paper H Figs 7, 8, 23, 27, 28).

Presets (``--config.preset=...``): ``quick`` m=7 (about a minute on a 2-core
CPU), ``small`` m=8 (a few minutes), ``paper`` m=11 (Fig 7's scale: needs a
GPU or patience). Step sizes default to the values the authors' code selects
(DESIGN.md, "Step sizes the authors found": m=7, 300 steps: GD 10^-1, Adam
10^-2.5; m=11: GD 10^-2.5, Adam 10^-3.5); m=8 reuses the m=7 values.
``--config.tune=True`` instead tunes both on one seed with the library's
paper H App. A.4 selection (sparse grid 1e-6..1e1, then half powers).

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS`` and the sizes against the machine's memory (`estimate_bytes`).
"""

import jax
from ml_collections import config_dict

from imbalance_jax import _checks, config, data, optim
from imbalance_jax.models.linear import INITS
from imbalance_jax.train import SPARSE_EXPONENTS

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


RUN = config.Parsed(optim.parse_run, "a run name <optimizer>[+m][@<weighting>] with optimizer in "
                    f"{tuple(optim.OPTIMIZERS)}")
FIELDS = {
    "preset": config.Choice(PRESETS),
    "m": config.Int(minimum=2, maximum=60),  # in practice memory bounds it: estimate_bytes
    "num_steps": config.Int(minimum=1),
    "log_every": config.Int(minimum=1),
    "adam_lr": config.Positive(),
    "gd_lr": config.Positive(),
    "snapshot_steps": config.IntList(minimum=0),
    "adam_run": RUN,
    "gd_run": RUN,
    "tune": config.Bool(),
    "map_classes": config.Int(minimum=2),
    "map_dims": config.Int(minimum=1),
    "include_bias": config.Bool(),
    "input_dist": config.Choice(data.INPUT_DISTRIBUTIONS),
    "init_scheme": config.Choice(INITS),
    "num_groups": config.Int(minimum=1),
    "seed": config.Int(minimum=0),
}


def estimate_bytes(cfg: config_dict.ConfigDict) -> int:
  """Rough peak memory: the data, and per run member ``3 n c + 4 c (d + 1)`` numbers.

  With ``tune`` a sweep over the 8 sparse step sizes is the largest step.
  """
  m = cfg.m
  n, d, c = m * 2**m, (m + 1) * 2**m, 2**m - 1
  members = len(SPARSE_EXPONENTS) if cfg.tune else 1
  itemsize = 8 if jax.config.jax_enable_x64 else 4
  return itemsize * (n * d + members * (3 * n * c + 4 * c * (d + 1)))


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field (its range), before any work."""
  config.check_fields(cfg, FIELDS)
  config.check_step_schedule(cfg)
  snapshots = config.IntList(minimum=0).check("config.snapshot_steps", cfg.snapshot_steps)
  if max(snapshots) > cfg.num_steps:
    raise ValueError(f"config.snapshot_steps must lie in [0, config.num_steps={cfg.num_steps}], "
                     f"got {cfg.snapshot_steps!r}")
  m = cfg.m
  n, d, c = m * 2**m, (m + 1) * 2**m, 2**m - 1
  _checks.check_memory(estimate_bytes(cfg), what=f"config.m={m} (n={n}, d={d}, c={c})",
                       lower="config.m (presets: quick m=7, small m=8, paper m=11)")
  if cfg.map_classes > c:
    raise ValueError(f"config.map_classes must be in [2, {c}] (the classes at m={m}), "
                     f"got {cfg.map_classes}")
  if cfg.map_dims > d:
    raise ValueError(f"config.map_dims must be in [1, {d}] (the input dims at m={m}), "
                     f"got {cfg.map_dims}")
