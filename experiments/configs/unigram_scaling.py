"""Config for experiments/unigram_scaling.py (paper S: steps to eps vs vocabulary size).

Presets (``--config.preset=...``): ``quick`` (a few minutes on a 2-core CPU:
runs are capped at ``max_steps`` steps and ``max_work / d`` steps, so GD and
normalized GD are censored at the largest sizes) and ``paper`` (eps = 0.01,
up to 10^5 steps; hours on a CPU).
"""

from ml_collections import config_dict

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
