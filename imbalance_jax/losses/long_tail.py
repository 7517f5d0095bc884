"""Loss-side remedies of the long-tail literature, as pure per-example losses.

Each loss maps ``logits [N, C]``, integer ``labels [N]`` and the training
set's ``class_counts [C]`` to a per-example loss ``[N]`` (mean it, or weight
it with `imbalance_jax.losses.weighted_mean_loss`). Classes with no training
examples (``n_k = 0``, prior ``pi_k = 0``) are handled exactly where the
formula has a limit: an additive ``tau log pi_k`` with ``tau > 0`` removes
the class from the softmax (``-inf``), with ``tau = 0`` it is 0; margins and
weights of empty classes are 0 (no example carries their label).

Papers:
  * logit adjustment, in the loss and post hoc: Menon et al., "Long-tail
    learning via logit adjustment", ICLR 2021 (arXiv:2007.07314);
  * balanced softmax: Ren et al., "Balanced Meta-Softmax for long-tailed
    visual recognition", NeurIPS 2020 (arXiv:2007.10740);
  * LDAM and deferred re-weighting (DRW): Cao et al., "Learning imbalanced
    datasets with label-distribution-aware margin loss", NeurIPS 2019
    (arXiv:1906.07413);
  * class-balanced weights (effective number): Cui et al., CVPR 2019
    (arXiv:1901.05555), in `imbalance_jax.losses.class_weights`;
  * softmax focal loss: Lin et al., "Focal loss for dense object detection",
    ICCV 2017 (arXiv:1708.02002);
  * vector-scaling (VS) loss: Kini et al., "Label-imbalanced and
    group-sensitive classification under overparameterization", NeurIPS 2021
    (arXiv:2103.01550).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from imbalance_jax import _checks

LOSSES = ("logit_adjust", "balanced_softmax", "ldam", "ldam_drw", "focal", "vs")
"""Loss names usable as the ``@<loss>`` part of a run name."""

DEFAULTS = {"tau": 1.0, "max_margin": 0.5, "ldam_scale": 1.0, "drw_beta": 0.9999,
            "focal_gamma": 1.0, "vs_gamma": 0.2, "vs_tau": 1.0}
"""Documented defaults: Menon et al.'s tau = 1; Cao et al.'s largest margin 0.5
and DRW beta = 0.9999 (their scale s = 30 is for normalised cosine logits; for
our unnormalised logits the default scale is 1, an assumption); focal gamma =
1 (Lin et al. use 2 with sigmoids; an assumption); VS gamma = 0.2, tau = 1
(Kini et al.'s CIFAR settings as we read them; an assumption)."""


def _float_counts(class_counts_C, dtype):
  _checks.check_class_counts("class_counts_C", class_counts_C)
  return jnp.asarray(class_counts_C, dtype)


def _check(logits_NC, labels_N, class_counts_C=None, **scalars) -> None:
  """Shapes and dtypes (static, so also under jit) and concrete hyperparameters."""
  logits_NC, labels_N = jnp.asarray(logits_NC), jnp.asarray(labels_N)
  if logits_NC.ndim < 1 or labels_N.shape != logits_NC.shape[:-1]:
    raise ValueError(f"logits_NC [N, C] and labels_N [N] disagree: shapes {logits_NC.shape} and "
                     f"{labels_N.shape}")
  if not jnp.issubdtype(labels_N.dtype, jnp.integer):
    raise ValueError(f"labels_N must hold integer class ids, got dtype {labels_N.dtype}")
  if class_counts_C is not None and jnp.shape(class_counts_C)[-1:] != logits_NC.shape[-1:]:
    raise ValueError(f"class_counts_C must have shape [C={logits_NC.shape[-1]}] like the logits, "
                     f"got {jnp.shape(class_counts_C)}")
  for name, (value, minimum) in scalars.items():
    if jnp.ndim(value) != 0:
      raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}")
    if not _checks.is_traced(value):
      value = np.asarray(value)
      if not np.all(np.isfinite(value)) or (minimum is not None and np.any(value < minimum)):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{name} must be finite{bound}, got {value.tolist()}")


