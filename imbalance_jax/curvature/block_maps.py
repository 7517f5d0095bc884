"""Hessian block magnitude maps (paper H, Figs 8 and 28).

Classes are sampled by frequency rank, uniformly or log-uniformly (the latter
puts as many samples among the 10 most frequent classes as among ranks
10-100, matching a heavy tail), with an explicit PRNG key. The maps are
``log10 |.|`` of the class-block trace matrix ``[S, S]`` and of the
entrywise Hessian on ``S`` classes x ``J`` input dimensions ``[S*J, S*J]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks

SCHEMES = ("uniform", "log_uniform")


def sample_classes(key: jax.Array, class_counts, num: int,
                   scheme: str = "log_uniform") -> np.ndarray:
  """Samples ``num`` distinct classes by frequency rank.

  Args:
    key: PRNG key.
    class_counts: ``[C]`` examples per class (defines the frequency ranks).
    num: number of classes ``S``, ``1 <= S <= C``.
    scheme: ``"uniform"`` (every rank equally likely) or ``"log_uniform"``
      (rank ``r = 1..C`` drawn with probability ∝ 1/r, i.e. uniform in log r),
      without replacement.

  Returns:
    int ``[S]`` class ids ordered from most to least frequent (ties by id).

  Example:
    >>> classes = sample_classes(jax.random.key(0), [8, 4, 4, 2, 2, 2, 2], 3, "uniform")
    >>> len(set(classes.tolist())), bool(np.all(np.diff(classes) > 0))
    (3, True)
  """
  _checks.check_choice("scheme", scheme, SCHEMES)
  counts = np.asarray(class_counts)
  if counts.ndim != 1 or counts.size == 0:
    raise ValueError(f"class_counts must have shape [C], got {counts.shape}")
  num = _checks.check_int("num", num, minimum=1)
  if num > counts.size:
    raise ValueError(f"num must be <= the number of classes {counts.size}, got {num}")
  order = np.argsort(-counts, kind="stable")
  ranks = np.arange(1, counts.size + 1, dtype=np.float64)
  p = np.ones_like(ranks) if scheme == "uniform" else 1.0 / ranks
  picked = jax.random.choice(key, counts.size, (num,), replace=False, p=jnp.asarray(p / p.sum()))
  return order[np.sort(np.asarray(picked))]


def sample_dims(key: jax.Array, dim: int, num: int) -> np.ndarray:
  """``num`` distinct input dimensions of ``range(dim)``, uniformly, sorted."""
  dim = _checks.check_int("dim", dim, minimum=1)
  num = _checks.check_int("num", num, minimum=1)
  if num > dim:
    raise ValueError(f"num must be <= dim={dim}, got {num}")
  return np.sort(np.asarray(jax.random.choice(key, dim, (num,), replace=False)))


def log10_magnitude(values: jax.Array, floor: float = 1e-30) -> jax.Array:
  """``log10(max(|values|, floor))`` (the floor keeps exact zeros finite)."""
  return jnp.log10(jnp.maximum(jnp.abs(values), floor))


def diag_to_offdiag_ratio(trace_matrix_SS: jax.Array) -> jax.Array:
  """``median |diagonal| / median |off-diagonal|`` of a square block-trace matrix.

  Example:
    >>> diag_to_offdiag_ratio(jnp.array([[4., -1.], [-1., 2.]]))
    Array(3., dtype=float32)
  """
  t = jnp.asarray(trace_matrix_SS)
  if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 2:
    raise ValueError(f"trace_matrix_SS must be square with S >= 2, got {t.shape}")
  num = t.shape[0]
  off = jnp.abs(t)[~np.eye(num, dtype=bool)]
  return jnp.median(jnp.abs(jnp.diag(t))) / jnp.median(off)


def block_diagonal_mask(num_classes: int, block_size: int) -> np.ndarray:
  """Boolean ``[S*J, S*J]`` mask of the diagonal class blocks of an entrywise map."""
  eye = np.eye(num_classes, dtype=bool)
  return np.kron(eye, np.ones((block_size, block_size), dtype=bool))
