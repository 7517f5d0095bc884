"""``metrics_fn`` builders that record block curvature during training.

Each builder returns ``metrics_fn(params, grads, aux, data) -> dict`` for
`imbalance_jax.train.make_train`: it runs inside the scanned step every
``log_every`` steps and reuses the step's forward pass (``aux['logits']``) and
gradient. Recorded per class ``k`` (block ``k`` of the last layer):

* ``grad_norm_C``: ``||grad_{w_k}||`` (with ``b_k`` when ``include_bias``),
* ``trace_C``: ``Tr(H_kk)``, exact (linear model) or Hutchinson (any model,
  with ``trace_stderr_C``),
* ``class_prob_C`` / ``group_prob_G``: mean predicted probability of the true
  class per class / frequency group (paper H Fig 23c), and ``loss``;

and, with ``negated=True``, the same quantities at ``-params`` under the
prefix ``neg_`` (the path ``-W_t`` of paper H Fig 27).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import losses
from imbalance_jax.curvature.hutchinson import dense_block_ids, hutchinson_block_traces
from imbalance_jax.curvature.hvp import restrict_to_layer
from imbalance_jax.curvature.linear_exact import (linear_block_trace_matrix, linear_block_traces,
                                                  linear_hessian_entries)
from imbalance_jax.metrics.blocks import block_grad_norms
from imbalance_jax.metrics.per_class import per_class_mean


def _groups(class_to_group):
  class_to_group = np.asarray(class_to_group, np.int32)
  if class_to_group.ndim != 1 or class_to_group.size == 0 or class_to_group.min() < 0:
    raise ValueError("class_to_group must be a non-negative int array [C], got "
                     f"shape {class_to_group.shape}")
  return jnp.asarray(class_to_group), int(class_to_group.max()) + 1


def _probabilities(logits_NC, data, class_to_group, num_groups):
  prob_N = jnp.exp(jnp.take_along_axis(jax.nn.log_softmax(logits_NC), data.y[:, None], 1)[:, 0])
  return {"class_prob_C": per_class_mean(prob_N, data.y, data.num_classes),
          "group_prob_G": per_class_mean(prob_N, class_to_group[data.y], num_groups)}


def _weights_N(data, weighting):
  if weighting == "none":
    return None
  return losses.class_weights(data.class_counts, weighting)[data.y]


def _linear_block_gradients(logits_NC, x_ND, data, weights_N, bias):
  """Closed-form gradient of the (weighted) mean cross-entropy w.r.t. the Dense head."""
  residual = jax.nn.softmax(logits_NC) - jax.nn.one_hot(data.y, data.num_classes,
                                                        dtype=logits_NC.dtype)
  scale = (jnp.ones_like(residual[:, 0]) if weights_N is None else weights_N) / x_ND.shape[0]
  residual = residual * scale[:, None]
  squares = jnp.sum((x_ND.T @ residual) ** 2, axis=0)
  if bias:
    squares = squares + jnp.sum(residual, axis=0) ** 2
  return jnp.sqrt(squares)


def linear_curvature_metrics(class_to_group, *, include_bias: bool = True,
                             weighting: str = "none", negated: bool = False,
                             layer: str = "head", maps: dict | None = None
                             ) -> Callable[..., dict[str, jax.Array]]:
  """Exact block diagnostics of the softmax linear model (`LinearSoftmax`).

  Traces use `linear_block_traces` on ``aux['logits']`` and ``data.x``
  (flattened to ``[N, D]``), ``O(N (C + D))`` per record. For the path ``-W_t``
  no extra forward pass is needed: the logits of ``-params`` are
  ``-logits``; its gradient norms cost one ``[D, N] x [N, C]`` product.

  Args:
    class_to_group: int ``[C]`` frequency group of each class.
    include_bias: block ``k`` holds ``(w_k, b_k)``; set False for a model
      without bias (or to study ``w_k`` alone: traces then drop the ``+1``).
    weighting: the class weighting of the training objective (``"none"``,
      ``"inverse"``, ``"inverse_sqrt"``), so traces are those of the
      objective whose gradient the step uses.
    negated: also record ``neg_*`` diagnostics at ``-params``.
    layer: name of the Dense layer.
    maps: optional ``{name: (classes [S], dims [J] or None)}``: also records
      the block-trace matrix ``trace_matrix_<name>`` ``[S, S]`` (`linear_block_trace_matrix`)
      and, if ``dims`` is given, the Hessian entries ``entries_<name>``
      ``[S*J, S*J]`` (`linear_hessian_entries`) at every record (Figs 8, 28),
      ``O(N (S J)^2)`` each.

  Example:
    >>> from imbalance_jax import data, models, optim, train
    >>> ds = data.heavy_tailed_labels(jax.random.key(0), m=3)  # 7 classes
    >>> model = models.LinearSoftmax(ds.num_classes)
    >>> metrics_fn = linear_curvature_metrics(data.frequency_groups(ds.class_counts, 3),
    ...                                       negated=True)
    >>> run = train.make_train(train.classification_objective(model.apply),
    ...                        optim.injectable("gd", 0.0), num_steps=4, log_every=2,
    ...                        metrics_fn=metrics_fn)
    >>> history = jax.jit(run)(model.init(jax.random.key(1), ds.x), ds, 0.1).history
    >>> history["trace_C"].shape, history["neg_grad_norm_C"].shape, history["group_prob_G"].shape
    ((3, 7), (3, 7), (3, 3))
  """
  class_to_group, num_groups = _groups(class_to_group)
  losses.class_weights(jnp.ones(1), weighting)  # validates `weighting`

  def metrics_fn(params, grads, aux, data) -> dict[str, jax.Array]:
    del params
    logits = aux["logits"]
    x = data.x.reshape(data.x.shape[0], -1)
    weights_N = _weights_N(data, weighting)
    out = {"loss": aux["loss"],
           "grad_norm_C": block_grad_norms(grads, layer=layer, include_bias=include_bias),
           "trace_C": linear_block_traces(logits, x, bias=include_bias, weights_N=weights_N),
           **_probabilities(logits, data, class_to_group, num_groups)}
    if negated:
      neg = -logits
      neg_probs = _probabilities(neg, data, class_to_group, num_groups)
      out.update({
          "neg_loss": jnp.mean(losses.cross_entropy(neg, data.y)),
          "neg_grad_norm_C": _linear_block_gradients(neg, x, data, weights_N, include_bias),
          "neg_trace_C": linear_block_traces(neg, x, bias=include_bias, weights_N=weights_N),
          **{f"neg_{k}": v for k, v in neg_probs.items()}})
    for name, (classes, dims) in (maps or {}).items():
      out[f"trace_matrix_{name}"] = linear_block_trace_matrix(logits, x, classes,
                                                              bias=include_bias,
                                                              weights_N=weights_N)
      if dims is not None:
        out[f"entries_{name}"] = linear_hessian_entries(logits, x, classes, dims,
                                                        weights_N=weights_N)
    return out

  return metrics_fn


def hutchinson_curvature_metrics(objective_fn: Callable[[Any, Any], tuple[jax.Array, Any]],
                                 class_to_group, *, key: jax.Array, num_probes: int,
                                 include_bias: bool = True, negated: bool = False,
                                 layer: str = "head", probe_batch_size: int | None = None,
                                 features_fn: Callable[[Any, Any], jax.Array] | None = None
                                 ) -> Callable[..., dict[str, jax.Array]]:
  """Block diagnostics of any model's Dense ``layer`` with Hutchinson traces.

  The Hessian-vector products differentiate only ``layer`` (the rest of the
  network is held fixed, see `restrict_to_layer`). Every record uses the same
  probes (``key`` is fixed): common random numbers, so changes along the
  trajectory are not masked by probe noise.

  Args:
    objective_fn: the training objective ``(params, data) -> (value, aux)``.
    class_to_group: int ``[C]`` frequency group of each class.
    key: PRNG key of the probes.
    num_probes: Hutchinson probes per record.
    include_bias: block ``k`` holds ``(w_k, b_k)``.
    negated: also record ``neg_*`` diagnostics at ``-params`` (one more
      forward/backward pass and Hutchinson estimate per record).
    layer: name of the Dense layer (``head`` in every library classifier).
    probe_batch_size: see `hutchinson_block_traces`.
    features_fn: optional ``(params, x) -> [N, D]`` inputs of ``layer``; if
      given, also records the exact traces ``exact_trace_C`` (the last-layer
      Hessian of a Dense head is that of a linear model on its features);
      these are for the unweighted mean loss, so compare them with
      ``trace_C`` only when ``objective_fn`` is unweighted.

  Returns:
    ``metrics_fn`` recording ``grad_norm_C``, ``trace_C``, ``trace_stderr_C``,
    ``class_prob_C``, ``group_prob_G``, ``loss`` (and ``neg_*``,
    ``exact_trace_C``).
  """
  class_to_group, num_groups = _groups(class_to_group)

  def diagnostics(params, grads, logits, data, loss):
    head_loss, head = restrict_to_layer(lambda p: objective_fn(p, data)[0], params, layer)
    est = hutchinson_block_traces(head_loss, head, dense_block_ids(head, include_bias=include_bias),
                                  num_blocks=data.num_classes, key=key, num_probes=num_probes,
                                  probe_batch_size=probe_batch_size)
    out = {"loss": loss,
           "grad_norm_C": block_grad_norms(grads, layer=layer, include_bias=include_bias),
           "trace_C": est.traces, "trace_stderr_C": est.stderr,
           **_probabilities(logits, data, class_to_group, num_groups)}
    if features_fn is not None:
      out["exact_trace_C"] = linear_block_traces(logits, features_fn(params, data.x),
                                                 bias=include_bias)
    return out

  def metrics_fn(params, grads, aux, data) -> dict[str, jax.Array]:
    if "logits" not in aux:  # a chunked full batch keeps only per-example entries
      aux = objective_fn(params, data)[1]
    out = diagnostics(params, grads, aux["logits"], data, aux["loss"])
    if negated:
      neg_params = jax.tree.map(jnp.negative, params)
      (_, neg_aux), neg_grads = jax.value_and_grad(objective_fn, has_aux=True)(neg_params, data)
      neg = diagnostics(neg_params, neg_grads, neg_aux["logits"], data, neg_aux["loss"])
      out.update({f"neg_{k}": v for k, v in neg.items()})
    return out

  return metrics_fn
