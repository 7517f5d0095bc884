"""Config for experiments/heavy_tailed_linear.py (paper H Figs 4, 15, 16, 19, 22).

Presets (``--config.preset=...``): ``quick`` m=7 on CPU in a few minutes,
``small`` m=8 (paper App. C; about an hour on a 2-core CPU), ``paper`` m=11
(needs a GPU). Any field set on the command line wins over the preset, e.g.
``--config.num_steps=100`` or ``--config.input_dist=normal_0`` (Fig. 15) or
``--config.runs=gd+m,adam+m,gd+m@inverse_sqrt,gd+m@inverse`` (Fig. 22).
``fig16`` runs GD for 10,000 steps at one step size (the loss of every group
eventually falls); ``fig22`` compares 1/pi and 1/sqrt(pi) reweighting of GD
with GD and Adam (all with momentum), both at m=7.

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS`` and the sizes against the machine's memory (`estimate_bytes`).
"""

import jax
from ml_collections import config_dict

from imbalance_jax import _checks, config, data, losses, optim
from imbalance_jax.models.linear import INITS
from imbalance_jax.optim import PAPER_RUNS
from imbalance_jax.train import SPARSE_EXPONENTS

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
  config.segment_steps = config_dict.placeholder(int)  # >0: checkpoint every k steps of a round
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


FIELDS = {
    "preset": config.Choice(PRESETS),
    "m": config.Int(minimum=1, maximum=60),  # in practice memory bounds it: estimate_bytes
    "num_seeds": config.Int(minimum=1),
    "num_steps": config.Int(minimum=1),
    "log_every": config.Int(minimum=1),
    "refine_rounds": config.Int(minimum=0, maximum=5),
    "segment_steps": config.Int(minimum=0),
    "runs": config.Parsed(optim.parse_runs,
                          "comma-separated <optimizer>[+m][@<weighting>] run names with "
                          f"optimizer in {tuple(optim.OPTIMIZERS)} and weighting in "
                          f"{losses.WEIGHTINGS}"),
    "learning_rate": config.Real(minimum=0.0),  # 0: tune, > 0: fixed
    "loss_weighting": config.Choice(losses.WEIGHTINGS),
    "input_dist": config.Choice(data.INPUT_DISTRIBUTIONS),
    "init_scheme": config.Choice(INITS),
    "num_groups": config.Int(minimum=1),
    "divergence_threshold": config.Real(minimum=1.0, open_minimum=True),
    "seed": config.Int(minimum=0),
}


def estimate_bytes(cfg: config_dict.ConfigDict) -> int:
  """Rough peak memory: the data of every seed plus every sweep member's working set.

  Per member: logits, probabilities and their gradient (``3 n c``) and the
  parameters, gradients and two optimizer moments (``4 c (d + 1)``); a sweep
  round holds ``num_seeds`` x (8 sparse step sizes, or 1 fixed) members.
  """
  m, seeds = cfg.m, cfg.num_seeds
  n, d, c = m * 2**m, (m + 1) * 2**m, 2**m - 1
  rates = 1 if cfg.learning_rate > 0 else len(SPARSE_EXPONENTS)
  itemsize = 8 if jax.config.jax_enable_x64 else 4
  return itemsize * (seeds * n * d + seeds * rates * (3 * n * c + 4 * c * (d + 1)))


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field (its range), before any work."""
  config.check_fields(cfg, FIELDS)
  config.check_step_schedule(cfg)
  m = cfg.m
  _checks.check_memory(
      estimate_bytes(cfg),
      what=(f"config.m={m} with config.num_seeds={cfg.num_seeds} (n={m * 2**m}, "
            f"d={(m + 1) * 2**m}, c={2**m - 1})"),
      lower="config.m or config.num_seeds (presets: quick m=7, small m=8, paper m=11)")
