"""Held-out metrics of the long-tail literature, by training-frequency group.

Groups are fixed by the *training* class counts (a class is many-shot with
more than 100 training examples, medium-shot with 20-100, few-shot with fewer
than 20: Liu et al., "Large-scale long-tailed recognition in an open world",
CVPR 2019, arXiv:1904.05160), so every split (train, validation, test) is
scored on the same groups. Everything is a segment sum over examples and runs
inside the compiled training scan (`imbalance_jax.train.make_train` applies a
``metrics_fn`` to every split of ``data``, prefixing held-out entries with the
split's name).

Calibration: the expected calibration error of Guo et al., "On calibration of
modern neural networks", ICML 2017 (arXiv:1706.04599), with equal-width
confidence bins, computed within each group.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax.losses.long_tail import post_hoc_adjusted_logits
from imbalance_jax.metrics.per_class import per_class_mean
from imbalance_jax.types import Dataset

SHOTS = ("many", "medium", "few")
"""Order of the ``shot_*`` entries: > 100, 20-100, < 20 training examples."""


def shot_groups(train_class_counts) -> np.ndarray:
  """int32 ``[C]``: 0 many-shot (> 100 training examples), 1 medium (20-100), 2 few (< 20).

  Example:
    >>> shot_groups([500, 101, 100, 20, 19, 0]).tolist()
    [0, 0, 1, 1, 2, 2]
  """
  counts = np.asarray(train_class_counts)
  if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0):
    raise ValueError(f"train_class_counts must be non-negative [C], got {counts}")
  return np.where(counts > 100, 0, np.where(counts >= 20, 1, 2)).astype(np.int32)


def _ece(confidence_N, correct_N, group_N, num_groups: int, num_bins: int) -> jax.Array:
  """Per-group ECE ``sum_b (n_gb / n_g) |acc_gb - conf_gb|`` ``[G]`` (NaN for empty groups)."""
  bin_N = jnp.clip(jnp.ceil(confidence_N * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
  cell_N = group_N * num_bins + bin_N
  cells = num_groups * num_bins
  ones = jnp.ones_like(confidence_N)
  gap = jnp.abs(jax.ops.segment_sum(correct_N - confidence_N, cell_N, num_segments=cells))
  n_g = jax.ops.segment_sum(ones, group_N, num_segments=num_groups)
  per_group = gap.reshape(num_groups, num_bins).sum(-1)
  return jnp.where(n_g > 0, per_group / jnp.maximum(n_g, 1), jnp.nan)


def long_tail_metrics(train_class_counts, class_to_group=None, *, num_bins: int = 15,
                      post_hoc_tau: float | None = None) -> Callable[..., dict[str, jax.Array]]:
  """Builds a ``metrics_fn(params, grads, aux, data)``: balanced, shot, group, worst-group
  accuracy and per-group calibration error of a split.

  Uses ``aux['prediction_N']``, ``aux['label_N']`` and ``aux['confidence_N']``
  (max softmax probability) of `imbalance_jax.train.classification_objective`.

  Args:
    train_class_counts: training counts ``[C]`` (fix the shot groups).
    class_to_group: optional int ``[C]`` frequency groups (e.g.
      `imbalance_jax.data.frequency_groups` of the training counts).
    num_bins: confidence bins of the ECE.
    post_hoc_tau: if given, also the metrics of post hoc logit adjustment (Menon et
      al., ICLR 2021, Eq. 9: predict ``argmax_k logits_k - tau log pi_k``, ``pi`` the
      training prior): ``posthoc_balanced_accuracy``, ``posthoc_shot_accuracy`` and,
      with ``class_to_group``, ``posthoc_group_accuracy`` and
      ``posthoc_worst_group_accuracy``. Needs ``aux['logits']`` (full-batch
      evaluation: chunked evaluation drops the logits).

  Returns:
    ``metrics_fn`` giving ``balanced_accuracy`` (mean per-class recall over the
    classes present in the split, as ``sklearn.metrics.balanced_accuracy_score``),
    ``worst_class_accuracy``, ``shot_accuracy`` and ``shot_ece`` ``[3]`` (`SHOTS`
    order; NaN for a shot group with no examples in the split), ``ece`` and,
    with ``class_to_group``, ``group_accuracy``, ``group_ece`` ``[G]`` and
    ``worst_group_accuracy`` (the lowest over groups present in the split).

  Example:
    >>> fn = long_tail_metrics(jnp.array([200, 50, 5]))
    >>> aux = {"prediction_N": jnp.array([0, 0, 1, 0]), "label_N": jnp.array([0, 0, 1, 2]),
    ...        "confidence_N": jnp.array([0.9, 0.8, 0.6, 0.7])}
    >>> out = fn(None, None, aux, None)
    >>> float(out["balanced_accuracy"]), out["shot_accuracy"].tolist()
    (0.6666666865348816, [1.0, 1.0, 0.0])
  """
  counts = np.asarray(train_class_counts)
  shots = jnp.asarray(shot_groups(counts))
  num_classes = counts.size
  groups = None
  if class_to_group is not None:
    groups = np.asarray(class_to_group)
    if (groups.shape != (num_classes,) or not np.issubdtype(groups.dtype, np.integer)
        or groups.min() < 0):
      raise ValueError(f"class_to_group must be non-negative group ids [C={num_classes}], "
                       f"got {groups!r}")
    num_groups = int(groups.max()) + 1
    groups = jnp.asarray(groups.astype(np.int32))
  num_bins = int(num_bins)
  if num_bins < 1:
    raise ValueError(f"num_bins must be >= 1, got {num_bins}")

  def metrics_fn(params, grads, aux, data: Dataset | None) -> dict[str, jax.Array]:
    del params, grads
    if data is not None and data.num_classes != num_classes:
      raise ValueError(f"train_class_counts has {num_classes} entries but the data have "
                       f"num_classes={data.num_classes}")
    label_N = aux["label_N"] if "label_N" in aux else data.y.reshape(-1)
    confidence_N = aux["confidence_N"]
    correct_N = (aux["prediction_N"] == label_N).astype(confidence_N.dtype)
    recall_C = per_class_mean(correct_N, label_N, num_classes)
    out = {"balanced_accuracy": jnp.nanmean(recall_C),
           "worst_class_accuracy": jnp.nanmin(recall_C),
           "shot_accuracy": per_class_mean(correct_N, shots[label_N], len(SHOTS)),
           "shot_ece": _ece(confidence_N, correct_N, shots[label_N], len(SHOTS), num_bins),
           "ece": _ece(confidence_N, correct_N, jnp.zeros_like(label_N), 1, num_bins)[0]}
    if groups is not None:
      group_accuracy = per_class_mean(correct_N, groups[label_N], num_groups)
      out["group_accuracy"] = group_accuracy
      out["worst_group_accuracy"] = jnp.nanmin(group_accuracy)
      out["group_ece"] = _ece(confidence_N, correct_N, groups[label_N], num_groups, num_bins)
    if post_hoc_tau is not None:
      if "logits" not in aux:
        raise ValueError("post_hoc_tau needs aux['logits'], which chunked evaluation drops: "
                         "evaluate the split in one chunk (eval_chunk_size=None)")
      adjusted = post_hoc_adjusted_logits(aux["logits"].reshape(-1, num_classes), counts,
                                          post_hoc_tau)
      hit_N = (jnp.argmax(adjusted, -1) == label_N).astype(confidence_N.dtype)
      out["posthoc_balanced_accuracy"] = jnp.nanmean(per_class_mean(hit_N, label_N, num_classes))
      out["posthoc_shot_accuracy"] = per_class_mean(hit_N, shots[label_N], len(SHOTS))
      if groups is not None:
        out["posthoc_group_accuracy"] = per_class_mean(hit_N, groups[label_N], num_groups)
        out["posthoc_worst_group_accuracy"] = jnp.nanmin(out["posthoc_group_accuracy"])
    return out

  return metrics_fn
