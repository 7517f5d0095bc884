"""Input normalisation: per-pixel or per-channel statistics fitted on training inputs.

`fit_normalizer` fits the mean and sample std (a `Normalizer`) on the training
inputs only; `normalize` turns a data set's raw (e.g. uint8) inputs into floats
``(x - mean) / std``, leaving inputs with ``std == 0`` unchanged.

Example:
  >>> from imbalance_jax.data import make_image_dataset
  >>> train = make_image_dataset(np.array([[[[0]]], [[[2]]]], np.uint8), [0, 1], 2)
  >>> print(normalize(train, fit_normalizer(train.x)).x.ravel())
  [-0.70710677  0.70710677]
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.types import Dataset


class Normalizer(NamedTuple):
  """Affine input normalisation ``(x - mean) / std`` where ``std > 0``.

  ``mean``/``std`` broadcast against one example (``[H, W, C]`` per pixel,
  ``[C]`` per channel). Where ``std == 0`` the input is left unchanged.
  """
  mean: jax.Array
  std: jax.Array


def fit_normalizer(images, per: str = "pixel") -> Normalizer:
  """Fits per-pixel (or per-channel) mean and std on training inputs.

  The std is the sample std (``ddof=1``), as ``torch.Tensor.std`` in the
  authors' Barcoded MNIST code.

  Args:
    images: ``[N, H, W, C]`` inputs (uint8 or float), N >= 2.
    per: ``"pixel"`` (statistics ``[H, W, C]``) or ``"channel"`` (``[C]``).

  Example:
    >>> norm = fit_normalizer(np.array([[[[0]]], [[[2]]]], np.uint8))
    >>> float(norm.mean[0, 0, 0]), round(float(norm.std[0, 0, 0]), 4)
    (1.0, 1.4142)
  """
  _checks.check_choice("per", per, ("pixel", "channel"))
  shape = np.shape(images)
  if len(shape) != 4 or shape[0] < 2:
    raise ValueError(f"images must have shape [N, H, W, C] with N >= 2, got {shape}")
  axes = (0,) if per == "pixel" else (0, 1, 2)
  return Normalizer(*_moments(jnp.asarray(images), axes))


@jax.jit(static_argnums=1)
def _moments(x, axes):
  x = x.astype(jnp.promote_types(jnp.float32, jnp.result_type(float)))
  mean = x.mean(axis=axes)
  count = np.prod([x.shape[a] for a in axes])
  var = jnp.square(x - mean).sum(axis=axes) / (count - 1)               # two-pass, ddof=1
  return mean, jnp.sqrt(var)


def normalize(dataset: Dataset, normalizer: Normalizer, dtype=np.float32) -> Dataset:
  """Returns ``dataset`` with float inputs ``(x - mean) / std`` where ``std > 0``.

  Computed on the host (NumPy, in place on one float copy), so large uint8
  sets do not need a float copy on the device first.

  Example:
    >>> from imbalance_jax.data import load_images
    >>> train = load_images("mnist", "train")
    >>> norm = fit_normalizer(train.x)
    >>> normalize(train, norm).x.dtype
    dtype('float32')
  """
  x = np.asarray(dataset.x)
  mean, std = np.asarray(normalizer.mean, dtype), np.asarray(normalizer.std, dtype)
  try:
    fits = mean.shape == std.shape and np.broadcast_shapes(mean.shape, x.shape[1:]) == x.shape[1:]
  except ValueError:
    fits = False
  if not fits:
    raise ValueError(f"normalizer of shape {mean.shape} does not fit inputs {x.shape}")
  positive = std > 0
  scaled = x.astype(dtype)
  scaled -= np.where(positive, mean, 0)
  scaled /= np.where(positive, std, 1)
  return dataset.replace(x=jnp.asarray(scaled))
