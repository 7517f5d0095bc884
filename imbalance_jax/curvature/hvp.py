"""Hessian-vector products (forward-over-reverse) and layer-restricted losses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax


def hvp(loss_fn: Callable[[Any], jax.Array], params: Any, tangents: Any) -> Any:
  """Hessian-vector product ``H(params) @ tangents`` as ``jvp`` of ``grad``.

  Forward-over-reverse: one gradient evaluation pushed forward along
  ``tangents``, about 2-3x the cost of ``jax.grad``; the Hessian is never
  formed.

  Args:
    loss_fn: scalar function of a parameter pytree.
    params: point where the Hessian is taken.
    tangents: pytree with the structure and shapes of ``params``.

  Returns:
    ``H v`` with the structure of ``params``.

  Example:
    >>> hvp(lambda w: jnp.sum(w ** 3) / 6, jnp.array([1., 2., 3.]), jnp.ones(3)).tolist()
    [1.0, 2.0, 3.0]
  """
  return jax.jvp(jax.grad(loss_fn), (params,), (tangents,))[1]


def _layer_path(params: Any, layer: str) -> tuple[str, ...]:
  if isinstance(params, Mapping) and "params" in params and layer not in params:
    path = ("params", layer)
  else:
    path = (layer,)
  node = params
  for key in path:
    if not isinstance(node, Mapping) or key not in node:
      raise ValueError(f"layer {layer!r} not found in params with keys "
                       f"{list(params) if isinstance(params, Mapping) else type(params)}")
    node = node[key]
  return path


def replace_layer(params: Any, layer: str, new_layer_params: Any) -> Any:
  """Returns a shallow copy of ``params`` whose ``layer`` subtree is replaced.

  Accepts a Flax variables dict (``{'params': {layer: ...}}``) or its
  ``'params'`` collection.
  """
  path = _layer_path(params, layer)

  def put(node, keys):
    out = dict(node)
    out[keys[0]] = new_layer_params if len(keys) == 1 else put(node[keys[0]], keys[1:])
    return out
  return put(params, path)


def restrict_to_layer(loss_fn: Callable[[Any], jax.Array], params: Any,
                      layer: str = "head") -> tuple[Callable[[Any], jax.Array], Any]:
  """The loss as a function of one layer's parameters, the others held fixed.

  Differentiating the restricted loss only back-propagates to ``layer``, so a
  last-layer Hessian-vector product costs little more than a forward pass.

  Returns:
    ``(layer_loss_fn, layer_params)`` with ``layer_loss_fn(layer_params) ==
    loss_fn(params)``.

  Example:
    >>> params = {"params": {"body": {"kernel": jnp.ones((2, 2))},
    ...                      "head": {"kernel": jnp.ones((2, 3))}}}
    >>> loss_fn = lambda p: jnp.sum((p["params"]["body"]["kernel"]
    ...                              @ p["params"]["head"]["kernel"]) ** 2)
    >>> head_loss, head = restrict_to_layer(loss_fn, params, "head")
    >>> sorted(head), float(head_loss(head)) == float(loss_fn(params))
    (['kernel'], True)
    >>> hvp(head_loss, head, jax.tree.map(jnp.ones_like, head))["kernel"].shape
    (2, 3)
  """
  path = _layer_path(params, layer)
  node = params
  for key in path:
    node = node[key]
  return (lambda layer_params: loss_fn(replace_layer(params, layer, layer_params))), node


def chunked_loss(objective_fn: Callable[[Any, Any], Any], data: Any,
                 chunk_size: int | None) -> Callable[[Any], jax.Array]:
  """``params -> loss`` of ``objective_fn(params, data)`` summed over chunks of the data.

  ``objective_fn(params, batch)`` returns the mean loss over ``batch``'s examples (or a
  tuple whose first entry is it, as `imbalance_jax.train.classification_objective`);
  the chunks (`imbalance_jax.train.batching.chunked`: ``chunk_size`` examples, the last
  ``n % chunk_size`` as one remainder chunk) are weighted by ``chunk examples / n``, so
  the loss, its gradient and its Hessian-vector products (`hvp`) are those of the
  whole data up to rounding. The chunks run in a ``lax.scan`` whose body is
  ``jax.checkpoint``-ed: the gradient (and so the hvp) holds one chunk's activations at
  a time instead of every example's. ``None`` (or ``>= n``): one pass.

  Example:
    >>> from imbalance_jax import data as data_lib
    >>> ds = data_lib.heavy_tailed_labels(jax.random.key(0), m=3)  # 24 examples
    >>> mse = lambda w, d: jnp.mean((d.x @ w) ** 2)
    >>> w = jnp.ones(ds.x.shape[1])
    >>> bool(jnp.allclose(chunked_loss(mse, ds, 5)(w), mse(w, ds), rtol=1e-5))
    True
  """
  from imbalance_jax.train import batching  # noqa: PLC0415 (train imports the curvature)

  def mean_loss(params, batch):
    out = objective_fn(params, batch)
    return out[0] if isinstance(out, tuple) else out

  if chunk_size is None:
    return lambda params: mean_loss(params, data)
  if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
    raise ValueError(f"chunk_size must be None or an int >= 1, got {chunk_size!r}")
  n = batching.num_examples(data)
  if chunk_size >= n:
    return lambda params: mean_loss(params, data)
  main, remainder = batching.chunked(data, chunk_size)

  def loss(params):
    total = 0.0
    if main is not None:
      @jax.checkpoint
      def body(carry, xy):
        return carry + mean_loss(params, main.replace(x=xy[0], y=xy[1])) * (chunk_size / n), None
      total = jax.lax.scan(body, jax.numpy.zeros((), jax.numpy.result_type(float)),
                           (main.x, main.y))[0]
    if remainder is not None:
      total = total + mean_loss(params, remainder) * (remainder.y.shape[0] / n)
    return total
  return loss
