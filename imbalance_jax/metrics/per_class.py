"""Per-class and per-group loss, accuracy and true-class probability.

Everything is a segment sum over examples, so it runs inside the compiled
training step with no loop over classes.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.types import Dataset


def per_class_mean(values_N: jax.Array, labels_N: jax.Array, num_classes: int) -> jax.Array:
  """Mean of ``values_N`` over the examples of each class, ``[C]`` (NaN for empty classes).

  Example:
    >>> per_class_mean(jnp.array([1., 3., 5.]), jnp.array([0, 0, 1]), 3).tolist()
    [2.0, 5.0, nan]

  Labels outside ``[0, num_classes)`` are refused when they are concrete; under jit
  (where `imbalance_jax.data.make_dataset` has already checked a data set's labels)
  segment_sum would drop them.
  """
  num_classes = _checks.check_int("num_classes", num_classes, minimum=1)
  _checks.check_class_ids("labels_N", labels_N, num_classes)
  sums = jax.ops.segment_sum(values_N, labels_N, num_segments=num_classes)
  counts = jax.ops.segment_sum(jnp.ones_like(values_N), labels_N, num_segments=num_classes)
  return jnp.where(counts > 0, sums / jnp.maximum(counts, 1), jnp.nan)


def classification_metrics(class_to_group, *, per_class: bool = False
                           ) -> Callable[..., dict[str, jax.Array]]:
  """Builds a ``metrics_fn(params, grads, aux, data)`` for `imbalance_jax.train`.

  Uses the forward pass the training step already made (``aux['loss_N']``,
  ``aux['prediction_N']`` and ``aux['label_N']``, falling back to
  ``argmax(aux['logits'])`` and ``data.y``), so recording costs O(N) segment sums
  on top of the step and works on chunked passes that never hold all logits.

  Args:
    class_to_group: int ``[C]`` group of each class (see
      `imbalance_jax.data.frequency_groups`); a group's value is the mean over
      its examples, i.e. the count-weighted mean of its classes.
    per_class: also return ``class_loss``, ``class_accuracy``, ``class_prob``
      (``[C]`` each).

  Returns:
    ``metrics_fn`` giving ``loss``, ``accuracy`` (scalars) and ``group_loss``,
    ``group_accuracy``, ``group_prob`` (``[G]``; ``prob`` is the mean predicted
    probability of the true class).

  Example:
    >>> from imbalance_jax import data
    >>> ds = data.heavy_tailed_labels(jax.random.key(0), m=3)
    >>> metrics_fn = classification_metrics(data.frequency_groups(ds.class_counts), per_class=True)
    >>> aux = {"loss_N": jnp.full(ds.num_examples, 2.0), "prediction_N": ds.y}
    >>> out = metrics_fn(None, None, aux, ds)
    >>> float(out["accuracy"]), out["group_loss"].shape, out["class_prob"].shape
    (1.0, (6,), (7,))
  """
  class_to_group = np.asarray(class_to_group)
  if (class_to_group.ndim != 1 or class_to_group.size == 0
      or not np.issubdtype(class_to_group.dtype, np.integer) or class_to_group.min() < 0):
    raise ValueError("class_to_group must be a non-empty 1-d array of non-negative group "
                     f"indices, got {class_to_group!r}")
  class_to_group = class_to_group.astype(np.int32)
  num_groups = int(class_to_group.max()) + 1
  class_to_group = jnp.asarray(class_to_group)

  def metrics_fn(params, grads, aux, data: Dataset) -> dict[str, jax.Array]:
    del params, grads
    if data.num_classes != class_to_group.shape[0]:
      raise ValueError(f"class_to_group has {class_to_group.shape[0]} entries but the data "
                       f"have num_classes={data.num_classes}")
    loss_N = aux["loss_N"]
    label_N = aux.get("label_N", data.y)
    prediction_N = (aux["prediction_N"] if "prediction_N" in aux
                    else jnp.argmax(aux["logits"], axis=-1))
    correct_N = (prediction_N == label_N).astype(loss_N.dtype)
    prob_N = jnp.exp(-loss_N)
    group_N = class_to_group[label_N]
    values = {"loss": loss_N, "accuracy": correct_N, "prob": prob_N}
    out = {"loss": jnp.mean(loss_N), "accuracy": jnp.mean(correct_N)}
    for name, v in values.items():
      out[f"group_{name}"] = per_class_mean(v, group_N, num_groups)
      if per_class:
        out[f"class_{name}"] = per_class_mean(v, label_N, data.num_classes)
    return out

  return metrics_fn
