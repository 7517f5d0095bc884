"""Per-block gradient norms: one block per class in the last layer.

A Flax ``Dense`` layer stores its weight as ``kernel [D, C]``; column ``k`` is
paper H's row ``w_k`` (the weights of class ``k``), and ``bias [C]`` holds
``b_k``. Block ``k`` is column ``k`` of the kernel, optionally together with
``b_k``. Everything here is a reduction over arrays, so it runs inside ``jit``
(e.g. in a training step's ``metrics_fn``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp


def layer_params(tree: Any, layer: str = "head") -> Mapping[str, jax.Array]:
  """Returns the ``{'kernel': ..., 'bias': ...}`` dict of ``layer``.

  Accepts a full Flax variables dict (``{'params': {...}}``), its ``'params'``
  collection, or the layer dict itself; works on parameters and on gradients
  alike (they share the pytree structure).

  Raises:
    ValueError: naming ``layer`` if it cannot be found or has no kernel.
  """
  node = tree
  if isinstance(node, Mapping) and "params" in node and "kernel" not in node:
    node = node["params"]
  if isinstance(node, Mapping) and layer in node:
    node = node[layer]
  if not isinstance(node, Mapping) or "kernel" not in node:
    raise ValueError(f"layer must name a Dense layer with a 'kernel', got layer={layer!r} "
                     f"for a tree with keys {list(tree) if isinstance(tree, Mapping) else tree!r}")
  return node


def block_grad_norms(grads: Any, *, layer: str = "head",
                     include_bias: bool = False) -> jax.Array:
  """Per-class gradient norms ``||grad_{w_k} L||_2`` of a Dense layer, ``[C]``.

  Args:
    grads: gradient pytree (same structure as the parameters; see
      `layer_params` for the accepted nestings).
    layer: name of the Dense layer (every library classifier calls its last
      layer ``head``).
    include_bias: block ``k`` also holds ``b_k``, i.e. the norm is
      ``sqrt(||grad_{w_k}||^2 + grad_{b_k}^2)`` (matches the blocks of
      `imbalance_jax.curvature.linear_block_traces` with ``bias=True``).

  Returns:
    ``[C]`` norms, one per output unit (class).

  Example:
    >>> grads = {"params": {"head": {"kernel": jnp.array([[3., 0.], [4., 1.]]),
    ...                              "bias": jnp.array([12., 0.])}}}
    >>> block_grad_norms(grads).tolist()
    [5.0, 1.0]
    >>> block_grad_norms(grads, include_bias=True).tolist()
    [13.0, 1.0]
  """
  node = layer_params(grads, layer)
  kernel = node["kernel"]
  num_classes = kernel.shape[-1]
  squares = jnp.sum(jnp.reshape(kernel, (-1, num_classes)) ** 2, axis=0)
  if include_bias:
    if "bias" not in node:
      raise ValueError(f"include_bias=True but layer {layer!r} has no bias")
    squares = squares + node["bias"] ** 2
  return jnp.sqrt(squares)
