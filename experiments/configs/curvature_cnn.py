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
"""

from ml_collections import config_dict

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
