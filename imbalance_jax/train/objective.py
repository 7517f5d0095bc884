"""Training objectives: what a step differentiates, and what it reports."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jax.scipy.special import logsumexp

from imbalance_jax import losses
from imbalance_jax.types import Dataset


def _cross_entropy_outputs(logits, data: Dataset, weighting: str, step=0, drw_step=None,
                           loss_params=None):
  """``(objective, aux)`` of softmax cross-entropy; labels may be ``[N]`` or ``[N, T]``."""
  if not jnp.issubdtype(data.y.dtype, jnp.integer):  # static: checked once, at trace time
    raise ValueError(f"data.y must hold integer class ids, got {data.y.dtype} (build the "
                     "Dataset with imbalance_jax.types.make_dataset, which checks it)")
  if logits.shape[:-1] != data.y.shape or logits.shape[-1] != data.num_classes:
    raise ValueError(f"the model's logits {logits.shape} do not match data.y {data.y.shape} "
                     f"and data.num_classes={data.num_classes}: expected logits "
                     "[*y.shape, num_classes]")
  loss = losses.cross_entropy(logits, data.y)
  label_N, loss_N = data.y.reshape(-1), loss.reshape(-1)
  mean_loss = jnp.mean(loss_N)
  if weighting == "none":
    value = mean_loss
  elif weighting in losses.LOSSES:
    logits_NC = logits.reshape(-1, logits.shape[-1])
    value = jnp.mean(losses.long_tail.training_loss(
        weighting, logits_NC, label_N, data.class_counts, step,
        drw_step=0 if drw_step is None else drw_step,
        **{k: v for k, v in loss_params.items() if k != "class_balanced_beta"}))
  else:
    beta = {"beta": loss_params["class_balanced_beta"]} if "class_balanced_beta" in loss_params \
        else {}
    weights_C = losses.class_weights(data.class_counts, weighting, **beta).astype(loss_N.dtype)
    value = losses.weighted_mean_loss(loss_N, label_N, weights_C)
  aux = {"logits": logits, "loss_N": loss_N, "label_N": label_N,
         "prediction_N": jnp.argmax(logits, axis=-1).reshape(-1), "loss": mean_loss,
         # max softmax probability, for calibration (metrics.long_tail_metrics)
         "confidence_N": jnp.exp(jnp.max(logits, -1) - logsumexp(logits, -1)).reshape(-1)}
  return value, aux


def classification_objective(apply_fn: Callable, weighting: str = "none", *,
                             stateful: bool = False, drw_step: int | None = None,
                             loss_params: dict | None = None) -> Callable:
  """Softmax cross-entropy as a training objective.

  The objective is the (optionally class-reweighted) mean cross-entropy; the
  aux dict carries what metrics reuse without a second forward pass:
  ``logits [N, C]``, the unweighted per-example ``loss_N [N]``, ``label_N`` and
  ``prediction_N`` (argmax) and ``confidence_N`` (max softmax probability)
  ``[N]``, and the mean ``loss`` (the quantity
  plotted, tuned on and checked for divergence). For sequence data (labels
  ``[N, T]``) every token is an example and the ``*_N`` entries are flat
  ``[N * T]``. Class weights come from ``data.class_counts`` of the whole
  training set, so chunks and mini-batches see the same weights.

  Args:
    apply_fn: ``(params, x) -> logits``, e.g. ``model.apply``; with
      ``stateful=True``, ``(variables, x, train=..., mutable=..., rngs=...)`` as
      Flax's ``Module.apply`` for a module whose ``__call__(x, train)`` uses
      BatchNorm (``use_running_average=not train``) or Dropout (rng ``"dropout"``).
    weighting: ``"none"``, ``"inverse"`` (1/pi_k), ``"inverse_sqrt"``
      (1/sqrt(pi_k)) or ``"class_balanced"`` (see
      `imbalance_jax.losses.class_weights`), or a long-tail loss of
      `imbalance_jax.losses.OBJECTIVES` (``"logit_adjust"``, ``"balanced_softmax"``,
      ``"ldam"``, ``"focal"``, ``"vs"``; `imbalance_jax.losses.long_tail`, with its
      ``DEFAULTS``): the objective is then that loss's mean, while ``aux["loss"]``
      and ``loss_N`` stay the plain cross-entropy.
    drw_step: with ``weighting="ldam_drw"`` (required there): LDAM, re-weighted by
      class-balanced weights from this optimizer step on (Cao et al.'s DRW). The
      objective then takes ``step=`` (marked ``takes_step``; `make_train` passes
      the step inside the scan, so it compiles once).
    loss_params: overrides of `imbalance_jax.losses.long_tail.DEFAULTS` (``tau``,
      ``max_margin``, ``ldam_scale``, ``drw_beta``, ``focal_gamma``, ``vs_gamma``,
      ``vs_tau``) and ``class_balanced_beta`` (the ``beta`` of
      `imbalance_jax.losses.class_weights`, default 0.9999).
    stateful: build ``objective(params, data, model_state, key, training)`` for
      `imbalance_jax.train.make_train` ``(stateful=True)``; ``aux["model_state"]``
      is the updated state (batch statistics in training mode).

  Returns:
    ``objective(params, data) -> (objective, aux)`` (or the stateful form).

  Example:
    >>> from imbalance_jax import data, models
    >>> ds = data.heavy_tailed_labels(jax.random.key(0), m=3)
    >>> model = models.LinearSoftmax(ds.num_classes)
    >>> params = model.init(jax.random.key(1), ds.x[:1])
    >>> value, aux = classification_objective(model.apply)(params, ds)
    >>> aux["loss_N"].shape == (ds.num_examples,)
    True
  """
  if weighting not in losses.OBJECTIVES + ("ldam_drw",):  # validated eagerly
    raise ValueError(f"weighting must be one of {losses.OBJECTIVES}, got {weighting!r}")
  loss_params = dict(loss_params or {})
  unknown = set(loss_params) - set(losses.long_tail.DEFAULTS) - {"class_balanced_beta"}
  if unknown:
    raise ValueError(f"loss_params has unknown entries {sorted(unknown)}; known: "
                     f"{sorted(losses.long_tail.DEFAULTS) + ['class_balanced_beta']}")
  if (weighting == "ldam_drw") != (drw_step is not None):
    raise ValueError("drw_step must be given exactly when weighting='ldam_drw', got "
                     f"weighting={weighting!r}, drw_step={drw_step!r}")

  if not stateful:
    def objective(params, data: Dataset, step=0):
      return _cross_entropy_outputs(apply_fn(params, data.x), data, weighting, step, drw_step,
                                    loss_params)

    objective.takes_step = drw_step is not None
    return objective

  def stateful_objective(params, data: Dataset, model_state, key, training: bool, step=0):
    variables = {"params": params, **model_state}
    rngs = {"dropout": key} if (key is not None and training) else {}
    if training and model_state:
      logits, model_state = apply_fn(variables, data.x, train=True, mutable=list(model_state),
                                     rngs=rngs)
      model_state = dict(model_state)
    else:
      logits = apply_fn(variables, data.x, train=training, rngs=rngs)
    value, aux = _cross_entropy_outputs(logits, data, weighting, step, drw_step, loss_params)
    aux["model_state"] = model_state
    return value, aux

  stateful_objective.takes_step = drw_step is not None
  return stateful_objective
