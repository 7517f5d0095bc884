"""Small CNN of paper H (Fig 2, App. A.3): two conv blocks and a Dense ``head``."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from imbalance_jax.models.linear import pytorch_uniform


class SmallCNN(nn.Module):
  """``Conv(32, 5x5, pad 2)-ReLU-MaxPool2 -> Conv(100, 5x5, pad 2)-ReLU-MaxPool2 -> head``.

  Inputs are NHWC images (``[N, 28, 28, 1]`` for MNIST: the head then sees
  ``7 * 7 * 100 = 4900`` features). Every layer uses PyTorch's default init
  ``U(±1/sqrt(fan_in))`` for weights and biases.

  Attributes:
    num_classes: C.
    features: output channels of the two conv layers.
    kernel_size: square conv kernel size (padding ``kernel_size // 2``).
    param_dtype: parameter dtype.

  ``__call__(x, return_features=True)`` also returns the head's inputs
  ``[N, F]`` (for exact last-layer curvature).

  Example:
    >>> model = SmallCNN(num_classes=10)
    >>> params = model.init(jax.random.key(0), jnp.ones((2, 28, 28, 1)))
    >>> model.apply(params, jnp.ones((2, 28, 28, 1))).shape
    (2, 10)
  """

  num_classes: int
  features: Sequence[int] = (32, 100)
  kernel_size: int = 5
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, return_features: bool = False):
    if x.ndim == 3:
      x = x[..., None]
    if x.ndim != 4:
      raise ValueError(f"x must have shape [N, H, W] or [N, H, W, channels], got {x.shape}")
    h = x
    k = self.kernel_size
    for i, width in enumerate(self.features):
      init = pytorch_uniform(k * k * h.shape[-1])
      h = nn.Conv(width, (k, k), padding=k // 2, kernel_init=init, bias_init=init,
                  param_dtype=self.param_dtype, name=f"conv_{i}")(h)
      h = nn.max_pool(nn.relu(h), (2, 2), strides=(2, 2))
    h = h.reshape(h.shape[0], -1)
    init = pytorch_uniform(h.shape[-1])
    logits = nn.Dense(self.num_classes, kernel_init=init, bias_init=init,
                      param_dtype=self.param_dtype, name="head")(h)
    return (logits, h) if return_features else logits
