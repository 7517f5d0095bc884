"""ResNet18 (paper H, Fig 3) with BatchNorm or LayerNorm (Fig 11).

The layout follows torchvision's ``resnet18``: a stem, four stages of two
basic blocks (64, 128, 256, 512 channels; the first block of stages 2-4
downsamples by 2 with a 1x1 projection shortcut), global average pooling and
a Dense ``head``. Convolutions have no bias and use He (fan-out) init
(a truncated normal; torchvision's is untruncated); the head uses PyTorch's ``U(±1/sqrt(fan_in))``. With 1000 classes it
has 11,689,512 parameters, as torchvision's.

Normalisation (``norm``):

* ``"batch"``: ``nn.BatchNorm`` (PyTorch's momentum 0.1 = Flax 0.9, eps
  1e-5; Flax's running variance averages the biased batch variance,
  PyTorch's the unbiased one, a factor ``n/(n-1)`` per update). Running
  averages live in the ``batch_stats`` collection: ``train=True``
  uses batch statistics and updates them (``mutable=["batch_stats"]``),
  ``train=False`` uses the running averages.
* ``"layer"``: LayerNorm over (H, W, C) of each example with a per-channel
  scale and bias (PyTorch's ``GroupNorm(1, C)``); no state, same parameter
  count.

Stems: ``"imagenet"`` (7x7 stride-2 conv, 3x3 stride-2 max-pool; for 224x224
inputs) and ``"small"`` (3x3 stride-1 conv, no pooling; for 28x28 or 32x32).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from imbalance_jax import _checks
from imbalance_jax.models.linear import pytorch_dense

NORMS = ("batch", "layer")
STEMS = ("imagenet", "small")
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _pad(k: int):
  return ((k // 2, k // 2), (k // 2, k // 2))


class BasicBlock(nn.Module):
  """Two 3x3 convs with a residual connection (projection when the shape changes)."""

  features: int
  strides: int
  norm: Callable[..., nn.Module]
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=_conv_init,
                             param_dtype=self.param_dtype)
    y = conv(self.features, (3, 3), (self.strides, self.strides), padding=_pad(3))(x)
    y = nn.relu(self.norm()(y))
    y = conv(self.features, (3, 3), padding=_pad(3))(y)
    y = self.norm()(y)
    if x.shape != y.shape:
      x = conv(self.features, (1, 1), (self.strides, self.strides), padding="VALID",
               name="shortcut_conv")(x)
      x = self.norm(name="shortcut_norm")(x)
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """ResNet18 classifier on NHWC images.

  Attributes:
    num_classes: C.
    norm: one of ``NORMS`` (``"batch"`` or ``"layer"``).
    stem: one of ``STEMS``.
    width: channels of the first stage (64; stages double it).
    stage_sizes: blocks per stage ((2, 2, 2, 2) is ResNet18).
    param_dtype: parameter dtype.

  ``__call__(x, train=False, return_features=False)``: ``train`` selects
  batch statistics (and updates ``batch_stats``) for ``norm="batch"``;
  ``return_features`` also returns the head's inputs ``[N, 8 * width]``.

  Example:
    >>> model = ResNet18(num_classes=10, stem="small", width=8)
    >>> variables = jax.jit(model.init)(jax.random.key(0), jnp.ones((2, 28, 28, 1)))
    >>> step = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    >>> logits, updates = step(variables, jnp.ones((2, 28, 28, 1)))
    >>> logits.shape, sorted(updates)
    ((2, 10), ['batch_stats'])
  """

  num_classes: int
  norm: str = "batch"
  stem: str = "imagenet"
  width: int = 64
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False, return_features: bool = False):
    _checks.check_choice("norm", self.norm, NORMS)
    _checks.check_choice("stem", self.stem, STEMS)
    if x.ndim != 4:
      raise ValueError(f"x must have shape [N, H, W, channels], got {x.shape}")
    if self.norm == "batch":
      norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                               epsilon=1e-5, param_dtype=self.param_dtype)
    else:
      norm = functools.partial(nn.LayerNorm, reduction_axes=(-3, -2, -1), feature_axes=-1,
                               epsilon=1e-5, param_dtype=self.param_dtype)
    x = jnp.asarray(x, self.param_dtype)
    k, s = (7, 2) if self.stem == "imagenet" else (3, 1)
    x = nn.Conv(self.width, (k, k), (s, s), padding=_pad(k), use_bias=False,
                kernel_init=_conv_init, param_dtype=self.param_dtype, name="stem_conv")(x)
    x = nn.relu(norm(name="stem_norm")(x))
    if self.stem == "imagenet":
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=_pad(3))
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = BasicBlock(self.width * 2**i, strides, norm, self.param_dtype,
                       name=f"stage{i + 1}_block{j}")(x)
    features = x.mean(axis=(1, 2))
    logits = pytorch_dense(self.num_classes, features.shape[-1], self.param_dtype,
                           "head")(features)
    return (logits, features) if return_features else logits
