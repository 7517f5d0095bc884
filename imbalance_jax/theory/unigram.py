"""Paper S: the softmax unigram model f(theta) = logsumexp(theta) - pi^T theta.

Derived here (paper S is available to us as a summary only; docs/theory.md
has the proofs):

* gradient ``p - pi`` with ``p = softmax(theta)``; Hessian ``diag(p) - p p^T``;
* minimisers ``log(pi) + c 1`` (any c); ``f* = H(pi)`` (entropy), and
  ``f(theta) - f* = KL(pi || p)``;
* smoothness at theta: ``v^T H v = Var_p(v)``, so in l2 geometry
  ``L_2(theta) = lambda_max(H)`` with ``p_(2) <= L_2 <= min(p_(1), 1/2)``
  (interlacing; Popoviciu), and in l_inf geometry
  ``L_inf(theta) = max_{||v||_inf <= 1} Var_p(v) = 4 max_S p(S)(1 - p(S))``
  (a convex quadratic peaks at a cube vertex), with
  ``1 - p_(1)^2 <= L_inf <= 1``. Globally ``sup L_2 = 1/2`` and
  ``sup L_inf = 1`` (p -> (1/2, 1/2, 0, ...)).
* normalized steepest descent with step eta in a norm with global smoothness
  L: ``Delta_{t+1} <= (1 - eta / D) Delta_t + L eta^2 / 2`` while the distance
  D to the minimisers does not grow (true for both methods here), so with
  ``eta = eps / (L D_0)`` it reaches eps within
  ``(L D_0^2 / eps) log(2 Delta_0 / eps)`` steps. From theta = 0 with Zipf pi:
  ``D_2^2 = ||log pi - mean||^2 ~ d`` but ``D_inf = (log pi_1 - log pi_d)/2 ~ log(d)/2``:
  O(d) steps for normalized GD vs O(log(d)^2) for sign descent.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from scipy.sparse import linalg as sparse_linalg

from imbalance_jax import _checks

NORMS = ("l2", "linf")
GLOBAL_SMOOTHNESS = {"l2": 0.5, "linf": 1.0}


def unigram_loss(theta_D: jax.Array, pi_D: jax.Array) -> jax.Array:
  """``f(theta) = logsumexp(theta) - pi^T theta`` (mean next-token cross-entropy)."""
  return jax.nn.logsumexp(theta_D) - jnp.dot(pi_D, theta_D)


def unigram_grad(theta_D: jax.Array, pi_D: jax.Array) -> jax.Array:
  """``softmax(theta) - pi``."""
  return jax.nn.softmax(theta_D) - pi_D


def unigram_hessian(theta_D: jax.Array) -> jax.Array:
  """Dense ``diag(p) - p p^T`` ``[D, D]`` (small D only)."""
  p = jax.nn.softmax(theta_D)
  return jnp.diag(p) - jnp.outer(p, p)


def unigram_hvp(theta_D: jax.Array, v_D: jax.Array) -> jax.Array:
  """``(diag(p) - p p^T) v`` in O(D)."""
  p = jax.nn.softmax(theta_D)
  return p * v_D - p * jnp.dot(p, v_D)


def unigram_minimizer(pi_D) -> jax.Array:
  """The minimiser ``log(pi)`` (logsumexp 0); every ``log(pi) + c`` is one too."""
  _checks.check_positive("pi_D", pi_D)
  return jnp.log(jnp.asarray(pi_D))


def unigram_optimal_value(pi_D) -> jax.Array:
  """``f* = H(pi) = -sum_k pi_k log pi_k``."""
  _checks.check_positive("pi_D", pi_D)
  pi = jnp.asarray(pi_D)
  return -jnp.sum(pi * jnp.log(pi))


def unigram_suboptimality(theta_D: jax.Array, pi_D: jax.Array) -> jax.Array:
  """``f(theta) - f* = KL(pi || softmax(theta))``, computed without cancellation.

  Example:
    >>> pi = jnp.array([0.5, 0.25, 0.25])
    >>> round(float(unigram_suboptimality(unigram_minimizer(pi) + 3.0, pi)), 6)
    0.0
    >>> bool(jnp.isclose(unigram_suboptimality(jnp.zeros(3), pi),
    ...                  unigram_loss(jnp.zeros(3), pi) - unigram_optimal_value(pi)))
    True
  """
  return jnp.sum(pi_D * (jnp.log(pi_D) - jax.nn.log_softmax(theta_D)))


def distance_to_minimizers(theta_D, pi_D, norm: str = "l2") -> float:
  """``min_c ||theta - log(pi) - c 1||`` in ``"l2"`` or ``"linf"``.

  l2: the norm of the centred residual; l_inf: half the residual's range.

  Example:
    >>> distance_to_minimizers([5.0, 5.0], [0.5, 0.5])  # log(pi) + 5.69 is a minimiser
    0.0
    >>> round(distance_to_minimizers([0.0, 0.0], [0.25, 0.75], "linf"), 4)  # log(3) / 2
    0.5493
  """
  _checks.check_choice("norm", norm, NORMS)
  residual = np.asarray(theta_D, np.float64) - np.log(np.asarray(pi_D, np.float64))
  if norm == "l2":
    return float(np.linalg.norm(residual - residual.mean()))
  return float((residual.max() - residual.min()) / 2.0)


def _probabilities(theta_D) -> np.ndarray:
  """softmax in float64 numpy (the smoothness helpers are references, off the hot path)."""
  theta = np.asarray(theta_D, np.float64)
  p = np.exp(theta - theta.max())
  return p / p.sum()


def l2_smoothness(theta_D) -> float:
  """``lambda_max(diag(p) - p p^T)`` by Lanczos on the O(D) Hessian-vector product."""
  p = _probabilities(theta_D)
  if p.size <= 64:  # Lanczos needs k < D; tiny problems are cheaper dense.
    return float(np.linalg.eigvalsh(np.diag(p) - np.outer(p, p))[-1])
  operator = sparse_linalg.LinearOperator((p.size, p.size), dtype=np.float64,
                                          matvec=lambda v: p * v.ravel() - p * (p @ v.ravel()))
  return float(sparse_linalg.eigsh(operator, k=1, which="LA", tol=1e-12,
                                   return_eigenvectors=False)[0])


def l2_smoothness_bounds(theta_D) -> tuple[float, float]:
  """``(p_(2), min(p_(1), 1/2))``: interlacing and Popoviciu bounds on `l2_smoothness`."""
  p = np.sort(_probabilities(theta_D))[::-1]
  return float(p[1]), float(min(p[0], 0.5))


def linf_smoothness(theta_D, exact_max_dim: int = 16) -> float:
  """``max_{||v||_inf <= 1} v^T (diag(p) - p p^T) v = 4 max_S p(S) (1 - p(S))``.

  Exact (all 2^D subsets S) for ``D <= exact_max_dim``. Otherwise S ranges over
  the prefixes of p sorted ascending and descending: consecutive prefix sums
  differ by one p_k, so one lies within ``p_(1)/2`` of 1/2 and the value is
  within ``p_(1)^2`` of the truth (a lower bound).
  """
  p = _probabilities(theta_D)
  if p.size <= exact_max_dim:
    subsets = np.array(list(itertools.product([0.0, 1.0], repeat=p.size)))
    mass = subsets @ p
  else:
    ascending = np.sort(p)
    mass = np.concatenate([np.cumsum(ascending), np.cumsum(ascending[::-1])])
  return float(np.max(4.0 * mass * (1.0 - mass)))


def linf_smoothness_bounds(theta_D) -> tuple[float, float]:
  """``(1 - p_(1)^2, 1)``: bounds on `linf_smoothness` (prefix partition / Popoviciu)."""
  p_max = float(np.max(_probabilities(theta_D)))
  return 1.0 - p_max**2, 1.0


def theory_step_size(pi_D, eps: float, norm: str) -> float:
  """``eta = eps / (L D_0)`` from theta = 0, with the global smoothness L of the norm.

  ``norm="l2"`` is for normalized GD, ``"linf"`` for sign descent.
  """
  _checks.check_positive("eps", eps)
  _checks.check_choice("norm", norm, NORMS)
  distance = distance_to_minimizers(np.zeros(np.shape(pi_D)), pi_D, norm)
  return float(eps / (GLOBAL_SMOOTHNESS[norm] * distance))


def theory_iterations(pi_D, eps: float, norm: str) -> float:
  """Steps to reach eps at `theory_step_size`: at most ``(L D_0^2 / eps) log(2 Delta_0 / eps)``."""
  _checks.check_positive("eps", eps)
  _checks.check_choice("norm", norm, NORMS)
  pi = np.asarray(pi_D, np.float64)
  distance = distance_to_minimizers(np.zeros(pi.shape), pi, norm)
  gap0 = float(np.log(pi.size) + np.sum(pi * np.log(pi)))  # KL(pi || uniform)
  return float(GLOBAL_SMOOTHNESS[norm] * distance**2 / eps * max(np.log(2.0 * gap0 / eps), 0.0))
