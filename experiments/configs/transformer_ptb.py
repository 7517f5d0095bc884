"""Config for experiments/transformer_ptb.py (paper H Figs 17, 18, 20, 22 (PTB), 26, 1, 10).

Paper presets (``--config.preset=...``; GPU-scale):

* ``fig17``: 2-layer transformer (d=1000, 4 heads) on PTB, mini-batches of 512
  windows of 35 tokens (4 accumulated micro-batches), SGD and Adam (with
  momentum), validation recorded.
* ``fig18``: 1-layer transformer (d=1200) full batch on TinyPTB, GD and Adam.
* ``fig20``: as ``fig18`` with all eight runs of `optim.PAPER_RUNS`.
* ``fig22``: the PTB panel of Fig 22: SGD on the 1/pi_k and 1/sqrt(pi_k)
  reweighted losses against SGD and Adam (all with momentum), as ``fig17``.
* ``fig26``: per-block gradient norm and Hessian trace of the classifier along
  SGD and Adam on the ``fig17`` problem (Hutchinson estimates).
* ``gpt2_wikitext103``: Figs 1 and 10, GPT2-Small on WikiText-103 (BPE,
  50,608 pieces requested; 1,024-token windows; mini-batch 512 accumulated
  over 64 micro-batches of 8 windows), training and validation per-group losses; needs
  ``--config.corpus_dir`` with the unpacked WikiText-103 and a large GPU
  (see docs/language.md for memory and time per step).

CPU presets (minutes on a 2-core CPU; tiny widths, a few windows, compacted
vocabulary, few steps): ``quick`` (= ``fig18`` scaled down), ``quick_fig17``
(mini-batch on PTB), ``quick_fig22`` and ``quick_fig26``. Any field set on the
command line wins, e.g. ``--config.preset=quick --config.runs=all`` gives a
CPU-scale Fig 20.

Model fields ``d_model``, ``num_heads``, ``mlp_dim`` and ``dropout_rate`` left
at -1 take the values of ``model`` in `models.TRANSFORMER_CONFIGS`.
"""

import os

import jax
from ml_collections import config_dict

from imbalance_jax import _checks, config, losses, optim
from imbalance_jax.models import TRANSFORMER_CONFIGS, flops_per_token

_ALL = ",".join(optim.PAPER_RUNS)
_FIG22 = "gd+m,adam+m,gd+m@inverse_sqrt,gd+m@inverse"
_PTB_MINIBATCH = dict(corpus="ptb", tokenizer="word", model="two_layer", seq_len=35,
                      num_windows=0, compact_vocab=False, batch_size=512,
                      accumulation_steps=4, chunk_size=256,
                      num_seeds=3, num_steps=5000, log_every=100, refine_rounds=1,
                      exponents="", valid=True, curvature=False)
_TINYPTB_FULL = dict(corpus="tinyptb", tokenizer="word", model="one_layer", seq_len=35,
                     num_windows=0, compact_vocab=False, batch_size=0, chunk_size=256,
                     num_seeds=3, num_steps=1000, log_every=10, refine_rounds=1, exponents="",
                     valid=False, curvature=False)
_CPU = dict(d_model=32, num_heads=2, mlp_dim=32, compact_vocab=True, num_seeds=1,
            refine_rounds=0, exponents="-4,-3,-2,-1,0,1")
