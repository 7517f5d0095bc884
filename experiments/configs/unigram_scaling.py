"""Config for experiments/unigram_scaling.py (paper S: steps to eps vs vocabulary size).

Presets (``--config.preset=...``): ``quick`` (a few minutes on a 2-core CPU:
runs are capped at ``max_steps`` steps and ``max_work / d`` steps, so GD and
normalized GD are censored at the largest sizes) and ``paper`` (eps = 0.01,
up to 10^5 steps; hours on a CPU).

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS`` and the largest vocabulary against the machine's memory.
"""

import jax
from ml_collections import config_dict

from imbalance_jax import _checks, config
from imbalance_jax.theory.unigram_scaling import METHODS

PRESETS = {
    "quick": dict(sizes="100,1000,10000,100000,300000,1000000", eps=0.02, max_steps=10_000,
                  max_work=3e9, segment_steps=50),
    "paper": dict(sizes="100,1000,10000,30000,100000,300000,1000000", eps=0.01,
                  max_steps=100_000, max_work=1e12, segment_steps=200),
}


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.sizes = config_dict.placeholder(str)  # vocabulary sizes d, comma-separated
  config.eps = config_dict.placeholder(float)  # target suboptimality f - f* = KL(pi || p)
  config.max_steps = config_dict.placeholder(int)  # iteration cap
  config.max_work = config_dict.placeholder(float)  # cap on d x steps per run
  config.segment_steps = config_dict.placeholder(int)  # stopping granularity
  # Shared by all presets.
  config.methods = ("normalized_gd,sign_descent,adam,gd,normalized_gd@theory,"
                    "sign_descent@theory")
  config.min_exponent = -3.0  # first sweep: 10^e, e = min..max in half decades
  config.max_exponent = 2.0
  config.local_halfwidth = 0.5  # later sizes: previous best +- this many decades...
  config.local_step = 0.25  # ...in steps of this many decades
  config.zipf_exponent = 1.0
  return config


def _methods(text: str) -> list[str]:
  names = [name.strip() for name in text.split(",")]
  for name in names:
    _checks.check_choice("method", name, METHODS)
  if len(set(names)) != len(names):
    raise ValueError(f"duplicate methods in {names}")
  return names


FIELDS = {
    "preset": config.Choice(PRESETS),
    "sizes": config.IntList(minimum=2),
    "eps": config.Positive(),
    "max_steps": config.Int(minimum=1),
    "max_work": config.Positive(),
    "segment_steps": config.Int(minimum=1),
    "methods": config.Parsed(_methods, f"comma-separated methods from {tuple(METHODS)}"),
    "min_exponent": config.Real(minimum=-30.0, maximum=30.0),
    "max_exponent": config.Real(minimum=-30.0, maximum=30.0),
    "local_halfwidth": config.Positive(),
    "local_step": config.Positive(),
    "zipf_exponent": config.Real(minimum=0.0),
}


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field (its range), before any work.

  Memory: a sweep holds, per step size, the parameters, gradient and two
  optimizer moments of the largest vocabulary (``4 d`` numbers per member).
  """
  config.check_fields(cfg, FIELDS)
  sizes = config.IntList(minimum=2).check("config.sizes", cfg.sizes)
  if list(sizes) != sorted(set(sizes)):
    raise ValueError(f"config.sizes must be strictly increasing, got {cfg.sizes!r}")
  if cfg.max_steps % cfg.segment_steps:
    raise ValueError(f"config.max_steps={cfg.max_steps} must be a multiple of "
                     f"config.segment_steps={cfg.segment_steps}")
  if cfg.min_exponent > cfg.max_exponent:
    raise ValueError(f"config.min_exponent={cfg.min_exponent} must be <= "
                     f"config.max_exponent={cfg.max_exponent}")
  members = max(int((cfg.max_exponent - cfg.min_exponent) / 0.5) + 1,
                int(2 * cfg.local_halfwidth / cfg.local_step) + 1, 4)
  itemsize = 8 if jax.config.jax_enable_x64 else 4
  _checks.check_memory(itemsize * 6 * members * max(sizes),
                       what=f"config.sizes up to d={max(sizes)} with {members} step sizes",
                       lower="the largest of config.sizes (or pick --config.preset=quick)")
