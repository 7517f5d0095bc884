"""Multi-layer perceptron classifier with a Dense ``head``."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from imbalance_jax.models.linear import pytorch_dense


class MLP(nn.Module):
  """``x -> [Dense -> ReLU] * len(hidden) -> Dense head``, PyTorch default init.

  Attributes:
    num_classes: C.
    hidden: widths of the hidden layers.
    param_dtype: parameter dtype.

  ``__call__(x, return_features=True)`` also returns the head's inputs
  ``[N, hidden[-1]]`` (for exact last-layer curvature).

  Example:
    >>> model = MLP(num_classes=3, hidden=(8,))
    >>> params = model.init(jax.random.key(0), jnp.ones((2, 4)))
    >>> model.apply(params, jnp.ones((2, 4))).shape
    (2, 3)
  """

  num_classes: int
  hidden: Sequence[int] = (64,)
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, return_features: bool = False):
    if any(int(width) < 1 for width in self.hidden):
      raise ValueError(f"hidden widths must be >= 1, got {tuple(self.hidden)}")
    h = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.hidden):
      h = nn.relu(pytorch_dense(width, h.shape[-1], self.param_dtype, f"dense_{i}")(h))
    logits = pytorch_dense(self.num_classes, h.shape[-1], self.param_dtype, "head")(h)
    return (logits, h) if return_features else logits
