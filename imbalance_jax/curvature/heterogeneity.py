"""Block-structure measures of the Hessian from the follow-ups to paper H.

* **Block heterogeneity** (Zhang et al., NeurIPS 2024, "Why transformers need
  Adam: a Hessian perspective", arXiv 2402.16788): the Jensen-Shannon
  distance between the spectral densities of blocks, averaged over all pairs
  of blocks (their ``JS^0`` at initialisation). Densities are the SLQ
  quadratures of `imbalance_jax.curvature.spectra.block_spectra` blurred by
  a Gaussian and discretised on one grid shared by all blocks
  (`spectral_density`, `block_heterogeneity`).
* **Diagonal vs off-diagonal block mass** (Dong et al. 2025, "Towards
  quantifying the Hessian structure of neural networks", arXiv 2505.02809):
  the share of ``||H||_F^2`` that lies outside the diagonal blocks
  (`block_frobenius_mass`, `offdiag_share`), ``0`` for a block-diagonal
  Hessian.
* **(1,1)-norm of a block** (Xie, Mohamadi & Li, ICLR 2025, "Adam exploits
  l_inf-geometry of loss landscape via coordinate-wise adaptivity", arXiv
  2410.08198): ``||H_bb||_{1,1} = sum_ij |(H_bb)_ij|`` estimated from sampled
  columns (`block_one_one_norms`), and its ratio to ``n_b ||H_bb||_2``
  (`one_one_ratio`: Adam's bound is in ``||H||_{1,1}``, SGD's in ``d
  ||H||_2``).

Every estimator is matrix-free (Hessian-vector products only) and jit-able;
`spectral_curvature_metrics` records them inside a training scan, like
`imbalance_jax.curvature.hutchinson_curvature_metrics` records traces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from imbalance_jax import _checks
from imbalance_jax.curvature import head_blocks
from imbalance_jax.curvature.hvp import chunked_loss, hvp, restrict_to_layer
from imbalance_jax.curvature.spectra import (PARTITIONS, block_indices, block_partition,
                                             block_spectra, check_blocks_at_once,
                                             density_moments, flat_block_ids, map_blocks,
                                             size_groups, top_eigenvalues)


def density_grid(nodes: jax.Array, num_points: int = 512, sigma: float | None = None,
                 relative_sigma: float = 0.01, weights: jax.Array | None = None
                 ) -> tuple[jax.Array, jax.Array]:
  """A grid covering every node and the Gaussian width used on it.

  Args:
    nodes: Ritz values of any shape (all blocks together: one shared grid).
    num_points: ``G`` grid points.
    sigma: absolute standard deviation of the Gaussian blur; ``None`` uses
      ``relative_sigma`` times the range of the nodes.
    relative_sigma: see ``sigma``.
    weights: optional, the shape of ``nodes``: only nodes of positive weight
      set the range.

  Returns:
    ``(grid [G], sigma)``; the grid runs from ``min - 5 sigma`` to
    ``max + 5 sigma``.
  """
  num_points = _checks.check_int("num_points", num_points, minimum=2)
  if weights is None:
    lo, hi = jnp.min(nodes), jnp.max(nodes)
  else:  # nodes of weight 0 (after a Lanczos breakdown) do not widen the grid
    lo = jnp.min(jnp.where(weights > 0, nodes, jnp.inf))
    hi = jnp.max(jnp.where(weights > 0, nodes, -jnp.inf))
  width = jnp.where(hi > lo, hi - lo, jnp.maximum(jnp.abs(hi), 1.0))
  if sigma is None:
    _checks.check_positive("relative_sigma", relative_sigma)
    s = relative_sigma * width
  else:
    s = jnp.asarray(_checks.check_positive("sigma", sigma), nodes.dtype)
  return jnp.linspace(lo - 5 * s, hi + 5 * s, num_points), s


def spectral_density(nodes: jax.Array, weights: jax.Array, grid: jax.Array,
                     sigma: jax.Array) -> jax.Array:
  """Gaussian-blurred SLQ densities as probability vectors on ``grid``, ``[B, G]``.

  ``rho_b(t) = mean_k sum_j w_bkj N(t; theta_bkj, sigma^2)``, normalised to
  sum to one over the grid (Zhang et al.'s ``interpolate`` normalises by
  ``sum * spacing``; a probability vector is what the JS distance compares).

  Args:
    nodes, weights: ``[B, K, m]`` (`BlockSpectra` fields; dense spectra are
      ``nodes = eigenvalues[:, None]`` and ``weights = 1 / n``).
    grid: ``[G]``; sigma: scalar (see `density_grid`).
  """
  z = (grid[None, None, None, :] - nodes[..., None]) / sigma
  rho = jnp.mean(jnp.sum(weights[..., None] * jnp.exp(-0.5 * z**2), axis=2), axis=1)
  return rho / jnp.sum(rho, axis=-1, keepdims=True)


def js_distances(p_BG: jax.Array) -> jax.Array:
  """Pairwise Jensen-Shannon distances ``sqrt(JSD)`` (natural log) of rows, ``[B, B]``.

  Rows of ``p_BG`` are probability vectors.

  ``JSD(p, q) = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2``;
  ``0`` for equal densities, at most ``sqrt(log 2)`` (disjoint supports). The
  same as ``scipy.spatial.distance.jensenshannon``.

  Example:
    >>> d = js_distances(jnp.array([[1., 0.], [0., 1.], [1., 0.]]))
    >>> [round(float(x), 4) for x in d[0]], round(float(np.sqrt(np.log(2))), 4)
    ([0.0, 0.8326, 0.0], 0.8326)
  """
  # Entries near the subnormal range are set to 0: XLA on CPU flushes subnormals to zero, so
  # (p + q) / 2 of a tiny p and q = 0 could be 0 and log(p / m) infinite.
  info = jnp.finfo(p_BG.dtype)
  p_BG = jnp.where(p_BG >= info.tiny / info.eps, p_BG, 0)
  p = p_BG[:, None, :]
  q = p_BG[None, :, :]
  m = 0.5 * (p + q)

  def kl_terms(a):
    return jnp.where(a > 0, a * jnp.log(jnp.where(a > 0, a, 1) / jnp.where(a > 0, m, 1)), 0)
  jsd = 0.5 * jnp.sum(kl_terms(p) + kl_terms(q), axis=-1)
  return jnp.sqrt(jnp.maximum(jsd, 0.0))


def block_heterogeneity(nodes: jax.Array, weights: jax.Array, *, num_points: int = 512,
                        sigma: float | None = None, relative_sigma: float = 0.01
                        ) -> tuple[jax.Array, jax.Array]:
  """Zhang et al.'s block heterogeneity: mean pairwise JS distance of block densities.

  Args:
    nodes, weights: ``[B, K, m]`` quadratures of ``B >= 2`` blocks.
    num_points, sigma, relative_sigma: the shared grid (`density_grid`).

  Returns:
    ``(score, distances [B, B])``; ``score`` averages the ``B (B - 1) / 2``
    pairs ``b < b'``.

  Example:
    Two blocks with the same spectrum, one with another:

    >>> nodes = jnp.array([[[1., 2.]], [[2., 1.]], [[5., 9.]]])
    >>> score, dist = block_heterogeneity(nodes, jnp.full((3, 1, 2), 0.5))
    >>> round(float(dist[0, 1]), 6), bool(dist[0, 2] > 0.8)
    (0.0, True)
  """
  if nodes.ndim != 3 or nodes.shape != weights.shape or nodes.shape[0] < 2:
    raise ValueError(f"nodes and weights must be [B, K, m] with B >= 2, got {nodes.shape}, "
                     f"{weights.shape}")
  grid, s = density_grid(nodes, num_points, sigma, relative_sigma, weights)
  dist = js_distances(spectral_density(nodes, weights, grid, s))
  num = nodes.shape[0]
  upper = np.triu(np.ones((num, num), bool), 1)
  return jnp.sum(jnp.where(upper, dist, 0)) / upper.sum(), dist


def _rademacher_on(idx, size, key, n, dtype):
  return jnp.zeros((n,), dtype).at[idx].set(jax.random.rademacher(key, (size,), dtype))


def block_frobenius_mass(loss_fn: Callable[[Any], jax.Array], params: Any, block_ids: Any, *,
                         num_blocks: int, key: jax.Array, num_probes: int,
                         columns=None, blocks_at_once: int | None = None) -> jax.Array:
  """Estimates ``M_bc = ||H_bc||_F^2`` for every block ``b`` and the column blocks ``c``.

  For a Rademacher probe ``v`` supported on block ``c``, ``E ||(H v)_b||^2 =
  ||H_bc||_F^2`` for every ``b`` at once (``E v v^T = I_c``): a segment sum of
  ``(H v)^2`` by block id. Cost: ``len(columns) * num_probes`` hvps,
  ``blocks_at_once * num_probes`` of them at once.

  Args:
    loss_fn, params, block_ids, num_blocks: as in
      `imbalance_jax.curvature.spectra.block_spectra`.
    key: PRNG key of the probes.
    num_probes: ``K >= 1`` probes per column block.
    columns: int ``[S]`` column blocks (e.g. `imbalance_jax.curvature.sample_classes`);
      ``None`` for all ``B``.
    blocks_at_once: column blocks of one size computed at once
      (`imbalance_jax.curvature.spectra.map_blocks`); ``None``: all of them.

  Returns:
    ``[B, S]``; column ``s`` is block ``columns[s]``.

  Example:
    >>> loss = lambda w: 0.5 * w @ jnp.array([[2., 1., 0.], [1., 3., 0.], [0., 0., 5.]]) @ w
    >>> mass = block_frobenius_mass(loss, jnp.zeros(3), np.array([0, 1, 1]), num_blocks=2,
    ...                             key=jax.random.key(0), num_probes=1)
    >>> mass.tolist()  # exact here: no block has curvature between its own coordinates
    [[4.0, 1.0], [1.0, 34.0]]
  """
  indices = block_indices(params, block_ids, num_blocks)
  num_probes = _checks.check_int("num_probes", num_probes, minimum=1)
  blocks_at_once = check_blocks_at_once(blocks_at_once)
  columns = np.arange(num_blocks) if columns is None else np.asarray(columns, np.int64)
  if columns.ndim != 1 or columns.size == 0 or columns.min() < 0 or columns.max() >= num_blocks:
    raise ValueError(f"columns must be 1-d block ids in [0, {num_blocks}), got {columns}")
  flat, unravel = ravel_pytree(params)
  ids = flat_block_ids(params, block_ids)
  seg = jnp.asarray(np.where(ids >= 0, ids, num_blocks))
  keys = jax.random.split(key, num_blocks)
  out = [None] * columns.size
  for blocks, idx_BN in size_groups([indices[c] for c in columns]):
    size = idx_BN.shape[1]

    def one_column(column_key, idx, size=size):
      def one_probe(probe_key):
        hv = ravel_pytree(hvp(loss_fn, params, unravel(
            _rademacher_on(idx, size, probe_key, flat.size, flat.dtype))))[0]
        return jax.ops.segment_sum(hv**2, seg, num_segments=num_blocks + 1)[:num_blocks]
      return jnp.mean(jax.vmap(one_probe)(jax.random.split(column_key, num_probes)), axis=0)

    mass = map_blocks(one_column, (keys[columns[blocks]], jnp.asarray(idx_BN)),
                      blocks_at_once)
    for j, s in enumerate(blocks):
      out[s] = mass[j]
  return jnp.stack(out, axis=1)


def offdiag_share(mass_BS: jax.Array, columns=None) -> jax.Array:
  """Share of the Frobenius mass outside the diagonal blocks, in ``[0, 1]``.

  ``1 - sum_s M[columns[s], s] / sum M`` over the sampled column blocks (Dong
  et al.: the Hessian is near block-diagonal when this is small).

  Example:
    >>> float(offdiag_share(jnp.array([[3., 1.], [1., 3.]])))
    0.25
  """
  num_blocks, num_columns = mass_BS.shape
  columns = np.arange(num_blocks) if columns is None else np.asarray(columns)
  if columns.shape != (num_columns,):
    raise ValueError(f"columns must have shape [{num_columns}], got {columns.shape}")
  diag = mass_BS[columns, np.arange(num_columns)]
  return 1.0 - jnp.sum(diag) / jnp.sum(mass_BS)


def block_one_one_norms(loss_fn: Callable[[Any], jax.Array], params: Any, block_ids: Any, *,
                        num_blocks: int, key: jax.Array, num_columns: int,
                        blocks_at_once: int | None = None) -> jax.Array:
  """Estimates ``||H_bb||_{1,1} = sum_{i,j in b} |H_ij|`` for every block, ``[B]``.

  Column sampling: ``||A||_{1,1} = sum_i ||A e_i||_1``, so ``(n_b / J)
  sum_{i in S} ||(H e_i)_b||_1`` over ``J`` coordinates ``S`` of block ``b``
  drawn uniformly without replacement is unbiased, and exact when ``J >=
  n_b`` (a block smaller than ``J`` uses all its columns). Cost: ``sum_b
  min(J, n_b)`` hvps (vmapped, ``blocks_at_once * J`` at once). The variance is
  that of the column 1-norms; it is small when the columns are alike (as for
  the class blocks of a softmax head).

  Args:
    loss_fn, params, block_ids, num_blocks: as in
      `imbalance_jax.curvature.spectra.block_spectra`.
    key: PRNG key of the sampled coordinates.
    num_columns: ``J >= 1`` sampled columns per block.
    blocks_at_once: blocks of one size computed at once
      (`imbalance_jax.curvature.spectra.map_blocks`); ``None``: all of them.

  Example:
    >>> loss = lambda w: 0.5 * w @ jnp.array([[2., -1., 0.], [-1., 3., 0.], [0., 0., 5.]]) @ w
    >>> block_one_one_norms(loss, jnp.zeros(3), np.array([0, 0, 1]), num_blocks=2,
    ...                     key=jax.random.key(0), num_columns=1).tolist()  # 2 (|2| + |-1|)
    [6.0, 5.0]
    >>> block_one_one_norms(loss, jnp.zeros(3), np.array([0, 0, 1]), num_blocks=2,
    ...                     key=jax.random.key(0), num_columns=2).tolist()  # J = n_b: exact
    [7.0, 5.0]
  """
  indices = block_indices(params, block_ids, num_blocks)
  num_columns = _checks.check_int("num_columns", num_columns, minimum=1)
  blocks_at_once = check_blocks_at_once(blocks_at_once)
  flat, unravel = ravel_pytree(params)
  keys = jax.random.split(key, num_blocks)
  out = [None] * num_blocks
  for blocks, idx_BN in size_groups(indices):
    size = idx_BN.shape[1]

    used = min(num_columns, size)

    def one_block(block_key, idx, size=size, used=used):
      picked = jax.random.permutation(block_key, size)[:used]

      def one_column(i):
        hv = ravel_pytree(hvp(loss_fn, params, unravel(
            jnp.zeros_like(flat).at[idx[i]].set(1))))[0]
        return jnp.sum(jnp.abs(hv[idx]))
      return size / used * jnp.sum(jax.vmap(one_column)(picked))

    norms = map_blocks(one_block, (keys[blocks], jnp.asarray(idx_BN)), blocks_at_once)
    for j, b in enumerate(blocks):
      out[b] = norms[j]
  return jnp.stack(out)


def one_one_ratio(one_one_B: jax.Array, spectral_norm_B: jax.Array, sizes_B) -> jax.Array:
  """``||H_bb||_{1,1} / (n_b ||H_bb||_2)`` (Xie et al.: Adam's vs SGD's smoothness scale).

  ``1`` for a diagonal block with equal entries; below 1 when the curvature
  concentrates on few coordinates (Adam's bound is the smaller); up to
  ``sqrt(n_b)`` for a dense rotated block.
  """
  return one_one_B / (jnp.asarray(sizes_B, one_one_B.dtype) * spectral_norm_B)


def spectral_curvature_metrics(objective_fn: Callable[[Any, Any], tuple[jax.Array, Any]], *,
                               key: jax.Array, partition: str = "class",
                               layer: str | None = "head", num_probes: int = 4,
                               num_steps: int = 16, top_k: int = 5,
                               frobenius_probes: int = 2, frobenius_columns=None,
                               one_one_columns: int = 8, num_points: int = 512,
                               relative_sigma: float = 0.01,
                               blocks_at_once: int | None = None,
                               head_inputs_fn: Callable[[Any, Any], tuple[jax.Array, jax.Array]]
                               | None = None, chunk_size: int | None = None
                               ) -> Callable[..., dict[str, jax.Array]]:
  """``metrics_fn`` for `imbalance_jax.train.make_train` recording the block-structure measures.

  At every record, on the blocks of ``partition`` (`block_partition`) of
  ``layer`` (or of all parameters with ``layer=None``), with the same probes
  at every record (``key`` fixed: common random numbers):

  * ``top_eigs_BK`` ``[B, top_k]`` (Lanczos), ``moments_BP`` ``[B, 4]``
    (SLQ ``tr(H_bb^p) / n_b``), ``slq_nodes`` / ``slq_weights``
    ``[B, K, m]``;
  * ``heterogeneity`` (Zhang et al.'s mean pairwise JS distance) and
    ``js_BB``;
  * ``offdiag_share`` (Dong et al.) from ``frob_mass_BS``;
  * ``one_one_B`` (Xie et al.'s ``||H_bb||_{1,1}``) and ``one_one_ratio_B``
    (to ``n_b`` times the top Ritz value);
  * ``loss``.

  Cost per record: ``B (K m + J) + S K_F`` hvps (``S`` column blocks,
  ``K_F = frobenius_probes``, ``J = one_one_columns``). Memory: at most
  ``blocks_at_once * max(K, K_F, J)`` hvps at once (``None``: every block of a
  size group at once; the same measures up to rounding).

  ``head_inputs_fn(params, data) -> (logits [N, C], features [N, D])`` switches
  the class blocks of a Dense ``layer`` to their closed form
  (`imbalance_jax.curvature.head_blocks`: every block matvec ``O(n n_b)``, the
  Frobenius column products ``O(n n_b C)``, no Hessian-vector product; the same
  probes, so the same measures up to rounding). It needs ``partition="class"``, and
  ``objective_fn`` must be the unweighted mean softmax cross-entropy of those logits
  (nothing else can be checked here: a reweighted or other loss would give wrong
  blocks).

  ``chunk_size``: the hvps sum over chunks of ``chunk_size`` examples of ``data``
  (`imbalance_jax.curvature.chunked_loss`: a checkpointed ``lax.scan``, weights
  ``chunk examples / n``; ``objective_fn`` must be a mean over the examples), so that
  they hold one chunk's activations at a time; the same measures up to rounding.
  ``None``: one pass.

  Example:
    >>> from imbalance_jax import data, models, optim, train
    >>> ds = data.heavy_tailed_labels(jax.random.key(0), m=3)  # 7 classes, d = 32
    >>> model = models.LinearSoftmax(ds.num_classes)
    >>> objective = train.classification_objective(model.apply)
    >>> metrics_fn = spectral_curvature_metrics(objective, key=jax.random.key(2), num_steps=6,
    ...                                         top_k=2, one_one_columns=4)
    >>> run = train.make_train(objective, optim.injectable("gd", 0.0), num_steps=4,
    ...                        log_every=2, metrics_fn=metrics_fn)
    >>> history = jax.jit(run)(model.init(jax.random.key(1), ds.x), ds, 0.1).history
    >>> history["top_eigs_BK"].shape, history["heterogeneity"].shape, history["one_one_B"].shape
    ((3, 7, 2), (3,), (3, 7))
  """
  _checks.check_choice("partition", partition, PARTITIONS)
  for name, value in (("num_probes", num_probes), ("num_steps", num_steps), ("top_k", top_k),
                      ("frobenius_probes", frobenius_probes),
                      ("one_one_columns", one_one_columns)):
    _checks.check_int(name, value, minimum=1)
  if top_k > num_steps:
    raise ValueError(f"top_k must be <= num_steps={num_steps}, got {top_k}")
  blocks_at_once = check_blocks_at_once(blocks_at_once)
  if head_inputs_fn is not None and (partition != "class" or layer is None):
    raise ValueError("head_inputs_fn (the closed-form head blocks) needs partition='class' "
                     f"on a Dense layer, got partition={partition!r}, layer={layer!r}")
  if chunk_size is not None:
    _checks.check_int("chunk_size", chunk_size, minimum=1)
  k_spec, k_frob, k_one = jax.random.split(key, 3)

  def metrics_fn(params, grads, aux, data) -> dict[str, jax.Array]:
    del grads
    full_params = params
    loss_fn = chunked_loss(objective_fn, data, chunk_size)
    if layer is not None:
      loss_fn, params = restrict_to_layer(loss_fn, params, layer)
    block_ids, names = block_partition(params, partition)
    num_blocks = len(names)
    if head_inputs_fn is not None:
      logits, features = head_inputs_fn(full_params, data)
      hc = head_blocks.head_curvature(
          logits, features, bias=head_blocks.check_head_params(params, features, logits))
      spectra = head_blocks.head_block_spectra(hc, key=k_spec, num_probes=num_probes,
                                               num_steps=num_steps,
                                               blocks_at_once=blocks_at_once)
      mass = head_blocks.head_frobenius_mass(hc, key=k_frob, num_probes=frobenius_probes,
                                             columns=frobenius_columns,
                                             blocks_at_once=blocks_at_once)
      one_one = head_blocks.head_one_one_norms(hc, key=k_one, num_columns=one_one_columns,
                                               blocks_at_once=blocks_at_once)
    else:
      spectra = block_spectra(loss_fn, params, block_ids, num_blocks=num_blocks, key=k_spec,
                              num_probes=num_probes, num_steps=num_steps,
                              blocks_at_once=blocks_at_once)
      mass = block_frobenius_mass(loss_fn, params, block_ids, num_blocks=num_blocks,
                                  key=k_frob, num_probes=frobenius_probes,
                                  columns=frobenius_columns, blocks_at_once=blocks_at_once)
      one_one = block_one_one_norms(loss_fn, params, block_ids, num_blocks=num_blocks,
                                    key=k_one, num_columns=one_one_columns,
                                    blocks_at_once=blocks_at_once)
    score, dist = block_heterogeneity(spectra.nodes, spectra.weights, num_points=num_points,
                                      relative_sigma=relative_sigma)
    top = top_eigenvalues(spectra, top_k)
    return {"loss": aux["loss"], "top_eigs_BK": top, "moments_BP": density_moments(spectra),
            "slq_nodes": spectra.nodes, "slq_weights": spectra.weights,
            "heterogeneity": score, "js_BB": dist, "frob_mass_BS": mass,
            "offdiag_share": offdiag_share(mass, frobenius_columns),
            "one_one_B": one_one,
            "one_one_ratio_B": one_one_ratio(one_one, jnp.max(jnp.abs(spectra.nodes[:, 0]), -1),
                                             spectra.sizes)}

  return metrics_fn


__all__ = ["block_frobenius_mass", "block_heterogeneity", "block_one_one_norms",
           "density_grid", "js_distances", "offdiag_share", "one_one_ratio",
           "spectral_curvature_metrics", "spectral_density"]