PRESETS = {
    "fig17": dict(_PTB_MINIBATCH, runs="gd+m,adam+m"),
    "fig18": dict(_TINYPTB_FULL, runs="gd,adam"),
    "fig20": dict(_TINYPTB_FULL, runs=_ALL),
    "fig22": dict(_PTB_MINIBATCH, runs=_FIG22),
    "fig26": dict(_PTB_MINIBATCH, runs="gd+m,adam+m", curvature=True, valid=False),
    "gpt2_wikitext103": dict(corpus="wikitext103", tokenizer="bpe", model="gpt2_small",
                             seq_len=1024, num_windows=0, compact_vocab=False, batch_size=512,
                             accumulation_steps=64, chunk_size=8, num_seeds=1,
                             num_steps=15_000, log_every=500, refine_rounds=0,
                             exponents="-4,-3", runs="gd+m,adam+m", valid=True,
                             curvature=False),
    "quick": dict(_TINYPTB_FULL, **_CPU, num_windows=48, num_steps=100, runs="gd,adam"),
    "quick_fig17": dict(_PTB_MINIBATCH, **_CPU, num_windows=128, batch_size=32,
                        num_steps=300, log_every=20, runs="gd+m,adam+m", valid=False),
    "quick_fig22": dict(_PTB_MINIBATCH, **_CPU, num_windows=128, batch_size=32,
                        num_steps=300, log_every=20, runs=_FIG22, valid=False),
    "quick_fig26": dict(_PTB_MINIBATCH, **_CPU, num_windows=128, batch_size=32,
                        num_steps=300, log_every=20, runs="gd+m,adam+m", valid=False,
                        curvature=True),
}
for _preset in PRESETS.values():
  _preset.setdefault("accumulation_steps", 1)
  for _name in ("d_model", "num_heads", "mlp_dim"):
    _preset.setdefault(_name, -1)


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.corpus = config_dict.placeholder(str)  # ptb | tinyptb | wikitext2 | wikitext103
  config.tokenizer = config_dict.placeholder(str)  # word | bpe | unigram
  config.model = config_dict.placeholder(str)  # a models.TRANSFORMER_CONFIGS name
  config.d_model = config_dict.placeholder(int)  # -1: the model's
  config.num_heads = config_dict.placeholder(int)  # -1: the model's
  config.mlp_dim = config_dict.placeholder(int)  # -1: the model's (0: no MLP)
  config.seq_len = config_dict.placeholder(int)
  config.num_windows = config_dict.placeholder(int)  # first windows of each split (0: all)
  config.compact_vocab = config_dict.placeholder(bool)  # keep only the types in the windows
  config.batch_size = config_dict.placeholder(int)  # windows per step (0: full batch)
  config.accumulation_steps = config_dict.placeholder(int)  # micro-batches per step
  config.chunk_size = config_dict.placeholder(int)  # windows per pass of full-set evaluations
  config.num_seeds = config_dict.placeholder(int)
  config.num_steps = config_dict.placeholder(int)
  config.log_every = config_dict.placeholder(int)
  config.refine_rounds = config_dict.placeholder(int)
  config.exponents = config_dict.placeholder(str)  # first tuning round ("": -6..1)
  config.runs = config_dict.placeholder(str)  # <optimizer>[+m][@<weighting>],... or "all"
  config.valid = config_dict.placeholder(bool)  # also record the validation split
  config.curvature = config_dict.placeholder(bool)  # Fig 26 block diagnostics
  # Shared by all presets.
  config.corpus_dir = ""  # "" = embedded PTB; WikiText needs it
  config.subword_vocab_size = 50_608  # BPE/Unigram (paper H's WikiText-103 vocabulary)
  config.dropout_rate = -1.0  # -1: the model's
  config.learning_rate = 0.0  # >0: fixed step size for every run, no tuning
  config.curvature_every = 0  # steps between curvature records (0: log_every)
  config.curvature_windows = 64  # training windows the diagnostics are computed on
  config.num_probes = 16  # Hutchinson probes per record
  config.num_groups = 10
  config.divergence_threshold = 1.5
  config.seed = 0
  return config


def parse_runs(value: str):
  return optim.parse_runs(_ALL if value.strip() == "all" else value)


def parse_exponents(value: str) -> tuple[float, ...]:
  """``"-4,-3"`` -> (-4.0, -3.0); ``""`` -> paper H's grid 10^-6..10^1."""
  from imbalance_jax.train import SPARSE_EXPONENTS
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
    "corpus": config.Choice(("ptb", "tinyptb", "wikitext2", "wikitext103")),
    "tokenizer": config.Choice(("word", "bpe", "unigram")),
    "model": config.Choice(TRANSFORMER_CONFIGS),
    "d_model": config.Int(minimum=-1),
    "num_heads": config.Int(minimum=-1),
    "mlp_dim": config.Int(minimum=-1),
    "seq_len": config.Int(minimum=2),
    "num_windows": config.Int(minimum=0),
    "compact_vocab": config.Bool(),
    "batch_size": config.Int(minimum=0),
    "accumulation_steps": config.Int(minimum=1),
    "chunk_size": config.Int(minimum=0),
    "num_seeds": config.Int(minimum=1),
    "num_steps": config.Int(minimum=1),
    "log_every": config.Int(minimum=1),
    "refine_rounds": config.Int(minimum=0, maximum=5),
    "exponents": config.Parsed(parse_exponents, "comma-separated powers of 10 or ''"),
    "runs": config.Parsed(parse_runs, "'all' or comma-separated <optimizer>[+m][@<weighting>] "
                          f"run names with optimizer in {tuple(optim.OPTIMIZERS)} and "
                          f"weighting in {losses.WEIGHTINGS}"),
    "valid": config.Bool(),
    "curvature": config.Bool(),
    "corpus_dir": config.Parsed(_directory, "an existing directory or '' (embedded PTB)"),
    "subword_vocab_size": config.Int(minimum=2),
    "dropout_rate": config.Real(minimum=-1.0, maximum=1.0),
    "learning_rate": config.Real(minimum=0.0),
    "curvature_every": config.Int(minimum=0),
    "curvature_windows": config.Int(minimum=1),
    "num_probes": config.Int(minimum=1),
    "num_groups": config.Int(minimum=1),
    "divergence_threshold": config.Real(minimum=1.0, open_minimum=True),
    "seed": config.Int(minimum=0),
}


