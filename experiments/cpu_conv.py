"""Stopgap for the vision binaries: convolution gradients at library speed inside ``lax.scan``.

On XLA:CPU a convolution inside a ``while`` body (every training step of
`imbalance_jax.train.make_train`) runs as a naive loop unless its dimension
numbers are canonical, and the gradients of Flax convolutions (and the
member-batched convolutions of a vmapped sweep) are not; see
`imbalance_jax.train.xla_cpu`. Until the training loop wraps every objective
and gradient in `imbalance_jax.train.xla_cpu.cpu_convolutions` itself,
`fast_apply` wraps a stateless model's ``apply`` so that its forward pass and
its parameter gradient (a custom VJP that recomputes the forward pass) use
canonical convolutions only. The math is unchanged (only transposes are
added); on other backends ``apply`` is returned as is. Measured on the shared
2-core CPU (SmallCNN 4/8 channels, 1,600 MNIST+Barcoded images, a sweep of 4
step sizes x 10 full-batch Adam steps): about 400 images/s per member-step
without it, about 2,400 with it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from imbalance_jax.train.xla_cpu import canonical_convolutions


def fast_apply(apply: Callable) -> Callable:
  """``apply(params, x) -> logits`` with canonical convolutions on CPU (same values and grads).

  Gradients flow to ``params`` only (the inputs get a zero cotangent), as in training.
  """
  if jax.default_backend() != "cpu":
    return apply
  forward = canonical_convolutions(apply)

  @jax.custom_vjp
  def wrapped(params, x):
    return forward(params, x)

  def wrapped_fwd(params, x):
    return forward(params, x), (params, x)

  def param_vjp(params, x, g):
    return jax.vjp(lambda p: apply(p, x), params)[1](g)[0]

  def wrapped_bwd(residuals, g):
    params, x = residuals
    return canonical_convolutions(param_vjp)(params, x, g), jnp.zeros_like(x)

  wrapped.defvjp(wrapped_fwd, wrapped_bwd)
  return wrapped
