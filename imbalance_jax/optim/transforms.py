"""Direction transforms of paper H App. A.6 as optax GradientTransformations.

Sign descent uses ``optax.scale_by_sign`` directly; only the normalisation by the
global norm (with a zero-gradient guard) is ours.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def normalize_by_global_norm() -> optax.GradientTransformation:
  """Divides the whole update pytree by its global l2 norm: d = g / ||g||_2.

  A zero gradient gives a zero update rather than NaN.

  Example:
    >>> t = normalize_by_global_norm()
    >>> updates, _ = t.update({"a": jnp.array([3., 0.]), "b": jnp.array([4.])}, t.init(None))
    >>> [round(float(u), 6) for u in jnp.concatenate([updates["a"], updates["b"]])]
    [0.6, 0.0, 0.8]
    >>> t.update({"a": jnp.zeros(2)}, t.init(None))[0]["a"].tolist()
    [0.0, 0.0]
  """

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    norm = optax.global_norm(updates)
    scale = jnp.where(norm > 0, 1.0 / jnp.where(norm > 0, norm, 1.0), 0.0)
    return jax.tree.map(lambda u: (u * scale).astype(u.dtype), updates), state

  return optax.GradientTransformation(init_fn, update_fn)
