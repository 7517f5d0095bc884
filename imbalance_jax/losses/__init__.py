"""Cross-entropy with optional class reweighting (paper H App. F, paper R), and the
long-tail literature's loss-side remedies (`imbalance_jax.losses.long_tail`)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from imbalance_jax import _checks
from imbalance_jax.losses import long_tail
from imbalance_jax.losses.long_tail import LOSSES

OBJECTIVES = ("none", "inverse", "inverse_sqrt", "class_balanced") + LOSSES
"""Everything the ``@<...>`` part of a run name may name: a class weighting or a loss
(``ldam_drw`` needs its ``drw_step``: build it with
``train.classification_objective(apply, "ldam_drw", drw_step=k)``; a builder that gives
none, e.g. `experiment.train_builder`, refuses it naming ``drw_step``)."""

WEIGHTINGS = ("none", "inverse", "inverse_sqrt", "class_balanced")


def cross_entropy(logits_NC: jax.Array, labels_N: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy ``-log softmax(logits)[label]``, shape ``[N]``."""
  return optax.losses.softmax_cross_entropy_with_integer_labels(logits_NC, labels_N)


def class_weights(class_counts_C: jax.Array, weighting: str = "none", *,
                  beta: float = 0.9999) -> jax.Array:
  """Per-class loss weights ``w_k ∝ pi_k^(-gamma)``, normalised so ``sum_k pi_k w_k = 1``.

  ``"inverse"`` is gamma = 1 (weights 1/pi_k), ``"inverse_sqrt"`` gamma = 1/2
  (1/sqrt(pi_k)), ``"none"`` all ones, ``"class_balanced"`` Cui et al.'s (CVPR
  2019, arXiv:1901.05555) inverse effective number ``(1 - beta) / (1 - beta^n_k)``
  (-> 1/n_k as beta -> 1, uniform as beta -> 0). The normalisation makes the reweighted
  loss equal the plain loss whenever every example has the same loss (e.g. at
  W = 0), so step sizes stay comparable across weightings. Classes with no
  examples get weight 0.

  Args:
    class_counts_C: example counts ``[C]``.
    weighting: one of ``WEIGHTINGS``.
    beta: the effective-number parameter of ``"class_balanced"``, in ``[0, 1)``.

  Returns:
    weights ``[C]`` in the default float dtype (float64 under ``jax.enable_x64``).

  Example:
    >>> class_weights(jnp.array([3, 1]), "inverse").tolist()
    [0.6666666865348816, 2.0]
  """
  _checks.check_choice("weighting", weighting, WEIGHTINGS)
  _checks.check_class_counts("class_counts_C", class_counts_C)
  counts = jnp.asarray(class_counts_C, jnp.result_type(float))
  pi = counts / counts.sum(-1, keepdims=True)
  if weighting == "none":
    return jnp.ones_like(pi)
  if weighting == "class_balanced":
    if not 0.0 <= beta < 1.0:
      raise ValueError(f"beta must lie in [0, 1), got {beta}")
    # (1 - beta) / (1 - beta^n) = expm1(log beta) / expm1(n log beta), stable near beta = 1.
    log_beta = jnp.asarray(math.log(beta) if beta > 0 else -math.inf, counts.dtype)
    safe = jnp.where(counts > 0, counts, 1.0)
    raw = jnp.where(counts > 0, jnp.expm1(log_beta) / jnp.expm1(safe * log_beta), 0.0)
    return raw / jnp.sum(pi * raw, -1, keepdims=True)
  gamma = 1.0 if weighting == "inverse" else 0.5
  raw = jnp.where(pi > 0, jnp.where(pi > 0, pi, 1.0) ** -gamma, 0.0)
  return raw / jnp.sum(pi * raw, -1, keepdims=True)


def weighted_mean_loss(loss_N: jax.Array, labels_N: jax.Array,
                       class_weights_C: jax.Array | None = None) -> jax.Array:
  """``(1/N) sum_i w_{y_i} loss_i`` (the plain mean when weights are None)."""
  if class_weights_C is None:
    return jnp.mean(loss_N)
  return jnp.mean(class_weights_C[labels_N] * loss_N)
