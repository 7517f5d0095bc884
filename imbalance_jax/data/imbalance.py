"""Class-frequency structure: frequency groups for display, imbalanced subsets.

The subsets are pure functions of a PRNG key and a labelled `Dataset`: they
draw per-class sizes without replacement (a random priority per example,
ranked within its class; no loop over classes) and keep the examples in their
original order. Sizes depend on the data, so they run on the host (NumPy,
seeded from the key by `host_rng`), not under ``jit``.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.types import Dataset


def frequency_groups(class_counts, num_groups: int = 10) -> np.ndarray:
  """Maps each class to a frequency group holding ≈ 1/num_groups of the data.

  Classes are sorted by count (descending, ties by class id) and laid out on
  [0, 1] by their cumulative share of the examples; a class joins the group
  whose slice of [0, 1] holds the midpoint of the class's own interval. Group
  ids are then renumbered consecutively, so no group is empty even when one
  class holds more than 1/num_groups of the data (there may then be fewer than
  ``num_groups`` groups). Group 0 holds the most frequent classes. Groups are
  for display only; training never sees them.

  Args:
    class_counts: non-negative counts ``[C]`` with a positive total.
    num_groups: requested number of groups, ``>= 1``.

  Returns:
    int32 array ``[C]`` of group ids in ``[0, G)``, ``G <= num_groups``.

  Example:
    >>> frequency_groups([8, 4, 4, 2, 2, 2, 2], num_groups=3).tolist()
    [0, 1, 1, 2, 2, 2, 2]
  """
  num_groups = _checks.check_int("num_groups", num_groups, minimum=1)
  counts = np.asarray(class_counts)
  if counts.ndim != 1 or counts.size == 0:
    raise ValueError(f"class_counts must have shape [C] with C >= 1, got {counts.shape}")
  if not np.all(np.isfinite(counts)) or np.any(counts < 0) or counts.sum() <= 0:
    raise ValueError(f"class_counts must be finite and non-negative with a positive total, got "
                     f"{counts!r}")
  order = np.argsort(-counts, kind="stable")
  share = counts[order] / counts.sum()
  midpoints = np.cumsum(share) - share / 2
  raw = np.minimum((midpoints * num_groups).astype(np.int64), num_groups - 1)
  _, consecutive = np.unique(raw, return_inverse=True)
  groups = np.empty_like(consecutive)
  groups[order] = consecutive
  return groups.astype(np.int32)


def host_rng(key: jax.Array) -> np.random.Generator:
  """A NumPy generator seeded by the bits of a JAX PRNG key (typed or raw uint32).

  Host-side data construction (subsets, copies, splits) draws from it: the
  result stays a pure function of ``key`` without compiling an XLA program
  for every new array size.

  Example:
    >>> int(host_rng(jax.random.key(0)).integers(10**6)) == int(
    ...     host_rng(jax.random.key(0)).integers(10**6))
    True
  """
  if jax.dtypes.issubdtype(jnp.result_type(key), jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  return np.random.default_rng(np.asarray(key, np.uint32).ravel().tolist())


def take(dataset: Dataset, indices) -> Dataset:
  """Examples ``indices`` of ``dataset`` (class counts recomputed, classes kept).

  Example:
    >>> from imbalance_jax.types import make_dataset
    >>> ds = take(make_dataset(np.zeros((3, 1)), np.array([0, 1, 1]), 2), [1, 2])
    >>> ds.class_counts.tolist()
    [0, 2]
  """
  indices = np.asarray(indices, np.int64)
  n = len(dataset.y)
  if indices.size and (indices.min() < -n or indices.max() >= n):
    raise ValueError(f"indices must lie in [-{n}, {n}) (the data set's examples), got values in "
                     f"[{indices.min()}, {indices.max()}]")
  y = np.asarray(dataset.y)[indices]
  counts = np.bincount(y, minlength=dataset.num_classes).astype(np.int32)
  return Dataset(x=jnp.asarray(np.asarray(dataset.x)[indices]), y=jnp.asarray(y),
                 class_counts=jnp.asarray(counts), num_classes=dataset.num_classes)


def _labels(labels, num_classes: int) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be integers of shape [N], got {labels.dtype} {labels.shape}")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, num_classes={num_classes})")
  return labels


def per_class_indices(key: jax.Array, labels, counts_per_class, num_classes: int) -> np.ndarray:
  """Indices of ``counts_per_class[k]`` examples of each class k, drawn without replacement.

  Args:
    key: PRNG key of the draw.
    labels: integer labels ``[N]`` in ``[0, num_classes)``.
    counts_per_class: non-negative ints ``[num_classes]``, each at most the
      class's size.
    num_classes: number of classes.

  Returns:
    Sorted int64 indices into ``labels`` (the original order is kept).

  Example:
    >>> per_class_indices(jax.random.key(0), [0, 0, 1, 1, 1], [2, 0], 2).tolist()
    [0, 1]
  """
  num_classes = _checks.check_int("num_classes", num_classes, minimum=1)
  labels = _labels(labels, num_classes)
  wanted = np.asarray(counts_per_class)
  if wanted.shape != (num_classes,) or not np.issubdtype(wanted.dtype, np.integer) or np.any(
      wanted < 0):
    raise ValueError(f"counts_per_class must be non-negative ints [{num_classes}], got {wanted}")
  available = np.bincount(labels, minlength=num_classes)
  short = np.flatnonzero(wanted > available)
  if short.size:
    k = short[0]
    raise ValueError(f"counts_per_class asks for {wanted[k]} examples of class {k}, which has "
                     f"only {available[k]} ({short.size} classes are short)")
  priority = host_rng(key).random(labels.size)
  order = np.lexsort((priority, labels))                         # by class, then at random
  sorted_labels = labels[order]
  rank = np.arange(labels.size) - np.searchsorted(sorted_labels, sorted_labels, side="left")
  return np.sort(order[rank < wanted[sorted_labels]])


def subsample_per_class(key: jax.Array, dataset: Dataset, counts_per_class) -> Dataset:
  """Keeps ``counts_per_class[k]`` random examples of each class k (without replacement)."""
  return take(dataset, per_class_indices(key, dataset.y, counts_per_class, dataset.num_classes))


def heavy_tail_counts(class_counts, max_per_class: int | None = None) -> np.ndarray:
  """Per-class sizes ``ceil(n_1 / k)`` for the k-th most frequent class (pi_k ∝ 1/k).

  Classes are ranked by count (descending, ties by class id); ``n_1`` is
  ``max_per_class`` or the largest count. A class never keeps more than it
  has. ImageNet's 1000 classes with ``n_1 = 1300``: 10,217 examples.
  ``max_per_class`` above the largest count is a ValueError (the profile would
  be clamped to the data's own, e.g. exactly balanced on a balanced set).

  Example:
    >>> heavy_tail_counts([5, 8, 8, 2]).tolist()
    [3, 8, 4, 2]
  """
  counts = np.asarray(class_counts)
  if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0):
    raise ValueError(f"class_counts must be non-negative [C] with C >= 1, got {counts}")
  n_1 = int(counts.max()) if max_per_class is None else _checks.check_int(
      "max_per_class", max_per_class, minimum=1)
  if n_1 > counts.max():  # every class would be clamped towards its own size: not 1/k
    raise ValueError(f"max_per_class={n_1} exceeds the largest class ({int(counts.max())} "
                     "examples): the subset would keep what each class has instead of 1/k "
                     f"(lower max_per_class to at most {int(counts.max())})")
  order = np.argsort(-counts, kind="stable")
  rank = np.empty_like(order)
  rank[order] = np.arange(1, counts.size + 1)
  return np.minimum(counts, -(-n_1 // rank)).astype(np.int64)


def heavy_tail_subsample(key: jax.Array, dataset: Dataset, *,
                         max_per_class: int | None = None) -> Dataset:
  """Heavy-tailed subset: ``ceil(n_1/k)`` examples of the k-th most frequent class.

  Labels and ``num_classes`` are kept (class ids are not re-ranked).

  Args:
    key: PRNG key choosing the examples.
    dataset: any labelled `Dataset`.
    max_per_class: ``n_1`` (default: the largest class count; 1300 for
      ImageNet).

  Example:
    >>> from imbalance_jax.types import make_dataset
    >>> ds = make_dataset(np.zeros((40, 1)), np.repeat(np.arange(4), 10), 4)
    >>> heavy_tail_subsample(jax.random.key(0), ds).class_counts.tolist()
    [10, 5, 4, 3]
  """
  counts = heavy_tail_counts(np.asarray(dataset.class_counts), max_per_class)
  return subsample_per_class(key, dataset, counts)


def exponential_counts(num_classes: int, max_per_class: int, ratio: float) -> np.ndarray:
  """The long-tail literature's exponential profile ``n_k = int(n_max * (1/rho)^(k/(C-1)))``.

  Class ``k`` (by id) keeps ``n_k``; ``n_0 = n_max`` and ``n_{C-1} = n_max / rho``
  (imbalance ratio ``rho >= 1``). The float expression and the truncation are
  those of Cao et al.'s LDAM-DRW code (NeurIPS 2019, arXiv:1906.07413;
  ``IMBALANCECIFAR10.get_img_num_per_cls`` with ``imb_type='exp'``,
  ``imb_factor = 1/rho``), which made CIFAR-10-LT / CIFAR-100-LT; one class
  keeps ``n_max``.

  Example:
    >>> exponential_counts(10, 5000, 100).tolist()
    [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
  """
  num_classes = _checks.check_int("num_classes", num_classes, minimum=1)
  max_per_class = _checks.check_int("max_per_class", max_per_class, minimum=1)
  _checks.check_positive("ratio", ratio)
  if isinstance(ratio, bool) or float(ratio) < 1:
    raise ValueError(f"ratio must be >= 1 (largest over smallest class), got {ratio}")
  if num_classes == 1:
    return np.array([max_per_class], np.int64)
  factor = 1.0 / float(ratio)
  # Host-side, in Python floats: the reference's own arithmetic (C pow on doubles).
  counts = [int(max_per_class * (factor ** (k / (num_classes - 1.0))))
            for k in range(num_classes)]
  if min(counts) < 1:
    raise ValueError(f"max_per_class / ratio = {max_per_class / float(ratio):.3g} leaves the "
                     "last class no examples; lower ratio or raise max_per_class")
  return np.asarray(counts, np.int64)


def exponential_subsample(key: jax.Array, dataset: Dataset, *, ratio: float,
                          max_per_class: int | None = None) -> Dataset:
  """Exponentially imbalanced subset (CIFAR-10-LT style): `exponential_counts` per class id.

  Args:
    key: PRNG key choosing the examples.
    dataset: any labelled `Dataset` (labels and ``num_classes`` kept).
    ratio: imbalance ratio ``rho = n_max / n_min >= 1`` (CIFAR-10-LT: 10, 50, 100).
    max_per_class: ``n_max`` (default: the smallest class count, i.e. ``N / C`` on a
      balanced set, as the reference code's ``len(data) / C``).

  Raises:
    ValueError: if a class has fewer examples than its profile asks for.

  Example:
    >>> from imbalance_jax.types import make_dataset
    >>> ds = make_dataset(np.zeros((40, 1)), np.repeat(np.arange(4), 10), 4)
    >>> exponential_subsample(jax.random.key(0), ds, ratio=10).class_counts.tolist()
    [10, 4, 2, 1]
  """
  available = np.asarray(dataset.class_counts)
  n_max = int(available.min()) if max_per_class is None else max_per_class
  wanted = exponential_counts(dataset.num_classes, n_max, ratio)
  short = np.flatnonzero(wanted > available)
  if short.size:
    k = int(short[0])
    raise ValueError(f"max_per_class={n_max} with ratio={ratio} asks class {k} for "
                     f"{int(wanted[k])} examples but it has {int(available[k])}")
  return subsample_per_class(key, dataset, wanted)


def uniform_subsample(key: jax.Array, dataset: Dataset, per_class: int) -> Dataset:
  """Balanced subset: ``per_class`` random examples of every class (small ImageNet: 10).

  Raises:
    ValueError: if a class has fewer than ``per_class`` examples.

  Example:
    >>> from imbalance_jax.types import make_dataset
    >>> ds = make_dataset(np.zeros((40, 1)), np.repeat(np.arange(4), 10), 4)
    >>> uniform_subsample(jax.random.key(0), ds, 3).class_counts.tolist()
    [3, 3, 3, 3]
  """
  per_class = _checks.check_int("per_class", per_class, minimum=1)
  available = np.asarray(dataset.class_counts)
  if per_class > available.min():
    raise ValueError(f"per_class={per_class} exceeds the size of class "
                     f"{int(available.argmin())} ({int(available.min())} examples)")
  return subsample_per_class(key, dataset, np.full(dataset.num_classes, per_class))


def step_imbalance(key: jax.Array, dataset: Dataset, *, classes=(0, 1, 2, 3),
                   num_majority: int = 2, majority_count: int = 100,
                   ratio: float = 10.0) -> Dataset:
  """STEP-imbalanced subset (paper R): majority classes of ``n_maj``, minority of ``n_maj / R``.

  The chosen ``classes`` are relabelled ``0 .. len(classes)-1`` in the given
  order; the first ``num_majority`` are the majority classes. Paper R's
  study: 4 digits, 2 x 100 + 2 x 10 images (``R = 10``).

  Args:
    key: PRNG key choosing the examples.
    dataset: any labelled `Dataset`.
    classes: distinct class ids to keep.
    num_majority: how many of ``classes`` are majority, in ``[1, len(classes)]``.
    majority_count: ``n_maj >= 1``.
    ratio: ``R >= 1``; minority classes keep ``round(n_maj / R) >= 1``.

  Example:
    >>> from imbalance_jax.types import make_dataset
    >>> ds = make_dataset(np.zeros((400, 1)), np.repeat(np.arange(4), 100), 4)
    >>> step_imbalance(jax.random.key(0), ds, majority_count=50).class_counts.tolist()
    [50, 50, 5, 5]
  """
  classes = np.asarray(classes)
  if (classes.ndim != 1 or classes.size == 0 or not np.issubdtype(classes.dtype, np.integer)
      or np.unique(classes).size != classes.size or classes.min() < 0
      or classes.max() >= dataset.num_classes):
    raise ValueError(f"classes must be distinct class ids in [0, {dataset.num_classes}), got "
                     f"{classes.tolist()}")
  num_majority = _checks.check_int("num_majority", num_majority, minimum=1)
  if num_majority > classes.size:
    raise ValueError(f"num_majority must be <= len(classes)={classes.size}, got {num_majority}")
  majority_count = _checks.check_int("majority_count", majority_count, minimum=1)
  _checks.check_positive("ratio", ratio)
  if isinstance(ratio, bool) or float(ratio) < 1:
    raise ValueError(f"ratio must be >= 1 (majority over minority size), got {ratio}")
  minority_count = int(round(majority_count / float(ratio)))
  if minority_count < 1:
    raise ValueError(f"majority_count / ratio = {majority_count / float(ratio):.3g} leaves no "
                     "minority examples; lower ratio or raise majority_count")
  wanted = np.zeros(dataset.num_classes, np.int64)
  wanted[classes] = np.where(np.arange(classes.size) < num_majority, majority_count,
                             minority_count)
  subset = subsample_per_class(key, dataset, wanted)
  relabel = np.full(dataset.num_classes, -1, np.int64)
  relabel[classes] = np.arange(classes.size)
  y = relabel[np.asarray(subset.y)].astype(np.int32)
  counts = np.bincount(y, minlength=classes.size).astype(np.int32)
  return Dataset(x=subset.x, y=jnp.asarray(y), class_counts=jnp.asarray(counts),
                 num_classes=int(classes.size))