def tau_log_prior(class_counts_C: jax.Array, tau=1.0, dtype=None) -> jax.Array:
  """``tau * log pi_k`` ``[C]`` with ``pi = counts / sum(counts)``; empty classes get
  ``-inf`` if ``tau > 0`` and 0 if ``tau == 0``.

  Example:
    >>> [round(v, 4) for v in tau_log_prior(jnp.array([1, 1, 0]), 1.0).tolist()]
    [-0.6931, -0.6931, -inf]
  """
  counts = _float_counts(class_counts_C, dtype or jnp.result_type(float))
  pi = counts / counts.sum(-1, keepdims=True)
  log_pi = jnp.log(jnp.where(pi > 0, pi, 1.0))
  empty = jnp.where(jnp.asarray(tau) > 0, -jnp.inf, 0.0)
  return jnp.where(pi > 0, tau * log_pi, empty).astype(counts.dtype)


def logit_adjusted_loss(logits_NC, labels_N, class_counts_C, tau=1.0) -> jax.Array:
  """Menon et al.'s logit-adjusted cross-entropy ``CE(logits + tau log pi, y)`` ``[N]``.

  Example:
    >>> round(float(logit_adjusted_loss(jnp.zeros((1, 2)), jnp.array([0]), jnp.array([3, 1]))[0]),
    ...       4)
    0.2877
  """
  _check(logits_NC, labels_N, class_counts_C, tau=(tau, None))
  adjusted = logits_NC + tau_log_prior(class_counts_C, tau, logits_NC.dtype)
  return optax.losses.softmax_cross_entropy_with_integer_labels(adjusted, labels_N)


def balanced_softmax_loss(logits_NC, labels_N, class_counts_C) -> jax.Array:
  """Ren et al.'s balanced softmax ``-log(pi_y e^{z_y} / sum_j pi_j e^{z_j})`` ``[N]``
  (= `logit_adjusted_loss` with ``tau = 1``).

  Example:
    >>> round(float(balanced_softmax_loss(jnp.zeros((1, 2)), jnp.array([1]), jnp.array([3, 1]))[0]),
    ...       4)
    1.3863
  """
  return logit_adjusted_loss(logits_NC, labels_N, class_counts_C, 1.0)


def post_hoc_adjusted_logits(logits_NC, class_counts_C, tau=1.0) -> jax.Array:
  """Menon et al.'s post-hoc correction ``logits - tau log pi`` ``[N, C]`` (at
  evaluation; predict its argmax). Classes without training examples get ``-inf``
  when ``tau > 0`` (never predicted).

  Example:
    >>> post_hoc_adjusted_logits(jnp.zeros((1, 2)), jnp.array([3, 1])).argmax(-1).tolist()
    [1]
  """
  adjustment = tau_log_prior(class_counts_C, tau, logits_NC.dtype)
  return jnp.where(jnp.isneginf(adjustment), -jnp.inf, logits_NC - adjustment)


def ldam_margins(class_counts_C, max_margin=0.5, dtype=None) -> jax.Array:
  """Cao et al.'s margins ``Delta_k ∝ n_k^(-1/4)``, the largest ``max_margin`` ``[C]``
  (empty classes 0).

  Example:
    >>> ldam_margins(jnp.array([16, 1, 0])).tolist()
    [0.25, 0.5, 0.0]
  """
  counts = _float_counts(class_counts_C, dtype or jnp.result_type(float))
  raw = jnp.where(counts > 0, jnp.where(counts > 0, counts, 1.0) ** -0.25, 0.0)
  return max_margin * raw / jnp.max(raw, -1, keepdims=True)


def ldam_loss(logits_NC, labels_N, class_counts_C, max_margin=0.5, scale=1.0) -> jax.Array:
  """LDAM: ``CE(scale * (logits - Delta_y e_y), y)`` ``[N]`` (Cao et al., Eq. 13).

  Example:
    >>> round(float(ldam_loss(jnp.zeros((1, 2)), jnp.array([0]), jnp.array([1, 1]), 0.0)[0]), 4)
    0.6931
  """
  _check(logits_NC, labels_N, class_counts_C, max_margin=(max_margin, 0.0), scale=(scale, 0.0))
  margins_C = ldam_margins(class_counts_C, max_margin, logits_NC.dtype)
  one_hot = jax.nn.one_hot(labels_N, logits_NC.shape[-1], dtype=logits_NC.dtype)
  shifted = logits_NC - one_hot * margins_C[labels_N][..., None]
  return optax.losses.softmax_cross_entropy_with_integer_labels(scale * shifted, labels_N)


