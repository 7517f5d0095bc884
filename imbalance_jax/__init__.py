"""imbalance_jax: optimization under heavy-tailed class imbalance, in JAX/Flax.

Submodules are the public namespaces::

  import imbalance_jax as ij
  ds = ij.data.heavy_tailed_labels(jax.random.key(0), m=7)
  model = ij.models.LinearSoftmax(ds.num_classes)
  run = ij.train.make_train(ij.train.classification_objective(model.apply),
                            ij.optim.injectable("adam", momentum=0.9), num_steps=300)

``ij.plotting`` (matplotlib; one module per figure family) is imported on demand:
figure functions there take results computed by the library and return a Figure.
"""

from imbalance_jax import curvature, data, losses, metrics, models, optim, results, theory, train
from imbalance_jax.types import Dataset, make_dataset

__version__ = "0.1.0"

__all__ = ["Dataset", "curvature", "data", "losses", "make_dataset", "metrics", "models", "optim",
           "results", "theory", "train"]
