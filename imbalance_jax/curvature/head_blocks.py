"""Closed-form class blocks of a softmax Dense head: block matvecs without Hessian-vector products.

For logits ``z_i = W^T phi_i + b`` (a Dense head on features ``phi_i [D]``:
the inputs of the linear model, the penultimate features of a deep model with
the rest of the network fixed, as `imbalance_jax.curvature.restrict_to_layer`
takes it) and the mean cross-entropy ``(1/n) sum_i a_i l_i`` (``a_i = 1``:
the plain mean), the Hessian block of classes ``(k, j)`` (block ``k`` = the
kernel column ``w_k``, with ``b_k`` when the head has a bias) is

  ``H_kj = sum_i s_i (delta_kj p_ik - p_ik p_ij) [1; phi_i] [1; phi_i]^T``,
  ``s_i = a_i / n``

(the formula of `imbalance_jax.curvature.linear_block_traces`; paper H,
Kunstner et al. 2024, Sec. 4). The coordinates of block ``k`` are ordered as
`imbalance_jax.curvature.block_partition` ``"class"`` and ``ravel_pytree``
order them, ``(b_k, w_1k, ..., w_Dk)``, so that the same PRNG keys draw the
same probes as the Hessian-vector-product path. With ``Phi1 = [1, Phi]``
``[N, n_b]``:

* ``H_kk u = Phi1^T (s p_k (1 - p_k) * (Phi1 u))``: ``O(n n_b)``, where a
  Hessian-vector product of the head costs ``O(n n_b C)`` (and of a deep model
  its whole backward pass);
* ``H_{:, c} u`` (all row blocks of column block ``c``) ``= Phi1^T R`` with
  ``R_ik = t_i (delta_kc - p_ik)``, ``t = s p_c * (Phi1 u)``: one
  ``[n_b, N] x [N, C]`` product, ``O(n n_b C)``.

`head_block_spectra`, `head_frobenius_mass` and `head_one_one_norms` are the
estimators of `imbalance_jax.curvature.spectra.block_spectra`,
`imbalance_jax.curvature.block_frobenius_mass` and
`imbalance_jax.curvature.block_one_one_norms` for the class partition of the
head with these matvecs, the same probes from the same keys, and blocks mapped
``blocks_at_once`` at a time (`imbalance_jax.curvature.spectra.map_blocks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.curvature.spectra import (BlockSpectra, check_blocks_at_once,
                                             lanczos_quadrature, map_blocks)


@flax.struct.dataclass
class HeadCurvature:
  """What the closed-form class blocks need: ``x_ND`` features, ``probs_NC`` softmax
  probabilities, ``scale_N = a_i / n``; ``bias`` (static, a Python bool) whether block
  ``k`` holds ``b_k`` (as its first coordinate). A pytree: it can be a ``jit`` argument."""

  x_ND: jax.Array
  probs_NC: jax.Array
  scale_N: jax.Array
  bias: bool = flax.struct.field(pytree_node=False)

  @property
  def block_size(self) -> int:
    return self.x_ND.shape[1] + int(self.bias)

  @property
  def num_classes(self) -> int:
    return self.probs_NC.shape[1]


def head_curvature(logits_NC: jax.Array, features_ND: jax.Array, *, bias: bool = True,
                   weights_N: jax.Array | None = None) -> HeadCurvature:
  """The closed-form head Hessian's data from logits ``[N, C]`` and features ``[N, D]``.

  Args:
    logits_NC: the head's logits at the current parameters.
    features_ND: the head's inputs (raw inputs of the linear model).
    bias: block ``k`` holds ``b_k`` (a Dense head with a bias).
    weights_N: per-example loss weights ``a_i`` of the loss ``(1/n) sum_i a_i
      l_i``; ``None``: the plain mean.

  Example:
    >>> hc = head_curvature(jnp.zeros((2, 3)), jnp.ones((2, 4)))
    >>> hc.block_size, hc.num_classes
    (5, 3)
  """
  if features_ND.ndim != 2:
    raise ValueError(f"features_ND must have shape [N, D], got {features_ND.shape}")
  n = features_ND.shape[0]
  if logits_NC.ndim != 2 or logits_NC.shape[0] != n:
    raise ValueError(f"logits_NC must have shape [N={n}, C], got {logits_NC.shape}")
  probs = jax.nn.softmax(logits_NC, axis=-1)
  if weights_N is None:
    scale = jnp.full((n,), 1.0 / n, probs.dtype)
  else:
    weights_N = jnp.asarray(weights_N)
    if weights_N.shape != (n,):
      raise ValueError(f"weights_N must have shape {(n,)}, got {weights_N.shape}")
    scale = (weights_N / n).astype(probs.dtype)
  return HeadCurvature(features_ND.astype(probs.dtype), probs, scale, bool(bias))


def check_head_params(head: Any, features_ND: jax.Array, logits_NC: jax.Array) -> bool:
  """Whether ``head`` (``{'kernel': [D, C]}``, optionally ``'bias': [C]``) has a bias;
  refuses anything else, or features / logits of other widths."""
  if not isinstance(head, Mapping) or "kernel" not in head or set(head) - {"kernel", "bias"}:
    raise ValueError("the closed-form head blocks need one Dense head {'kernel': [D, C], "
                     f"'bias': [C]}}, got {list(head) if isinstance(head, Mapping) else head}")
  shape = np.shape(head["kernel"])
  if len(shape) != 2:
    raise ValueError(f"the head's kernel must be [D, C], got shape {shape}")
  if "bias" in head and np.shape(head["bias"]) != shape[1:]:
    raise ValueError(f"the head's bias must be [C={shape[1]}], got {np.shape(head['bias'])}")
  if np.shape(features_ND)[1:] != shape[:1] or np.shape(logits_NC)[1:] != shape[1:]:
    raise ValueError(f"features [N, D={shape[0]}] and logits [N, C={shape[1]}] must match the "
                     f"head's kernel, got {np.shape(features_ND)} and {np.shape(logits_NC)}")
  return "bias" in head


def _lift(hc: HeadCurvature, u: jax.Array) -> jax.Array:
  """``Phi1 u`` ``[N]`` for ``u [n_b]`` (``[1, Phi]`` with the bias first)."""
  if hc.bias:
    return hc.x_ND @ u[1:] + u[0]
  return hc.x_ND @ u


def _lower(hc: HeadCurvature, r: jax.Array) -> jax.Array:
  """``Phi1^T r`` ``[n_b, ...]`` for ``r [N, ...]``."""
  out = jnp.tensordot(hc.x_ND, r, axes=((0,), (0,)))
  if hc.bias:
    return jnp.concatenate([jnp.sum(r, axis=0, keepdims=True), out], axis=0)
  return out


def diagonal_block_matvec(hc: HeadCurvature, u: jax.Array, k: jax.Array) -> jax.Array:
  """``H_kk u`` ``[n_b]`` in ``O(n n_b)`` (``k`` may be traced).

  Example:
    >>> hc = head_curvature(jnp.zeros((2, 2)), jnp.array([[1.], [-1.]]))  # p = 1/2
    >>> diagonal_block_matvec(hc, jnp.array([1., 0.]), 0).tolist()  # (1/2) sum_i (1/4) [1; x_i]
    [0.25, 0.0]
  """
  p = hc.probs_NC[:, k]
  return _lower(hc, hc.scale_N * p * (1 - p) * _lift(hc, u))


def column_block_product(hc: HeadCurvature, u: jax.Array, c: jax.Array) -> jax.Array:
  """``[H_0c u, ..., H_{C-1},c u]`` ``[n_b, C]``: every row block of column block ``c``.

  Example:
    >>> hc = head_curvature(jnp.zeros((2, 2)), jnp.array([[1.], [-1.]]))
    >>> column_block_product(hc, jnp.array([1., 0.]), 0).tolist()  # H_10 = -H_00 here
    [[0.25, -0.25], [0.0, 0.0]]
  """
  t = hc.scale_N * hc.probs_NC[:, c] * _lift(hc, u)
  onehot = (jnp.arange(hc.num_classes) == c).astype(hc.probs_NC.dtype)
  return _lower(hc, t[:, None] * (onehot[None, :] - hc.probs_NC))


def _check_num_steps(num_steps: int, hc: HeadCurvature) -> int:
  num_steps = _checks.check_int("num_steps", num_steps, minimum=1)
  if num_steps > hc.block_size:
    raise ValueError(f"num_steps must be <= the block size {hc.block_size} (a Krylov space "
                     f"has at most n_b dimensions), got {num_steps}")
  return num_steps


def head_block_spectra(hc: HeadCurvature, *, key: jax.Array, num_probes: int, num_steps: int,
                       blocks_at_once: int | None = None) -> BlockSpectra:
  """`imbalance_jax.curvature.spectra.block_spectra` of the head's class blocks, closed form.

  The same probes as ``block_spectra(loss, head, block_partition(head, "class")[0],
  num_blocks=C, key=key, ...)``, so the same result up to rounding; each Lanczos
  step is one `diagonal_block_matvec` (``O(n n_b)``, not a Hessian-vector product).

  Returns:
    `BlockSpectra` ``[C, K, m]``.

  Example:
    >>> x = jax.random.normal(jax.random.key(0), (20, 3))
    >>> hc = head_curvature(jax.random.normal(jax.random.key(1), (20, 4)), x)
    >>> head_block_spectra(hc, key=jax.random.key(2), num_probes=2, num_steps=4).nodes.shape
    (4, 2, 4)
  """
  num_steps = _check_num_steps(num_steps, hc)
  num_probes = _checks.check_int("num_probes", num_probes, minimum=1)
  blocks_at_once = check_blocks_at_once(blocks_at_once)
  size, dtype = hc.block_size, hc.probs_NC.dtype

  def one_block(block_key, k):
    def one_probe(probe_key):
      probe = jax.random.rademacher(probe_key, (size,), dtype)
      return lanczos_quadrature(lambda u: diagonal_block_matvec(hc, u, k), probe, num_steps)
    return jax.vmap(one_probe)(jax.random.split(block_key, num_probes))

  keys = jax.random.split(key, hc.num_classes)
  nodes, weights = map_blocks(one_block, (keys, jnp.arange(hc.num_classes)), blocks_at_once)
  return BlockSpectra(nodes, weights, jnp.full((hc.num_classes,), size, jnp.int32))


def head_frobenius_mass(hc: HeadCurvature, *, key: jax.Array, num_probes: int, columns=None,
                        blocks_at_once: int | None = None) -> jax.Array:
  """`imbalance_jax.curvature.block_frobenius_mass` of the head's class blocks, closed form.

  ``M_bc ~= mean_v ||H_bc v||^2`` over Rademacher ``v`` on block ``c``, with
  `column_block_product`; the same probes as the hvp path. Returns ``[C, S]``.

  Example:
    >>> x = jax.random.normal(jax.random.key(0), (20, 3))
    >>> hc = head_curvature(jax.random.normal(jax.random.key(1), (20, 4)), x)
    >>> head_frobenius_mass(hc, key=jax.random.key(2), num_probes=2, columns=[0, 3]).shape
    (4, 2)
  """
  num_probes = _checks.check_int("num_probes", num_probes, minimum=1)
  blocks_at_once = check_blocks_at_once(blocks_at_once)
  num = hc.num_classes
  columns = np.arange(num) if columns is None else np.asarray(columns, np.int64)
  if columns.ndim != 1 or columns.size == 0 or columns.min() < 0 or columns.max() >= num:
    raise ValueError(f"columns must be 1-d block ids in [0, {num}), got {columns}")
  size, dtype = hc.block_size, hc.probs_NC.dtype

  def one_column(column_key, c):
    def one_probe(probe_key):
      hv = column_block_product(hc, jax.random.rademacher(probe_key, (size,), dtype), c)
      return jnp.sum(hv**2, axis=0)
    return jnp.mean(jax.vmap(one_probe)(jax.random.split(column_key, num_probes)), axis=0)

  keys = jax.random.split(key, num)
  mass = map_blocks(one_column, (keys[columns], jnp.asarray(columns)), blocks_at_once)
  return mass.T


def head_one_one_norms(hc: HeadCurvature, *, key: jax.Array, num_columns: int,
                       blocks_at_once: int | None = None) -> jax.Array:
  """`imbalance_jax.curvature.block_one_one_norms` of the head's class blocks, closed form.

  The same sampled columns as the hvp path; each column ``H_kk e_i`` is one
  `diagonal_block_matvec`. Returns ``[C]``.

  Example:
    >>> hc = head_curvature(jnp.zeros((2, 2)), jnp.array([[1.], [-1.]]))  # H_kk = diag(1/4, 1/4)
    >>> head_one_one_norms(hc, key=jax.random.key(0), num_columns=2).tolist()
    [0.5, 0.5]
  """
  num_columns = _checks.check_int("num_columns", num_columns, minimum=1)
  blocks_at_once = check_blocks_at_once(blocks_at_once)
  size, dtype = hc.block_size, hc.probs_NC.dtype
  used = min(num_columns, size)

  def one_block(block_key, k):
    picked = jax.random.permutation(block_key, size)[:used]

    def one_column(i):
      return jnp.sum(jnp.abs(diagonal_block_matvec(hc, jnp.zeros((size,), dtype).at[i].set(1),
                                                   k)))
    return size / used * jnp.sum(jax.vmap(one_column)(picked))

  keys = jax.random.split(key, hc.num_classes)
  return map_blocks(one_block, (keys, jnp.arange(hc.num_classes)), blocks_at_once)


__all__ = ["HeadCurvature", "check_head_params", "column_block_product",
           "diagonal_block_matvec", "head_block_spectra", "head_curvature",
           "head_frobenius_mass", "head_one_one_norms"]
