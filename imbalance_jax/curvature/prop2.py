"""Paper H Proposition 2: predicted gradient and Hessian blocks of the linear model.

With per-class data moments ``xbar^k`` (class mean input), ``xbar`` (overall
mean), ``Hbar^k`` and ``Hbar`` (second moments) and frequencies ``pi_k``:

* at ``W = 0`` (and zero bias): ``grad_{w_k} L = -(pi_k xbar^k - xbar / c)`` and
  ``H_kk = (1/c)(1 - 1/c) Hbar``. This is exact. The paper prints the gradient
  without the minus sign (its eq. 4 writes ``(1[y = k] - p_k) x``, which is the
  *negative* gradient of the cross-entropy); only norms enter its argument,
  but we return the true gradient so it matches ``jax.grad``. With a bias
  ``b`` and ``W = 0`` the predictions are constant across samples too, with
  ``1/c`` replaced by ``q_k = softmax(b)_k``: ``grad_{w_k} L = q_k xbar -
  pi_k xbar^k``, ``grad_{b_k} L = q_k - pi_k`` and ``H_kk = q_k (1 - q_k) E[[x;1][x;1]^T]``, so a
  zero bias leaves the paper's formulas unchanged (it only adds one coordinate
  per block) while a random bias init (PyTorch) shifts ``1/c`` to ``q_k``.
* during training, if class ``k`` samples get probability ``p_k`` for their
  own class (Assumption 1): ``grad_{w_k} L ≈ -(1 - p_k) pi_k xbar^k``,
  ``H_kk ≈ p_k (1 - p_k) pi_k Hbar^k`` and, eq. (2),
  ``||grad_{w_k} L|| / Tr(H_kk) -> ||xbar^k|| / (p_k Tr(Hbar^k))``.

Functions return ``[C]`` (or ``[D, C]``, the Dense kernel layout) arrays that
can be compared with `linear_block_traces` and `block_grad_norms`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from imbalance_jax import _checks
from imbalance_jax.metrics.per_class import per_class_mean


class DataMoments(NamedTuple):
  """Class-conditional moments of the inputs (``[x; 1]`` when ``bias=True``).

  Attributes:
    pi_C: class frequencies ``n_k / n``.
    xbar_D: overall mean input.
    xbar_DC: class means ``xbar^k`` as columns (NaN-free: 0 for empty classes).
    trace_H: ``Tr(Hbar) = mean_i ||x_i||^2``.
    trace_H_C: ``Tr(Hbar^k)`` = class mean of ``||x_i||^2``.
  """

  pi_C: jax.Array
  xbar_D: jax.Array
  xbar_DC: jax.Array
  trace_H: jax.Array
  trace_H_C: jax.Array


def _augment(x_ND, bias):
  if x_ND.ndim != 2:
    raise ValueError(f"x_ND must have shape [N, D], got {x_ND.shape}")
  return jnp.concatenate([x_ND, jnp.ones_like(x_ND[:, :1])], axis=1) if bias else x_ND


def data_moments(x_ND: jax.Array, y_N: jax.Array, num_classes: int, *,
                 bias: bool = False) -> DataMoments:
  """Moments of paper H Sec. 3.2 in ``O(n d)`` (second moments as traces only).

  Example:
    >>> from imbalance_jax.data import heavy_tailed_labels
    >>> ds = heavy_tailed_labels(jax.random.key(0), m=3)  # n=24, d=32, c=7
    >>> m = data_moments(ds.x, ds.y, ds.num_classes)
    >>> m.xbar_DC.shape
    (32, 7)
  """
  num_classes = _checks.check_int("num_classes", num_classes, minimum=1)
  x = _augment(x_ND, bias)
  if y_N.shape != (x.shape[0],):
    raise ValueError(f"y_N must have shape {(x.shape[0],)}, got {y_N.shape}")
  counts = jax.ops.segment_sum(jnp.ones_like(x[:, 0]), y_N, num_segments=num_classes)
  safe = jnp.maximum(counts, 1)
  xbar_DC = jax.ops.segment_sum(x, y_N, num_segments=num_classes).T / safe
  sq = jnp.sum(x**2, axis=1)
  return DataMoments(pi_C=counts / x.shape[0], xbar_D=jnp.mean(x, axis=0), xbar_DC=xbar_DC,
                     trace_H=jnp.mean(sq),
                     trace_H_C=jax.ops.segment_sum(sq, y_N, num_segments=num_classes) / safe)


def second_moment(x_ND: jax.Array, *, bias: bool = False) -> jax.Array:
  """``Hbar = (1/n) sum_i x_i x_i^T``, ``[D, D]`` (``[D+1, D+1]`` with bias): small d only."""
  x = _augment(x_ND, bias)
  return x.T @ x / x.shape[0]


def prop2_at_init(x_ND: jax.Array, y_N: jax.Array, num_classes: int,
                  bias_C: jax.Array | None = None) -> dict[str, jax.Array]:
  """Exact gradient and Hessian blocks at ``W = 0`` (Prop. 2, eq. 1).

  Args:
    x_ND, y_N: data.
    num_classes: ``c``.
    bias_C: the bias at which to evaluate (``None``: a model without bias;
      zeros give the paper's ``1/c``).

  Returns:
    dict with ``grad_kernel_DC`` (``q_k xbar - pi_k xbar^k`` as columns),
    ``hessian_scale_C`` (``q_k (1 - q_k)``: ``H_kk = scale_k * Hbar``, with
    ``Hbar`` over ``[x; 1]`` when a bias is given), ``hessian_trace_C`` and
    ``grad_norm_C`` (kernel part only); plus ``grad_bias_C`` (``q_k - pi_k``)
    when ``bias_C`` is given. ``q = softmax(bias_C)`` (``1/c`` without bias).

  Example:
    >>> from imbalance_jax.data import heavy_tailed_labels
    >>> ds = heavy_tailed_labels(jax.random.key(0), m=3)
    >>> pred = prop2_at_init(ds.x, ds.y, ds.num_classes)
    >>> trace = pred["hessian_trace_C"]  # constant across classes at W = 0
    >>> trace.shape, bool(jnp.allclose(trace, trace[0]))
    ((7,), True)
  """
  has_bias = bias_C is not None
  m = data_moments(x_ND, y_N, num_classes, bias=has_bias)
  if has_bias:
    bias_C = jnp.asarray(bias_C)
    if bias_C.shape != (num_classes,):
      raise ValueError(f"bias_C must have shape {(num_classes,)}, got {bias_C.shape}")
    q = jax.nn.softmax(bias_C)
  else:
    q = jnp.full((num_classes,), 1.0 / num_classes, x_ND.dtype)
  grad = m.xbar_D[:, None] * q - m.pi_C * m.xbar_DC
  scale = q * (1.0 - q)
  grad_kernel = grad[:x_ND.shape[1]]
  out = {"grad_kernel_DC": grad_kernel, "grad_norm_C": jnp.linalg.norm(grad_kernel, axis=0),
         "hessian_scale_C": scale, "hessian_trace_C": scale * m.trace_H}
  if has_bias:
    out["grad_bias_C"] = grad[-1]
  return out


def prop2_training(x_ND: jax.Array, y_N: jax.Array, num_classes: int, p_C: jax.Array, *,
                   bias: bool = False) -> dict[str, jax.Array]:
  """Approximations of Prop. 2 eq. (2) for given per-class probabilities ``p_k``.

  Args:
    x_ND, y_N, num_classes: data.
    p_C: probability the model gives class-``k`` samples for class ``k``
      (e.g. `class_true_probability`).
    bias: blocks include the bias coordinate (``x`` augmented with 1).

  Returns:
    dict of ``[C]`` arrays: ``grad_norm_C = (1-p) pi ||xbar^k||``,
    ``hessian_trace_C = p (1-p) pi Tr(Hbar^k)``, ``ratio_C = ||xbar^k|| /
    (p Tr(Hbar^k))`` (predicted gradient norm / Hessian trace as c -> inf),
    and ``grad_kernel_DC = -(1-p) pi xbar^k`` (``[D(+1), C]``, sign as in
    ``jax.grad``; the paper drops the minus sign).
  """
  m = data_moments(x_ND, y_N, num_classes, bias=bias)
  p_C = jnp.asarray(p_C)
  if p_C.shape != (num_classes,):
    raise ValueError(f"p_C must have shape {(num_classes,)}, got {p_C.shape}")
  xbar_norm = jnp.linalg.norm(m.xbar_DC, axis=0)
  return {"grad_kernel_DC": -(1.0 - p_C) * m.pi_C * m.xbar_DC,
          "grad_norm_C": (1.0 - p_C) * m.pi_C * xbar_norm,
          "hessian_trace_C": p_C * (1.0 - p_C) * m.pi_C * m.trace_H_C,
          "ratio_C": xbar_norm / (p_C * m.trace_H_C)}


def class_true_probability(logits_NC: jax.Array, y_N: jax.Array) -> jax.Array:
  """Mean predicted probability of the true class over each class's samples, ``[C]``.

  Classes without samples get NaN.
  """
  prob_N = jnp.exp(jnp.take_along_axis(jax.nn.log_softmax(logits_NC), y_N[:, None], 1)[:, 0])
  return per_class_mean(prob_N, y_N, logits_NC.shape[-1])
