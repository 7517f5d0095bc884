"""CNNs on 28x28 digits: paper H's small CNN (Fig 2, App. A.3) and paper R's 3-layer CNN."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from imbalance_jax.models.linear import pytorch_dense, pytorch_uniform


def max_pool_2x2(h):
  """2x2 max pool, stride 2, VALID (an odd last row/column is dropped): ``[N, H, W, C]``.

  Equals ``nn.max_pool(h, (2, 2), strides=(2, 2))``, written as a reshape and a
  max because its gradient is then an elementwise select, where XLA:CPU runs
  ``max_pool``'s ``select_and_scatter_add`` slowly (1.3x on SmallCNN's
  gradient; docs/performance_conv.md).

  Example:
    >>> max_pool_2x2(jnp.arange(16.).reshape(1, 4, 4, 1))[0, ..., 0]
    Array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
  """
  n, height, width, c = h.shape
  h = h[:, :height - height % 2, :width - width % 2]
  return h.reshape(n, height // 2, 2, width // 2, 2, c).max(axis=(2, 4))


def max_pooled_layers(image_size: int) -> int:
  """How many conv + 2x2-pool blocks an ``image_size`` input allows before it pools to nothing.

  Example:
    >>> max_pooled_layers(28)  # 28 -> 14 -> 7 -> 3 -> 1
    4
  """
  return max(int(image_size).bit_length() - 1, 0)


def _as_nhwc(x):
  """Images ``[N, H, W]`` (one channel) or ``[N, H, W, C]`` as ``[N, H, W, C]``."""
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise ValueError(f"x must have shape [N, H, W] or [N, H, W, channels], got {x.shape}")
  return x


def _pytorch_conv(width: int, h, kernel_size: int, padding, param_dtype, name: str):
  """``nn.Conv(width)`` on ``h`` with PyTorch's default init (fan-in ``k * k * channels``)."""
  k = kernel_size
  init = pytorch_uniform(k * k * h.shape[-1])
  return nn.Conv(width, (k, k), padding=padding, kernel_init=init, bias_init=init,
                 param_dtype=param_dtype, name=name)(h)


def check_pooled_layers(name: str, num_layers: int, height: int, width: int) -> None:
  """ValueError naming ``name`` when ``num_layers`` conv + pool blocks pool the input to nothing."""
  allowed = max_pooled_layers(min(height, width))
  if num_layers > allowed:
    raise ValueError(f"{name} has {num_layers} conv + pool layers, but a {height}x{width} input "
                     f"allows at most {allowed} (each halves the image)")


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
    >>> params = jax.jit(model.init)(jax.random.key(0), jnp.ones((2, 28, 28, 1)))
    >>> jax.jit(model.apply)(params, jnp.ones((2, 28, 28, 1))).shape
    (2, 10)
  """

  num_classes: int
  features: Sequence[int] = (32, 100)
  kernel_size: int = 5
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, return_features: bool = False):
    h = _as_nhwc(x)
    check_pooled_layers(f"SmallCNN features={tuple(self.features)}", len(self.features),
                        *h.shape[1:3])
    for i, width in enumerate(self.features):
      h = _pytorch_conv(width, h, self.kernel_size, self.kernel_size // 2, self.param_dtype,
                        f"conv_{i}")
      h = max_pool_2x2(nn.relu(h))
    h = h.reshape(h.shape[0], -1)
    logits = pytorch_dense(self.num_classes, h.shape[-1], self.param_dtype, "head")(h)
    return (logits, h) if return_features else logits


class ThreeLayerCNN(nn.Module):
  """Paper R's 3-layer CNN (Fig 1, 3): three conv blocks, a ``width``-d embedding, a ``head``.

  ``3 x [Conv(width, 3x3, SAME)-ReLU-MaxPool2] -> global average pool -> head``:
  the head sees a ``width``-dimensional embedding (paper R: d = 32). Paper R
  gives only "3-layer CNN with embedding dimension 32"; the kernel size,
  pooling and global pooling are our choices, documented here. PyTorch's
  default init ``U(±1/sqrt(fan_in))`` throughout, as in `SmallCNN`.

  Attributes:
    num_classes: C.
    width: channels of every conv layer = embedding dimension d.
    kernel_size: square conv kernel size.
    param_dtype: parameter dtype.

  ``__call__(x, return_features=True)`` also returns the embedding ``[N, width]``.

  Example:
    >>> model = ThreeLayerCNN(num_classes=4)
    >>> params = jax.jit(model.init)(jax.random.key(0), jnp.ones((2, 28, 28, 1)))
    >>> jax.jit(model.apply)(params, jnp.ones((2, 28, 28, 1))).shape
    (2, 4)
  """

  num_classes: int
  width: int = 32
  kernel_size: int = 3
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, return_features: bool = False):
    h = _as_nhwc(x)
    for i in range(3):
      h = nn.relu(_pytorch_conv(self.width, h, self.kernel_size, "SAME", self.param_dtype,
                                f"conv_{i}"))
      if min(h.shape[1:3]) >= 2:
        h = max_pool_2x2(h)
    h = h.mean(axis=(1, 2))
    logits = pytorch_dense(self.num_classes, self.width, self.param_dtype, "head")(h)
    return (logits, h) if return_features else logits
