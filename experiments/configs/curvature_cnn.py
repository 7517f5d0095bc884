"""Config for experiments/curvature_cnn.py (paper H Fig 24 shapes, last layer of the CNN).

The data are Random Heavy-Tailed Labels with image-shaped inputs (U[0,1)
pixels independent of the labels, ``[n, S, S, 1]``; ``n = m 2^m``,
``c = 2^m - 1``): Barcoded MNIST is not available offline here. Presets: ``quick`` (m=5,
16x16 images, a narrowed CNN with 16/32 channels; about two minutes on a
2-core CPU), ``small`` (m=6, 16x16, 16/32 channels, 200 steps), ``paper``
(m=8, 28x28, the paper's 32/100 channels, 300 full-batch steps as in the
authors' CNN runs; needs a GPU: with 32/100 channels even m=6 at 16x16 did not
finish 200 Adam steps in 16 minutes on the shared 2-core CPU). Step sizes were
picked by a short manual check on the quick preset (Adam 10^-2.5 fits within
150 steps; GD 10^-0.5 makes slow progress, 10^0 stalls);
``--config.tune=True`` uses the library's tuning instead.

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS`` and the sizes against the machine's memory (`estimate_bytes`).
"""

import jax
from ml_collections import config_dict

from imbalance_jax import _checks, config, optim
from imbalance_jax.train import SPARSE_EXPONENTS

PRESETS = {
    "quick": dict(m=5, image_size=16, cnn_features="16,32", num_steps=150, log_every=10,
                  num_probes=32, snapshot_steps="0,10,50,150"),
    "small": dict(m=6, image_size=16, cnn_features="16,32", num_steps=200, log_every=10,
                  num_probes=32, snapshot_steps="0,10,50,200"),
    "paper": dict(m=8, image_size=28, cnn_features="32,100", num_steps=300, log_every=10,
                  num_probes=64, snapshot_steps="0,10,100,300"),
}


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.m = config_dict.placeholder(int)
  config.image_size = config_dict.placeholder(int)
  config.cnn_features = config_dict.placeholder(str)  # channels of the two conv layers
  config.num_steps = config_dict.placeholder(int)
  config.log_every = config_dict.placeholder(int)
  config.num_probes = config_dict.placeholder(int)  # Hutchinson probes per record
  config.snapshot_steps = config_dict.placeholder(str)
  # Shared by all presets.
  config.model = "cnn"  # cnn (SmallCNN) | mlp (MLP on the flattened images)
  config.mlp_hidden = "256,256"  # hidden widths when model=mlp
  config.adam_run = "adam+m"
  config.adam_lr = 10**-2.5
  config.gd_run = "gd"
  config.gd_lr = 10**-0.5
  config.tune = False
  config.signal = 0.0  # > 0 adds a class template to the pixels (learnable structure)
  config.num_groups = 10
  config.map_classes = 20  # block-trace map of the head at the end (exact, on features)
  config.seed = 0
  return config


RUN = config.Parsed(optim.parse_run, "a run name <optimizer>[+m][@<weighting>] with optimizer in "
                    f"{tuple(optim.OPTIMIZERS)}")
FIELDS = {
    "preset": config.Choice(PRESETS),
    "m": config.Int(minimum=2, maximum=60),  # in practice memory bounds it: estimate_bytes
    "image_size": config.Int(minimum=4),
    "cnn_features": config.IntList(minimum=1),
    "num_steps": config.Int(minimum=1),
    "log_every": config.Int(minimum=1),
    "num_probes": config.Int(minimum=1),
    "snapshot_steps": config.IntList(minimum=0),
    "model": config.Choice(("cnn", "mlp")),
    "mlp_hidden": config.IntList(minimum=1),
    "adam_run": RUN,
    "adam_lr": config.Positive(),
    "gd_run": RUN,
    "gd_lr": config.Positive(),
    "tune": config.Bool(),
    "signal": config.Real(minimum=0.0),
    "num_groups": config.Int(minimum=1),
    "map_classes": config.Int(minimum=2),
    "seed": config.Int(minimum=0),
}


def estimate_bytes(cfg: config_dict.ConfigDict) -> int:
  """Rough peak memory of one training step with its Hutchinson record.

  Per example: the image, every layer's activations (forward and backward,
  ``x 3``) and, per probe, the head's features and logits (the probes are
  vmapped); with ``tune``, 8 sparse step sizes are swept at once.
  """
  n, c, size = cfg.m * 2**cfg.m, 2**cfg.m - 1, cfg.image_size
  if cfg.model == "cnn":
    widths = [int(w) for w in cfg.cnn_features.split(",")]
    activations, side = 0, size
    for width in widths:
      activations += side * side * width + (side // 2) ** 2 * width
      side //= 2
    features = side * side * widths[-1]
  else:
    widths = [int(w) for w in cfg.mlp_hidden.split(",")]
    activations = features = 0
    for width in widths:
      activations, features = activations + width, width
  members = len(SPARSE_EXPONENTS) if cfg.tune else 1
  per_example = size * size + members * 3 * (activations + c) + cfg.num_probes * (features + c)
  itemsize = 8 if jax.config.jax_enable_x64 else 4
  return itemsize * n * per_example


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field (its range), before any work."""
  config.check_fields(cfg, FIELDS)
  config.check_step_schedule(cfg)
  snapshots = config.IntList(minimum=0).check("config.snapshot_steps", cfg.snapshot_steps)
  if max(snapshots) > cfg.num_steps:
    raise ValueError(f"config.snapshot_steps must lie in [0, config.num_steps={cfg.num_steps}], "
                     f"got {cfg.snapshot_steps!r}")
  num_layers = len(cfg.cnn_features.split(","))
  if cfg.model == "cnn" and cfg.image_size < 2**num_layers:
    raise ValueError(f"config.image_size must be >= {2**num_layers} for "
                     f"{num_layers} conv layers (each halves it), got {cfg.image_size}")
  m, c = cfg.m, 2**cfg.m - 1
  _checks.check_memory(
      estimate_bytes(cfg),
      what=(f"config.m={m} (n={m * 2**m}, c={c}) with config.image_size={cfg.image_size}, "
            f"{cfg.model} widths {cfg.cnn_features if cfg.model == 'cnn' else cfg.mlp_hidden} "
            f"and config.num_probes={cfg.num_probes}"),
      lower="config.m, config.image_size, the widths or config.num_probes (presets: quick m=5, "
            "small m=6, paper m=8)")
  if cfg.map_classes > c:
    raise ValueError(f"config.map_classes must be in [2, {c}] (the classes at m={m}), "
                     f"got {cfg.map_classes}")
