"""Closed-form Hessian blocks of the softmax linear model (or of any Dense head).

For logits ``z_i = W^T x_i + b`` and the mean cross-entropy, the Hessian block
of classes ``(k, k')`` (block ``k`` = column ``w_k`` of the kernel, plus
``b_k`` with ``bias=True``) is

  ``H_kk' = (1/n) sum_i a_i (delta_kk' p_ik - p_ik p_ik') [x_i; 1] [x_i; 1]^T``

with ``a_i = 1`` (plain loss) or the class weight ``w_{y_i}`` of a reweighted
loss ``(1/n) sum_i w_{y_i} l_i``. Its trace only needs ``||x_i||^2``, so all
``C`` diagonal traces cost ``O(n (c + d))`` after the forward pass. The same
formulas give the exact last-layer Hessian of any network whose head is a
Dense layer: pass the head's input features as ``x``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _example_scale(x_ND, weights_N):
  """``a_i / n``, shape ``[N]`` (``a_i = 1`` without weights)."""
  if x_ND.ndim != 2:
    raise ValueError(f"x_ND must have shape [N, D], got {x_ND.shape}")
  n = x_ND.shape[0]
  if weights_N is None:
    return jnp.full((n,), 1.0 / n, x_ND.dtype)
  weights_N = jnp.asarray(weights_N)
  if weights_N.shape != (n,):
    raise ValueError(f"weights_N must have shape {(n,)}, got {weights_N.shape}")
  return weights_N / n


def _sample_scale(x_ND, bias, weights_N):
  """``a_i (||x_i||^2 + [bias]) / n``, shape ``[N]``."""
  scale = _example_scale(x_ND, weights_N)
  return scale * (jnp.sum(x_ND**2, axis=-1) + (1.0 if bias else 0.0))


def _probs(logits_NC, x_ND):
  if logits_NC.ndim != 2 or logits_NC.shape[0] != x_ND.shape[0]:
    raise ValueError(f"logits_NC must have shape [N={x_ND.shape[0]}, C], got {logits_NC.shape}")
  return jax.nn.softmax(logits_NC, axis=-1)


def linear_block_traces(logits_NC: jax.Array, x_ND: jax.Array, *, bias: bool = True,
                        weights_N: jax.Array | None = None) -> jax.Array:
  """Exact ``Tr(H_kk)`` for every class block, ``[C]``, in ``O(n (c + d))``.

  ``Tr(H_kk) = (1/n) sum_i a_i p_ik (1 - p_ik) (||x_i||^2 + [bias])``.

  Args:
    logits_NC: logits of the current parameters (e.g. ``aux['logits']`` of a
      training step).
    x_ND: inputs of the Dense layer (raw inputs for the linear model, the
      penultimate features of a deep model).
    bias: block ``k`` also holds the bias ``b_k``.
    weights_N: per-example loss weights ``a_i`` (``class_weights[y]`` for a
      reweighted loss); ``None`` for the plain mean.

  Returns:
    ``[C]`` block traces.

  Example:
    >>> x = jnp.array([[1., 1.], [1., -1.]])  # p = 1/2: (1/2) sum_i (1/4) (2 + 1)
    >>> linear_block_traces(jnp.zeros((2, 2)), x).tolist()
    [0.75, 0.75]
  """
  p = _probs(logits_NC, x_ND)
  return _sample_scale(x_ND, bias, weights_N) @ (p * (1.0 - p))


def linear_block_trace_matrix(logits_NC: jax.Array, x_ND: jax.Array,
                              classes: jax.Array | None = None, *, bias: bool = True,
                              weights_N: jax.Array | None = None) -> jax.Array:
  """Exact traces ``T_kk' = Tr(H_kk')`` of the class blocks for a subset of classes.

  ``T = diag(s^T P) - P^T diag(s) P`` with ``s_i = a_i (||x_i||^2 + [bias]) / n``
  and ``P = softmax(logits)[:, classes]``; off-diagonal entries are
  ``-(1/n) sum_i a_i p_ik p_ik' (||x_i||^2 + [bias])``. Rows of ``T`` sum to
  zero over all classes (paper H, App. H.1), so ``T`` is diagonally dominant.
  Cost ``O(n S^2)`` for ``S`` classes.

  Args:
    logits_NC, x_ND, bias, weights_N: as in `linear_block_traces`.
    classes: int ``[S]`` class ids (default: all ``C``).

  Returns:
    ``[S, S]`` trace matrix.
  """
  p = _probs(logits_NC, x_ND)
  if classes is not None:
    p = p[:, jnp.asarray(classes)]
  s = _sample_scale(x_ND, bias, weights_N)
  return jnp.diag(s @ p) - (p * s[:, None]).T @ p


def linear_hessian_entries(logits_NC: jax.Array, x_ND: jax.Array, classes: jax.Array,
                           dims: jax.Array, *, weights_N: jax.Array | None = None) -> jax.Array:
  """Exact Hessian entries for ``S`` classes x ``J`` input dimensions, ``[S*J, S*J]``.

  Entry ``((k, a), (k', b))`` (row index ``k * J + a``, class-major) is
  ``d^2 L / dW[a, k] dW[b, k'] = (1/n) sum_i a_i (delta_kk' p_ik - p_ik p_ik')
  x_ia x_ib``. Cost ``O(n (S J)^2)``; the Hessian is never formed beyond the
  requested ``[S*J, S*J]`` sub-matrix. Bias coordinates are not included.

  Args:
    logits_NC, x_ND, weights_N: as in `linear_block_traces`.
    classes: int ``[S]`` class ids.
    dims: int ``[J]`` input dimensions.
  """
  p = _probs(logits_NC, x_ND)[:, jnp.asarray(classes)]  # [N, S]
  xs = x_ND[:, jnp.asarray(dims)]  # [N, J]
  a = _example_scale(x_ND, weights_N)
  num_s, num_j = p.shape[1], xs.shape[1]
  z = (p[:, :, None] * xs[:, None, :]).reshape(x_ND.shape[0], num_s * num_j)
  off = (z * a[:, None]).T @ z
  diag = jnp.einsum("n,nk,na,nb->kab", a, p, xs, xs)  # [S, J, J]
  eye = jnp.eye(num_s, dtype=diag.dtype)
  diag_full = (eye[:, None, :, None] * diag[:, :, None, :]).reshape(num_s * num_j, num_s * num_j)
  return diag_full - off
