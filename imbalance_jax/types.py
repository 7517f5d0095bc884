"""Small pytrees shared across the library."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks


@flax.struct.dataclass
class Dataset:
  """A labelled classification data set held as arrays (a pytree).

  Attributes:
    x: inputs, float array ``[N, ...]`` (``[N, D]`` for the linear model).
    y: integer labels ``[N]`` in ``[0, num_classes)``.
    class_counts: number of examples of each class, int ``[C]``.
    num_classes: ``C`` (static: it fixes shapes, so it is not a leaf).

  Leading batch axes (e.g. one data set per seed, made with ``jax.vmap``) are
  allowed on every leaf.

  Example:
    >>> ds = make_dataset(np.zeros((4, 3)), np.array([0, 0, 1, 2]), 3)
    >>> ds.class_counts.tolist()
    [2, 1, 1]
  """

  x: jax.Array
  y: jax.Array
  class_counts: jax.Array
  num_classes: int = flax.struct.field(pytree_node=False)

  @property
  def num_examples(self) -> int:
    return self.y.shape[-1]

  @property
  def class_frequencies(self) -> jax.Array:
    """pi_k = n_k / n, shape ``[..., C]``."""
    counts = self.class_counts.astype(jnp.float32)
    return counts / counts.sum(axis=-1, keepdims=True)


def make_dataset(x, y, num_classes: int) -> Dataset:
  """Builds a `Dataset` from concrete arrays, validating them.

  Args:
    x: float array ``[N, ...]`` with finite values.
    y: integer labels ``[N]`` in ``[0, num_classes)``.
    num_classes: number of classes ``C >= 1``.

  Raises:
    ValueError: naming the argument, for mismatched sizes, labels out of
      range, non-integer labels or NaN/inf inputs.
  """
  num_classes = _checks.check_int("num_classes", num_classes, minimum=1)
  x_np, y_np = np.asarray(x), np.asarray(y)
  if x_np.ndim < 2:
    raise ValueError(f"x must have shape [N, ...] with a feature axis, got {x_np.shape}")
  if y_np.ndim != 1:
    raise ValueError(f"y must have shape [N], got {y_np.shape}")
  if x_np.shape[0] != y_np.shape[0]:
    raise ValueError(
        f"x and y disagree on the number of examples: x has {x_np.shape[0]}, y has {y_np.shape[0]}")
  if y_np.size == 0:
    raise ValueError("y must hold at least one example")
  if not np.issubdtype(y_np.dtype, np.integer):
    raise ValueError(f"y must hold integer labels, got dtype {y_np.dtype}")
  if y_np.min() < 0 or y_np.max() >= num_classes:
    raise ValueError(
        f"y must lie in [0, num_classes={num_classes}), got labels in [{y_np.min()}, {y_np.max()}]")
  if not np.issubdtype(x_np.dtype, np.floating):
    x_np = x_np.astype(np.float32)
  if not np.all(np.isfinite(x_np)):
    raise ValueError("x contains NaN or inf values")
  counts = np.bincount(y_np, minlength=num_classes).astype(np.int32)
  return Dataset(x=jnp.asarray(x_np), y=jnp.asarray(y_np, jnp.int32),
                 class_counts=jnp.asarray(counts), num_classes=num_classes)