def model_fields(cfg: config_dict.ConfigDict) -> dict:
  """The `models.make_transformer` overrides: the set fields among d_model, ... dropout_rate."""
  out = {name: cfg[name] for name in ("d_model", "num_heads", "mlp_dim") if cfg[name] >= 0}
  if cfg.dropout_rate >= 0:
    out["dropout_rate"] = cfg.dropout_rate
  return out


def _vocab_bound(cfg) -> int:
  if cfg.tokenizer != "word":
    return cfg.subword_vocab_size
  return 5980 if cfg.corpus == "tinyptb" else (9922 if cfg.corpus == "ptb" else 300_000)


def estimate_bytes(cfg: config_dict.ConfigDict) -> int:
  """Rough peak memory of a sweep round, per member: parameters with gradient and two
  moments, and one pass's saved activations per token of a micro-batch (or chunk): the
  logits and their softmax and gradient (``3 V``) and per layer ``20 d + 2 mlp`` (q, k,
  v, residuals, LayerNorms, dropout masks) plus ``3 heads T`` (attention scores, weights,
  dropout mask). GPT2-Small at 8 windows of 1,024 tokens: about 28 GB of activations and
  2.6 GB of parameters and Adam state."""
  arch = {**TRANSFORMER_CONFIGS[cfg.model], **model_fields(cfg)}
  v, d, layers, mlp = _vocab_bound(cfg), arch["d_model"], arch["num_layers"], arch["mlp_dim"]
  heads = arch["num_heads"]
  params = 2 * v * d + v + layers * (4 * d * d + 2 * d * mlp)
  if cfg.batch_size:
    windows = cfg.batch_size // cfg.accumulation_steps
  else:
    total = cfg.num_windows or 2095
    windows = min(cfg.chunk_size or total, total)
  tokens = windows * cfg.seq_len
  activations = tokens * (3 * v + layers * (20 * d + 2 * mlp + 3 * heads * cfg.seq_len))
  members = cfg.num_seeds * (1 if cfg.learning_rate > 0 else len(parse_exponents(cfg.exponents)))
  itemsize = 8 if jax.config.jax_enable_x64 else 4
  return itemsize * members * (4 * params + activations)


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field, before any work."""
  config.check_fields(cfg, FIELDS)
  config.check_step_schedule(cfg)
  if cfg.corpus.startswith("wikitext") and not cfg.corpus_dir:
    raise ValueError(f"config.corpus_dir is required for config.corpus={cfg.corpus!r}: the "
                     "directory holding the unpacked WikiText files (nothing is downloaded)")
  if cfg.batch_size and cfg.batch_size % cfg.accumulation_steps:
    raise ValueError(f"config.accumulation_steps={cfg.accumulation_steps} must divide "
                     f"config.batch_size={cfg.batch_size}")
  if cfg.curvature_every and cfg.num_steps % cfg.curvature_every:
    raise ValueError(f"config.curvature_every={cfg.curvature_every} must divide "
                     f"config.num_steps={cfg.num_steps}")
  arch = {**TRANSFORMER_CONFIGS[cfg.model], **model_fields(cfg)}
  if arch["d_model"] % arch["num_heads"]:
    raise ValueError(f"config.d_model={arch['d_model']} must be divisible by "
                     f"config.num_heads={arch['num_heads']}")
  _checks.check_memory(estimate_bytes(cfg), what=f"config.preset={cfg.preset!r} ({cfg.model})",
                       lower="config.batch_size/accumulation_steps, config.chunk_size, the "
                             "widths or config.num_seeds")


def step_cost(cfg: config_dict.ConfigDict, vocab_size: int, num_train_windows: int) -> dict:
  """FLOPs per training token and per step (`models.flops_per_token`) of this config
  (a full-batch step sees all ``num_train_windows`` windows)."""
  arch = {**TRANSFORMER_CONFIGS[cfg.model], **model_fields(cfg)}
  per_token = flops_per_token(vocab_size, cfg.seq_len, **arch)
  tokens = (cfg.batch_size or num_train_windows) * cfg.seq_len
  return {"flops_per_token": per_token, "tokens_per_step": tokens,
          "flops_per_step": per_token * tokens}
