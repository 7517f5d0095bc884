"""Synthetic data sets: Random Heavy-Tailed Labels (paper H, App. A.2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.types import Dataset

INPUT_DISTRIBUTIONS = ("uniform", "normal_1", "normal_0")


def heavy_tailed_class_counts(m: int) -> np.ndarray:
  """Class sizes of the Random Heavy-Tailed Labels data set.

  Level ``i = 0..m-1`` holds ``2**i`` classes of ``2**(m-i)`` examples each, so
  every level holds ``2**m`` examples and the counts approximate pi_k ∝ 1/k.
  Class 0 is the most frequent.

  Returns:
    int array ``[C]`` with ``C = 2**m - 1``.

  Example:
    >>> heavy_tailed_class_counts(3).tolist()
    [8, 4, 4, 2, 2, 2, 2]
  """
  # 2**31 examples would overflow the int32 counts; memory runs out long before.
  m = _checks.check_int("m", m, minimum=1, maximum=26)
  return np.concatenate([np.full(2**i, 2**(m - i)) for i in range(m)]).astype(np.int32)


def heavy_tailed_labels(key: jax.Array, m: int, input_dist: str = "uniform",
                        dtype=jnp.float32) -> Dataset:
  """Random Heavy-Tailed Labels (paper H, App. A.2).

  ``n = m 2^m`` examples in ``d = (m+1) 2^m`` dimensions over ``c = 2^m - 1``
  classes (the paper prints ``c = 2^(m+1) - 1``, which contradicts its own
  construction; the authors' code uses ``2^m - 1``). Inputs are independent of
  the labels: ``"uniform"`` U[0, 1), ``"normal_1"`` N(1, 1) or ``"normal_0"``
  N(0, 1) (paper H, Fig. 15). Labels are sorted by class, class 0 first.

  Pure in ``key``, so ``jax.vmap(lambda k: heavy_tailed_labels(k, m))(keys)``
  draws one data set per seed.

  Args:
    key: PRNG key for the inputs.
    m: number of frequency levels, ``m >= 1`` (m=8: n=2048, d=2304, c=255).
    input_dist: one of ``INPUT_DISTRIBUTIONS``.
    dtype: float dtype of the inputs.

  Returns:
    `Dataset` with ``x [n, d]``, ``y [n]`` and ``class_counts [c]``.

  Example:
    >>> ds = heavy_tailed_labels(jax.random.key(0), m=8)
    >>> ds.x.shape, ds.num_classes
    ((2048, 2304), 255)
  """
  counts = heavy_tailed_class_counts(m)
  _checks.check_choice("input_dist", input_dist, INPUT_DISTRIBUTIONS)
  num_classes = counts.size
  n, d = m * 2**m, (m + 1) * 2**m
  _checks.check_memory(jnp.dtype(dtype).itemsize * n * d, what=f"m={m} (n={n}, d={d})",
                       lower="m")
  if input_dist == "uniform":
    x = jax.random.uniform(key, (n, d), dtype)
  else:
    x = jax.random.normal(key, (n, d), dtype) + (1.0 if input_dist == "normal_1" else 0.0)
  y = np.repeat(np.arange(num_classes, dtype=np.int32), counts)
  return Dataset(x=x, y=jnp.asarray(y), class_counts=jnp.asarray(counts),
                 num_classes=num_classes)


def heavy_tailed_images(key: jax.Array, m: int, image_size: int, *, signal: float = 0.0,
                        dtype=jnp.float32) -> Dataset:
  """Random Heavy-Tailed Labels with image-shaped inputs ``[n, S, S, 1]`` (for CNNs).

  Class sizes as in `heavy_tailed_class_counts` (``n = m 2^m``, ``c = 2^m - 1``).
  Pixels are U[0, 1) noise plus ``signal`` times a fixed random template per
  class; with ``signal = 0`` the labels are independent of the inputs, as in
  `heavy_tailed_labels`, and a network must memorise.

  Example:
    >>> heavy_tailed_images(jax.random.key(0), m=5, image_size=16).x.shape
    (160, 16, 16, 1)
  """
  counts = heavy_tailed_class_counts(m)
  image_size = _checks.check_int("image_size", image_size, minimum=4)
  _checks.check_positive("signal", signal, allow_zero=True)
  _checks.check_memory(jnp.dtype(dtype).itemsize * int(counts.sum()) * image_size**2,
                       what=f"m={m}, image_size={image_size} (n={int(counts.sum())})",
                       lower="m or image_size")
  y = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
  noise_key, template_key = jax.random.split(key)
  shape = (image_size, image_size, 1)
  x = jax.random.uniform(noise_key, (y.size, *shape), dtype)
  if signal:
    x = x + signal * jax.random.uniform(template_key, (counts.size, *shape), dtype)[y]
  return Dataset(x=x, y=jnp.asarray(y), class_counts=jnp.asarray(counts),
                 num_classes=counts.size)
