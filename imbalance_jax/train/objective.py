"""Training objectives: what a step differentiates, and what it reports."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from imbalance_jax import losses
from imbalance_jax.types import Dataset


def classification_objective(apply_fn: Callable, weighting: str = "none") -> Callable:
  """``objective(params, data) -> (objective, aux)`` for softmax cross-entropy.

  The objective is the (optionally class-reweighted) mean cross-entropy; the
  aux dict carries what metrics reuse without a second forward pass:
  ``logits [N, C]``, the unweighted per-example ``loss_N [N]`` and their mean
  ``loss`` (the quantity plotted, tuned on and checked for divergence).

  Args:
    apply_fn: ``(params, x) -> logits``, e.g. ``model.apply``.
    weighting: ``"none"``, ``"inverse"`` (1/pi_k) or ``"inverse_sqrt"``
      (1/sqrt(pi_k)); weights come from ``data.class_counts`` (see
      `imbalance_jax.losses.class_weights`).

  Example:
    >>> objective = classification_objective(LinearSoftmax(255).apply)
    >>> value, aux = objective(params, data)
  """
  losses.class_weights(jnp.ones(1), weighting)  # validates `weighting` eagerly

  def objective(params, data: Dataset):
    logits = apply_fn(params, data.x)
    loss_N = losses.cross_entropy(logits, data.y)
    loss = jnp.mean(loss_N)
    if weighting == "none":
      value = loss
    else:
      weights_C = losses.class_weights(data.class_counts, weighting).astype(loss_N.dtype)
      value = losses.weighted_mean_loss(loss_N, data.y, weights_C)
    return value, {"logits": logits, "loss_N": loss_N, "loss": loss}

  return objective
