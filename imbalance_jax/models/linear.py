"""Softmax linear model (multinomial logistic regression) with bias."""

from __future__ import annotations


import flax.linen as nn
import jax
import jax.numpy as jnp

from imbalance_jax import _checks

INITS = ("pytorch", "zeros")


def pytorch_uniform(fan_in: int) -> nn.initializers.Initializer:
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear weights and bias."""
  bound = 1.0 / max(fan_in, 1) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def pytorch_dense(features: int, fan_in: int, param_dtype, name: str | None = None,
                  use_bias: bool = True) -> nn.Dense:
  """``nn.Dense(features)`` with PyTorch's default Linear init (`pytorch_uniform` of
  ``fan_in``, the layer's input width) for its kernel and bias; call it inside a
  ``@nn.compact`` method.

  Example:
    >>> layer = pytorch_dense(3, 4, jnp.float32, name="head")
    >>> params = layer.init(jax.random.key(0), jnp.ones((2, 4)))["params"]
    >>> params["kernel"].shape, bool(jnp.all(jnp.abs(params["bias"]) <= 0.5))
    ((4, 3), True)
  """
  init = pytorch_uniform(fan_in)
  return nn.Dense(features, use_bias=use_bias, kernel_init=init, bias_init=init,
                  param_dtype=param_dtype, name=name)


class LinearSoftmax(nn.Module):
  """Logits ``x W + b`` for a softmax linear model.

  The weight matrix is ``params['params']['head']['kernel']`` with shape
  ``[D, C]``: column ``k`` is the paper's row ``w_k`` (one block per class).
  Every classifier in the library names its last layer ``head``.

  Attributes:
    num_classes: C.
    use_bias: adds the bias vector ``b [C]`` (paper H's linear model has one).
    init_scheme: ``"pytorch"`` (U(±1/sqrt(D)) for weight and bias, as in the authors'
      code) or ``"zeros"`` (W = 0, the setting of the theory).
    param_dtype: parameter dtype (float64 in precision tests).

  Example:
    >>> model = LinearSoftmax(num_classes=5)
    >>> params = model.init(jax.random.key(0), jnp.ones((2, 3)))
    >>> model.apply(params, jnp.ones((2, 3))).shape
    (2, 5)
  """

  num_classes: int
  use_bias: bool = True
  init_scheme: str = "pytorch"
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    _checks.check_choice("init_scheme", self.init_scheme, INITS)
    _checks.check_int("num_classes", self.num_classes, minimum=1)
    x = x.reshape(x.shape[0], -1)
    initializer = (pytorch_uniform(x.shape[-1]) if self.init_scheme == "pytorch"
                   else nn.initializers.zeros)
    return nn.Dense(self.num_classes, use_bias=self.use_bias, kernel_init=initializer,
                    bias_init=initializer, param_dtype=self.param_dtype, name="head")(x)