def drw_weights(class_counts_C, step, drw_step, beta=0.9999) -> jax.Array:
  """Deferred re-weighting (Cao et al., Alg. 1): all ones before ``drw_step``, the
  class-balanced weights (beta) from it on ``[C]``. ``step`` may be traced (jit/scan).

  Example:
    >>> drw_weights(jnp.array([3, 1]), 0, 5).tolist(), drw_weights(jnp.array([3, 1]), 5, 5,
    ...     beta=0.0).tolist()
    ([1.0, 1.0], [1.0, 1.0])
  """
  from imbalance_jax.losses import class_weights  # the package's weights
  balanced = class_weights(class_counts_C, "class_balanced", beta=beta)
  return jnp.where(jnp.asarray(step) >= drw_step, balanced, jnp.ones_like(balanced))


def focal_loss(logits_NC, labels_N, gamma=1.0) -> jax.Array:
  """Softmax focal loss ``-(1 - p_y)^gamma log p_y`` ``[N]`` (Lin et al.; ``gamma = 0``
  is cross-entropy).

  Example:
    >>> round(float(focal_loss(jnp.zeros((1, 2)), jnp.array([0]), 2.0)[0]), 4)  # 0.25 * log 2
    0.1733
  """
  _check(logits_NC, labels_N, gamma=(gamma, 0.0))
  log_p = -optax.losses.softmax_cross_entropy_with_integer_labels(logits_NC, labels_N)
  return -((-jnp.expm1(log_p)) ** gamma) * log_p


def vs_loss(logits_NC, labels_N, class_counts_C, gamma=0.2, tau=1.0) -> jax.Array:
  """Kini et al.'s VS loss ``CE(Delta * logits + tau log pi, y)`` with multiplicative
  ``Delta_k = (n_k / n_max)^gamma`` ``[N]`` (``gamma = 0`` is logit adjustment).

  Example:
    >>> round(float(vs_loss(jnp.zeros((1, 2)), jnp.array([0]), jnp.array([1, 1]), tau=0.0)[0]), 4)
    0.6931
  """
  _check(logits_NC, labels_N, class_counts_C, gamma=(gamma, 0.0), tau=(tau, None))
  counts = _float_counts(class_counts_C, logits_NC.dtype)
  delta = (counts / jnp.max(counts, -1, keepdims=True)) ** gamma
  scaled = logits_NC * delta + tau_log_prior(class_counts_C, tau, logits_NC.dtype)
  return optax.losses.softmax_cross_entropy_with_integer_labels(scaled, labels_N)


def training_loss(name: str, logits_NC, labels_N, class_counts_C, step=0, *,
                  drw_step=0, **hyper) -> jax.Array:
  """The per-example training loss ``[N]`` of loss ``name`` (one of `LOSSES`), with the
  `DEFAULTS` overridden by ``hyper``. ``"ldam_drw"`` multiplies LDAM by
  `drw_weights` at ``step`` (default 0, which with ``drw_step=0`` is re-weighted
  from the start).

  Example:
    >>> round(float(training_loss("balanced_softmax", jnp.zeros((1, 2)), jnp.array([1]),
    ...                           jnp.array([3, 1]))[0]), 4)
    1.3863
  """
  if name not in LOSSES:
    raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
  unknown = set(hyper) - set(DEFAULTS)
  if unknown:
    raise ValueError(f"unknown loss hyperparameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
  h = {**DEFAULTS, **hyper}
  if name == "logit_adjust":
    return logit_adjusted_loss(logits_NC, labels_N, class_counts_C, h["tau"])
  if name == "balanced_softmax":
    return balanced_softmax_loss(logits_NC, labels_N, class_counts_C)
  if name == "focal":
    return focal_loss(logits_NC, labels_N, h["focal_gamma"])
  if name == "vs":
    return vs_loss(logits_NC, labels_N, class_counts_C, h["vs_gamma"], h["vs_tau"])
  loss = ldam_loss(logits_NC, labels_N, class_counts_C, h["max_margin"], h["ldam_scale"])
  if name == "ldam":
    return loss
  weights = drw_weights(class_counts_C, step, drw_step, h["drw_beta"]).astype(loss.dtype)
  return weights[labels_N] * loss
