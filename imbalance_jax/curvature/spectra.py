"""Per-block Hessian spectra: Lanczos top eigenvalues and stochastic Lanczos quadrature.

A *block* ``b`` is a set of parameter coordinates (a class row of the head, a
layer, a parameter array: see `block_partition`); its Hessian is ``H_bb =
P_b H P_b^T`` with ``P_b`` the coordinate selection. ``P_b H P_b^T u`` is one
Hessian-vector product (`imbalance_jax.curvature.hvp`) of ``P_b^T u``
(``u`` scattered into the block's coordinates, zeros elsewhere) read back on
the block, so the spectra need nothing but hvps.

The Lanczos tridiagonalisation is matfree's (`matfree.decomp.hessenberg`
with full reorthogonalisation, the iteration behind its ``tridiag_sym``;
Lanczos 1950). Started from a unit probe ``v``, ``m``
steps give a tridiagonal ``T = U diag(theta) U^T``: the Ritz values
``theta`` approximate the extreme eigenvalues of ``H_bb`` (top-k by
Lanczos), and ``(theta_j, U_0j^2)`` is an ``m``-node Gauss quadrature of the
spectral measure of ``H_bb`` seen from ``v``; averaging it over random probes
is stochastic Lanczos quadrature (SLQ; Ubaru, Chen & Saad 2017; Ghorbani,
Krishnan & Xiao 2019), the estimator Zhang et al. (NeurIPS 2024, arXiv
2402.16788) use for blockwise Hessian spectra. The quadrature is exact for
polynomials of degree ``<= 2m - 1``, so the moments ``tr(H_bb^p) / n_b``
(``p <= 2m - 1``) carry only the probe (Hutchinson) error.

Blocks of equal size are vmapped together (all class rows at once); blocks of
different sizes (layers) form one vmapped group per size. ``blocks_at_once=k``
computes a group ``k`` blocks at a time instead (`map_blocks`: `jax.lax.map`
with ``batch_size=k``, a scan over vmapped batches), so that peak memory holds
``k`` blocks' Hessian-vector products and Lanczos bases, not all of them (the
2,047 class rows of paper H's linear model at ``m = 11``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from matfree import decomp

from imbalance_jax import _checks
from imbalance_jax.curvature.hvp import hvp

PARTITIONS = ("class", "layer", "parameter", "weight")


class BlockSpectra(NamedTuple):
  """Lanczos quadratures of every block's Hessian, from ``K`` probes of ``m`` steps.

  ``nodes [B, K, m]`` are Ritz values (ascending per probe), ``weights [B, K,
  m]`` the squared first components of the Ritz vectors (each probe's sum to
  1), ``sizes [B]`` the block dimensions ``n_b``.
  """

  nodes: jax.Array
  weights: jax.Array
  sizes: jax.Array


def block_partition(params: Any, scheme: str) -> tuple[Any, list[str]]:
  """Block ids of a standard partition of ``params`` (numpy, usable inside ``jit``).

  Args:
    params: parameter pytree (a Flax variables dict or its ``'params'``).
    scheme: ``"class"``: ``params`` is one Dense layer ``{'kernel': [D, C],
      'bias': [C]}`` and block ``k`` is kernel column ``k`` with ``bias[k]``
      (paper H's ``w_k``); ``"layer"``: one block per top-level module (the
      keys under ``'params'``); ``"parameter"``: one block per array;
      ``"weight"``: one block per array of two or more dimensions (kernels,
      embeddings), the biases and LayerNorm scales in none (the blocks of
      Zhang et al.'s per-parameter spectra, arXiv 2402.16788, without the
      vectors; our reading).

  Returns:
    ``(block_ids, names)``: int ids with the structure of ``params``
    (numpy, each of its leaf's shape) and one name per block.

  Example:
    >>> ids, names = block_partition({"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}, "class")
    >>> ids["kernel"].tolist(), names
    ([[0, 1], [0, 1], [0, 1]], ['class 0', 'class 1'])
    >>> block_partition({"params": {"a": {"w": jnp.zeros(2)}, "b": {"w": jnp.zeros(1)}}},
    ...                 "layer")[1]
    ['a', 'b']
    >>> ids, names = block_partition({"b": jnp.zeros(2), "w": jnp.zeros((2, 2))}, "weight")
    >>> ids["b"].tolist(), ids["w"].tolist(), names
    ([-1, -1], [[0, 0], [0, 0]], ['w'])
  """
  _checks.check_choice("scheme", scheme, PARTITIONS)
  if scheme == "class":
    if not isinstance(params, Mapping) or "kernel" not in params:
      raise ValueError("scheme='class' needs one Dense layer {'kernel': [D, C], 'bias': [C]}, "
                       f"got keys {list(params) if isinstance(params, Mapping) else params}")
    shape = np.shape(params["kernel"])
    num_classes = shape[-1]
    ids = {k: np.broadcast_to(np.arange(num_classes, dtype=np.int32), np.shape(v)).copy()
           if k in ("kernel", "bias") else np.full(np.shape(v), -1, np.int32)
           for k, v in params.items()}
    return ids, [f"class {k}" for k in range(num_classes)]
  if scheme in ("parameter", "weight"):
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    kept = [i for i, (_, leaf) in enumerate(paths_leaves)
            if scheme == "parameter" or np.ndim(leaf) >= 2]
    if not kept:
      raise ValueError("scheme='weight' needs an array of two or more dimensions in params")
    number = {i: b for b, i in enumerate(kept)}
    ids = [np.full(np.shape(leaf), number.get(i, -1), np.int32)
           for i, (_, leaf) in enumerate(paths_leaves)]
    names = ["/".join(str(getattr(k, "key", k)) for k in paths_leaves[i][0]) for i in kept]
    return jax.tree.unflatten(treedef, ids), names
  top = params["params"] if isinstance(params, Mapping) and "params" in params else params
  if not isinstance(top, Mapping):
    raise ValueError(f"scheme='layer' needs a dict of layers, got {type(top)}")
  names = list(top)
  layer_ids = {name: jax.tree.map(lambda x, i=i: np.full(np.shape(x), i, np.int32), top[name])
               for i, name in enumerate(names)}
  if top is params:
    return layer_ids, names
  others = {k: jax.tree.map(lambda x: np.full(np.shape(x), -1, np.int32), v)
            for k, v in params.items() if k != "params"}
  return {**others, "params": layer_ids}, names


def flat_block_ids(params: Any, block_ids: Any) -> np.ndarray:
  """``block_ids`` in the order of ``ravel_pytree(params)``, int ``[n]`` (numpy)."""
  leaves, treedef = jax.tree.flatten(params)
  try:
    id_leaves = treedef.flatten_up_to(block_ids)
  except (ValueError, TypeError) as e:
    raise ValueError(f"block_ids must have the pytree structure of params: {e}") from None
  try:
    flat = [np.broadcast_to(np.asarray(i, np.int32), np.shape(x)).ravel()
            for x, i in zip(leaves, id_leaves)]
  except jax.errors.TracerArrayConversionError:
    raise ValueError("block_ids must be concrete (numpy) arrays: build them with "
                     "block_partition or numpy, not inside jit") from None
  return np.concatenate(flat) if flat else np.zeros((0,), np.int32)


def block_indices(params: Any, block_ids: Any, num_blocks: int) -> list[np.ndarray]:
  """Flat coordinates of each block ``b < num_blocks`` (ids ``< 0`` belong to none)."""
  num_blocks = _checks.check_int("num_blocks", num_blocks, minimum=1)
  flat = flat_block_ids(params, block_ids)
  out = [np.nonzero(flat == b)[0] for b in range(num_blocks)]
  empty = [b for b, idx in enumerate(out) if idx.size == 0]
  if empty:
    raise ValueError(f"block_ids has no coordinate in blocks {empty[:5]} (num_blocks="
                     f"{num_blocks})")
  return out


def size_groups(indices: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
  """Blocks grouped by size: ``[(block numbers [B_s], coordinates [B_s, n_s])]``."""
  sizes = np.array([idx.size for idx in indices])
  return [(np.nonzero(sizes == s)[0], np.stack([indices[b] for b in np.nonzero(sizes == s)[0]]))
          for s in np.unique(sizes)]


def check_blocks_at_once(blocks_at_once: int | None) -> int | None:
  """``None`` (every block of a size group at once) or an int ``>= 1``."""
  if blocks_at_once is None:
    return None
  return _checks.check_int("blocks_at_once", blocks_at_once, minimum=1)


def map_blocks(fn: Callable[..., Any], args: tuple, blocks_at_once: int | None) -> Any:
  """``jax.vmap(fn)(*args)`` over the leading (block) axis of ``args``, ``blocks_at_once``
  blocks at a time.

  ``None`` or at least the number of blocks: one vmap (all blocks at once); else
  `jax.lax.map` with ``batch_size=blocks_at_once`` (a scan over vmapped batches, the
  remainder vmapped after it), so peak memory holds ``blocks_at_once`` blocks; the
  results are the same up to rounding.

  Example:
    >>> map_blocks(lambda a, b: a * b, (jnp.arange(5.), jnp.ones(5)), 2).tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0]
  """
  num = jax.tree.leaves(args)[0].shape[0]
  if blocks_at_once is None or blocks_at_once >= num:
    return jax.vmap(fn)(*args)
  return jax.lax.map(lambda a: fn(*a), args, batch_size=blocks_at_once)


def block_matvec(loss_fn: Callable[[Any], jax.Array], params: Any
                 ) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """``matvec(u [n_b], idx [n_b]) = (P_b H P_b^T u)`` for the block with coordinates ``idx``.

  One Hessian-vector product per call; ``idx`` may be traced (vmap over
  blocks of one size).

  Example:
    >>> loss = lambda w: 0.5 * w @ jnp.array([[2., 1., 0.], [1., 3., 0.], [0., 0., 5.]]) @ w
    >>> block_matvec(loss, jnp.zeros(3))(jnp.array([1., 0.]), jnp.array([0, 1])).tolist()
    [2.0, 1.0]
  """
  flat, unravel = ravel_pytree(params)

  def matvec(u, idx):
    v = jnp.zeros_like(flat).at[idx].set(u.astype(flat.dtype))
    return ravel_pytree(hvp(loss_fn, params, unravel(v)))[0][idx]
  return matvec


def lanczos_quadrature(matvec: Callable[[jax.Array], jax.Array], probe: jax.Array,
                       num_steps: int) -> tuple[jax.Array, jax.Array]:
  """``num_steps`` Lanczos steps (`matfree.decomp.hessenberg`, full reorthogonalisation).

  Args:
    matvec: ``u [n] -> A u`` of a symmetric ``A``.
    probe: start vector ``[n]`` (normalised inside).
    num_steps: ``m <= n`` matrix-vector products.

  Returns:
    ``(nodes [m], weights [m])``: Ritz values (ascending) and squared first
    components of the Ritz vectors, ``sum(weights * f(nodes)) ~= v^T f(A) v /
    |v|^2`` (exact for polynomials of degree ``<= 2m - 1``). If the Krylov space
    of ``v`` has fewer than ``m`` dimensions (a spectrum with fewer distinct
    eigenvalues; "breakdown"), the quadrature is cut there (exact) and the
    remaining nodes get weight 0 and a value below all the others (a
    Gershgorin bound of the leading block).

  Example:
    >>> nodes, weights = lanczos_quadrature(lambda u: jnp.array([1., 2., 3.]) * u,
    ...                                     jnp.ones(3), 3)
    >>> [round(float(t), 4) for t in nodes], [round(float(w), 4) for w in weights]
    ([1.0, 2.0, 3.0], [0.3333, 0.3333, 0.3333])
  """
  # matfree's tridiag_sym(reortho="full") is this Arnoldi iteration followed by T = (H + H^T)
  # / 2; for a symmetric A, H is tridiagonal up to rounding, and its diagonal and
  # subdiagonal are the Lanczos coefficients. The subdiagonal (the residual norms) is read
  # directly so that a breakdown shows as beta_j ~ 0 instead of being averaged away.
  arnoldi = decomp.hessenberg(num_steps, reortho="full", custom_vjp=False)
  hess = arnoldi(matvec, probe).J_small
  alpha, beta = jnp.diagonal(hess), jnp.diagonal(hess, -1)
  # Breakdown: an off-diagonal beta_j ~ 0 means the probe's Krylov space has only j + 1
  # dimensions (few distinct eigenvalues); matfree then divides by ~0 and the rest of T is
  # rounding noise or NaN. Cut T there: the leading block is the exact quadrature, the
  # trailing nodes are decoupled (weight 0).
  finite = jnp.isfinite(alpha[0])
  scale = jnp.max(jnp.abs(jnp.where(jnp.isfinite(alpha), alpha, 0)))
  tol = 100 * jnp.finfo(alpha.dtype).eps * jnp.maximum(scale, jnp.finfo(alpha.dtype).tiny)
  ok_beta = jnp.cumprod(jnp.isfinite(beta) & (jnp.abs(beta) > tol)).astype(bool)
  ok_alpha = jnp.concatenate([jnp.ones((1,), bool), ok_beta])
  alpha = jnp.where(ok_alpha & jnp.isfinite(alpha), alpha, 0)
  beta = jnp.where(ok_beta, beta, 0)
  # Trailing nodes: the Gershgorin lower bound of the leading block, below all its Ritz
  # values, so that they never enter the top eigenvalues.
  radius = jnp.abs(jnp.concatenate([beta, jnp.zeros(1, beta.dtype)])) + jnp.abs(
      jnp.concatenate([jnp.zeros(1, beta.dtype), beta]))
  filler = jnp.min(jnp.where(ok_alpha, alpha - radius, jnp.inf))
  filler = jnp.where(finite, filler, 0)
  alpha = jnp.where(ok_alpha, alpha, filler)
  matrix = jnp.diag(alpha) + jnp.diag(beta, 1) + jnp.diag(beta, -1)
  theta, vecs = jnp.linalg.eigh(matrix)
  return theta, vecs[0] ** 2


def _check_steps(num_steps, indices):
  num_steps = _checks.check_int("num_steps", num_steps, minimum=1)
  smallest = min(idx.size for idx in indices)
  if num_steps > smallest:
    raise ValueError(f"num_steps must be <= the smallest block size {smallest} (a Krylov "
                     f"space has at most n_b dimensions), got {num_steps}")
  return num_steps


def block_spectra(loss_fn: Callable[[Any], jax.Array], params: Any, block_ids: Any, *,
                  num_blocks: int, key: jax.Array, num_probes: int,
                  num_steps: int, blocks_at_once: int | None = None) -> BlockSpectra:
  """Lanczos quadratures of ``H_bb`` for every block from ``num_probes`` Rademacher probes each.

  Rademacher probes (entries ±1, as in Ubaru et al. 2017) make the moment
  estimates Hutchinson estimates of ``tr(H_bb^p) / n_b`` with variance ``2
  sum_{i != j} ((H_bb^p)_ij)^2 / (n_b^2 K)``, below that of Gaussian probes
  (Zhang et al.'s code), whose variance adds the diagonal.

  Cost: ``num_blocks * num_probes * num_steps`` Hessian-vector products
  (vmapped over probes and equal-size blocks), plus ``O(n_b m^2)`` of
  reorthogonalisation per probe. Memory: ``blocks_at_once * num_probes``
  hvps at once (each with a tangent of all the parameters) and as many
  Lanczos bases ``[num_steps + 1, n_b]``.

  Args:
    loss_fn: scalar loss of ``params``; restrict it first with
      `imbalance_jax.curvature.restrict_to_layer` for blocks of one layer.
    params: parameter pytree.
    block_ids: int pytree with the structure of ``params`` (numpy, see
      `block_partition`); ids in ``[0, num_blocks)``, ``-1`` for none.
    num_blocks: ``B``.
    key: PRNG key of the probes.
    num_probes: ``K >= 1`` probes per block.
    num_steps: ``m`` Lanczos steps, ``<=`` the smallest block size.
    blocks_at_once: blocks of one size computed at once (`map_blocks`); ``None``:
      all of them. The same result up to rounding; the same probes.

  Returns:
    `BlockSpectra` (``[B, K, m]``), see `top_eigenvalues`,
    `density_moments` and `imbalance_jax.curvature.heterogeneity`.

  Example:
    >>> loss = lambda p: 0.5 * jnp.sum(jnp.arange(1., 7.) * p["w"] ** 2)  # H = diag(1..6)
    >>> spec = block_spectra(loss, {"w": jnp.zeros(6)}, {"w": np.array([0, 0, 0, 1, 1, 1])},
    ...                      num_blocks=2, key=jax.random.key(0), num_probes=2, num_steps=3)
    >>> np.round(top_eigenvalues(spec, 1), 4).tolist()
    [[3.0], [6.0]]
  """
  indices = block_indices(params, block_ids, num_blocks)
  num_steps = _check_steps(num_steps, indices)
  num_probes = _checks.check_int("num_probes", num_probes, minimum=1)
  blocks_at_once = check_blocks_at_once(blocks_at_once)
  matvec = block_matvec(loss_fn, params)
  dtype = ravel_pytree(params)[0].dtype
  keys = jax.random.split(key, num_blocks)
  nodes = [None] * num_blocks
  weights = [None] * num_blocks
  for blocks, idx_BN in size_groups(indices):
    size = idx_BN.shape[1]

    def one_block(block_key, idx, size=size):
      def one_probe(probe_key):
        probe = jax.random.rademacher(probe_key, (size,), dtype)
        return lanczos_quadrature(lambda u: matvec(u, idx), probe, num_steps)
      return jax.vmap(one_probe)(jax.random.split(block_key, num_probes))

    n, w = map_blocks(one_block, (keys[blocks], jnp.asarray(idx_BN)), blocks_at_once)
    for j, b in enumerate(blocks):
      nodes[b], weights[b] = n[j], w[j]
  return BlockSpectra(jnp.stack(nodes), jnp.stack(weights),
                      jnp.asarray([idx.size for idx in indices], jnp.int32))


def top_eigenvalues(spectra: BlockSpectra, k: int) -> jax.Array:
  """The ``k`` largest Ritz values of each block's first probe, descending, ``[B, k]``.

  Lanczos converges to the extreme eigenvalues first: with ``m`` steps the top
  ``k << m`` Ritz values match the top eigenvalues of ``H_bb`` closely (to
  rounding once ``m`` is near ``n_b``).
  """
  k = _checks.check_int("k", k, minimum=1)
  m = spectra.nodes.shape[-1]
  if k > m:
    raise ValueError(f"k must be <= num_steps={m}, got {k}")
  return spectra.nodes[:, 0, ::-1][:, :k]


def density_moments(spectra: BlockSpectra, num_moments: int = 4) -> jax.Array:
  """SLQ estimates of ``tr(H_bb^p) / n_b`` for ``p = 1..num_moments``, ``[B, P]``.

  The mean over probes of ``sum_j w_j theta_j^p`` (exact per probe for ``p <=
  2m - 1``; the error is that of a Hutchinson estimate with normalised
  Rademacher probes).
  """
  num_moments = _checks.check_int("num_moments", num_moments, minimum=1)
  powers = jnp.arange(1, num_moments + 1, dtype=spectra.nodes.dtype)
  return jnp.mean(jnp.sum(spectra.weights[..., None] * spectra.nodes[..., None] ** powers,
                          axis=-2), axis=1)
