"""Block selection, Adam on chosen blocks, and a random basis of chosen blocks (issue 19).

The wrappers of the issue-19 catalogue that act on *which* parameters an
optimizer sees and in which basis; the per-class preconditioners are in
`imbalance_jax.optim.research`. Parameters are found by their Flax module path:
the classifier is the module named ``head`` (its leaves' last axis is the
class axis: ``kernel`` (d, K), ``bias`` (K,)); LayerNorm parameters are the
modules whose name starts with ``ln``, ``LayerNorm`` or ``norm``. GD parts use
heavy-ball momentum ``m_t = momentum m_{t-1} + d_t`` as paper H's GD does.

* `in_block`, `block_mask`: which leaves lie in named blocks.
* `heavy_ball`: any direction transform with paper H's heavy-ball momentum.
* `adam_on_blocks` (``adam_head``, ``adam_last_layer``): Adam on chosen blocks,
  GD elsewhere ("last-layer adaptivity", Zhao et al. ICLR 2025, arXiv 2407.07972).
* `rotated`: any optimizer run in a fixed random orthogonal basis of chosen
  blocks (after Xie, Mohamadi & Li, ICLR 2025, arXiv 2410.08198).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from imbalance_jax import _checks

ScalarOrSchedule = optax.ScalarOrSchedule
HEAD = "head"
LAYERNORM = "layernorm"
LAYERNORM_PREFIXES = ("ln", "LayerNorm", "norm")


def _keys(path) -> tuple[str, ...]:
  return tuple(str(getattr(p, "key", getattr(p, "name", p))) for p in path)


def in_block(path, blocks: Sequence[str]) -> bool:
  """Whether a leaf's path lies in one of ``blocks``: module names, ``"layernorm"`` the LN modules.

  Example:
    >>> import jax
    >>> path = (jax.tree_util.DictKey("params"), jax.tree_util.DictKey("ln_attn_0"),
    ...         jax.tree_util.DictKey("scale"))
    >>> in_block(path, ("head",)), in_block(path, ("head", "layernorm"))
    (False, True)
  """
  keys = _keys(path)
  for block in blocks:
    if block == LAYERNORM:
      if any(k.startswith(LAYERNORM_PREFIXES) for k in keys[:-1]):
        return True
    elif block in keys[:-1]:
      return True
  return False


def block_mask(params, blocks: Sequence[str]):
  """Pytree of bools like ``params``: True on leaves in ``blocks``; raises if none is."""
  mask = jax.tree_util.tree_map_with_path(lambda p, _: in_block(p, blocks), params)
  if not any(jax.tree.leaves(mask)):
    raise ValueError(f"blocks {tuple(blocks)}: no parameter lies in them")
  return mask


def heavy_ball(direction: optax.GradientTransformation, learning_rate: ScalarOrSchedule,
               momentum: float) -> optax.GradientTransformation:
  """``x <- x - lr m``, ``m <- momentum m + d`` for a direction transform ``d``."""
  _checks.check_positive("learning_rate", learning_rate)
  momentum = _checks.check_fraction("momentum", momentum)
  trace = optax.trace(decay=momentum) if momentum else optax.identity()
  return optax.chain(direction, trace, optax.scale_by_learning_rate(learning_rate))


def adam_on_blocks(learning_rate: ScalarOrSchedule, momentum: float = 0.0,
                   blocks: Sequence[str] = (HEAD, LAYERNORM), b2: float = 0.999,
                   eps: float = 1e-8, gd_scale: float = 1.0) -> optax.GradientTransformation:
  """Adam (beta_1 = ``momentum``) on ``blocks``, heavy-ball GD elsewhere.

  ``optax.multi_transform`` of ``optax.adam`` and GD by `in_block` labels
  (Zhao et al. 2407.07972, Sec. 5: Adam's preconditioning matters on the last
  layer and LayerNorm). Adam's step size is ``learning_rate`` (the one a sweep
  tunes); GD's is ``gd_scale * learning_rate`` (default 1: one step size for
  both parts). The two parts' natural scales differ (Adam's update is about
  +-1 per coordinate, GD's the gradient itself), so a fixed ratio lets GD run
  at its own tuned rate while the sweep tunes Adam's.

  Example:
    >>> import jax.numpy as jnp
    >>> opt = adam_on_blocks(0.1, blocks=("head",))
    >>> p = {"body": {"kernel": jnp.ones(2)}, "head": {"kernel": jnp.ones(2)}}
    >>> g = {"body": {"kernel": jnp.array([2., 0.])}, "head": {"kernel": jnp.array([2., 0.])}}
    >>> u, _ = opt.update(g, opt.init(p), p)
    >>> u["body"]["kernel"].tolist(), [round(x, 4) for x in u["head"]["kernel"].tolist()]
    ([-0.20000000298023224, -0.0], [-0.1, -0.0])
    >>> opt = adam_on_blocks(0.1, blocks=("head",), gd_scale=10.0)
    >>> u, _ = opt.update(g, opt.init(p), p)
    >>> [round(x, 4) for x in u["body"]["kernel"].tolist()]  # GD at 10 x 0.1
    [-2.0, -0.0]
  """
  _checks.check_positive("learning_rate", learning_rate)
  momentum = _checks.check_fraction("momentum", momentum)
  _checks.check_positive("gd_scale", gd_scale)
  blocks = tuple(blocks)

  def labels(params):
    mask = block_mask(params, blocks)
    return jax.tree.map(lambda m: "adam" if m else "gd", mask)

  # gd_scale = 1 adds no op: the program (and every earlier result) is unchanged.
  gd_direction = optax.identity() if gd_scale == 1.0 else optax.scale(float(gd_scale))
  return optax.multi_transform(
      {"adam": optax.adam(learning_rate, b1=momentum, b2=b2, eps=eps),
       "gd": heavy_ball(gd_direction, learning_rate, momentum)}, labels)


@functools.lru_cache(maxsize=64)
def _orthogonal(n: int, seed: int, leaf: int, axis: int) -> np.ndarray:
  rng = np.random.default_rng([seed, leaf, axis])
  q, r = np.linalg.qr(rng.standard_normal((n, n)))
  return q * np.sign(np.diag(r))


def rotation_bases(params, blocks: Sequence[str], seed: int = 0, max_dim: int = 2048):
  """Per leaf, a tuple of NumPy orthogonal matrices (one per axis), or None outside ``blocks``.

  Axis ``i`` of a leaf in ``blocks`` gets a Haar-random orthogonal ``Q_i`` (its
  own seed from ``seed``, the leaf's index and the axis); axes of size 1 or
  above ``max_dim`` get None (identity). The leaf's rotation ``x -> x x_1 Q_1^T
  x_2 Q_2^T ...`` is orthogonal on the flattened leaf (a Kronecker product).
  """
  mask = block_mask(params, blocks)
  leaves, treedef = jax.tree.flatten(params)
  bases = []
  for index, (leaf, inside) in enumerate(zip(leaves, jax.tree.leaves(mask))):
    if not inside:
      bases.append(None)
      continue
    bases.append(tuple(_orthogonal(n, seed, index, axis) if 1 < n <= max_dim else None
                       for axis, n in enumerate(np.shape(leaf))))
  return treedef, bases


def _rotate(x, basis, transpose: bool):
  if basis is None:
    return x
  for axis, q in enumerate(basis):
    if q is None:
      continue
    q = jnp.asarray(q.T if transpose else q, dtype=x.dtype)
    x = jnp.moveaxis(jnp.tensordot(q, x, axes=(1, axis)), 0, axis)
  return x


def rotated(factory: Callable[..., optax.GradientTransformation],
            blocks: Sequence[str] = (HEAD,), seed: int = 0, max_dim: int = 2048
            ) -> Callable[..., optax.GradientTransformation]:
  """``factory`` run in a fixed random orthogonal basis of ``blocks`` (Xie et al. 2410.08198).

  The inner optimizer sees the gradient (and parameters) of each leaf in
  ``blocks`` as ``R^T g`` and its update is mapped back by ``R`` (bases from
  `rotation_bases`, fixed by ``seed``). GD and normalised GD are invariant, so
  their trajectories are unchanged; sign descent and Adam are not.

  Returns ``(learning_rate, momentum) -> GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> make = rotated(lambda lr, momentum=0.0: optax.sgd(lr))
    >>> opt = make(1.0)
    >>> p = {"head": {"kernel": jnp.zeros((3, 2))}}
    >>> g = {"head": {"kernel": jnp.arange(6.).reshape(3, 2)}}
    >>> u, _ = opt.update(g, opt.init(p), p)
    >>> bool(jnp.allclose(u["head"]["kernel"], -g["head"]["kernel"], atol=1e-5))
    True
  """
  blocks = tuple(blocks)

  def make(learning_rate, momentum: float = 0.0) -> optax.GradientTransformation:
    inner = factory(learning_rate, momentum=momentum)

    def apply(tree, transpose):
      treedef, bases = rotation_bases(tree, blocks, seed, max_dim)
      leaves = [_rotate(x, b, transpose) for x, b in zip(jax.tree.leaves(tree), bases)]
      return jax.tree.unflatten(treedef, leaves)

    def init_fn(params):
      return inner.init(apply(params, True))

    def update_fn(updates, state, params=None):
      rparams = None if params is None else apply(params, True)
      rupdates, state = inner.update(apply(updates, True), state, rparams)
      return apply(rupdates, False), state

    return optax.GradientTransformation(init_fn, update_fn)

  make.__name__ = f"rotated_{getattr(factory, '__name__', 'optimizer')}"
  return make
