"""How a training step sees the data: one pass, fixed-size chunks, or mini-batches.

`FullBatch` takes the exact full-batch gradient, optionally accumulated over
fixed-size chunks inside the compiled step (peak memory then grows with the
chunk, not with the data set). `MiniBatch` draws batches from a permutation per
epoch made from the member's key. Both are plain config values for
`imbalance_jax.train.make_train`; the helpers below do the slicing.

Data objects are pytrees with per-example leaves ``x`` and ``y`` (leading axis:
examples) and global leaves such as ``class_counts`` (e.g. `Dataset`); slicing
touches ``x`` and ``y`` only, so class weights stay those of the whole set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from imbalance_jax import _checks


@dataclasses.dataclass(frozen=True)
class FullBatch:
  """Exact full-batch steps.

  Attributes:
    chunk_size: ``None`` for one forward pass over all examples; otherwise the
      objective, gradient and per-example outputs are accumulated over chunks of
      ``chunk_size`` examples (the last one may be smaller) inside the step.
      Equal to the one-pass values up to float rounding for objectives that are
      means over examples (with BatchNorm, statistics are per chunk).

  Example:
    >>> FullBatch(chunk_size=4096)
    FullBatch(chunk_size=4096)
  """

  chunk_size: int | None = None

  def __post_init__(self):
    if self.chunk_size is not None:
      _checks.check_int("batching.chunk_size", self.chunk_size, minimum=1)


@dataclasses.dataclass(frozen=True)
class MiniBatch:
  """Mini-batch steps from a fresh permutation of the training set every epoch.

  An epoch is ``num_examples // batch_size`` steps (the remainder of the
  permutation is skipped, as with ``drop_last``). Epoch ``e``'s permutation is
  ``jax.random.permutation(fold_in(shuffle_key, e), num_examples)`` where
  ``shuffle_key`` derives from the member's key, so a run is reproducible.

  Attributes:
    batch_size: examples per optimizer step (paper H: 512 for PTB, 1024 for
      ImageNet; paper R: 64).
    accumulation_steps: the batch is split into this many equal micro-batches
      whose gradients are averaged (memory grows with
      ``batch_size / accumulation_steps``); must divide ``batch_size``.
    eval_chunk_size: chunk size of the full-set evaluations recorded every
      ``log_every`` steps (``None``: one pass).
    order: ``"shuffle"`` (a fresh permutation every epoch) or ``"strided"``:
      the same batches in the same order every epoch, step ``p`` of an epoch
      taking examples ``p, p + K, ..., p + (batch_size - 1) K`` with ``K =
      num_examples // batch_size`` -- for consecutive token windows, paper H's
      authors' PTB batches (the corpus cut into ``batch_size`` streams read
      ``seq_len`` tokens at a time, PyTorch's word-language-model batchify).

  Example:
    >>> MiniBatch(batch_size=512, accumulation_steps=4)
    MiniBatch(batch_size=512, accumulation_steps=4, eval_chunk_size=None, order='shuffle')
  """

  batch_size: int
  accumulation_steps: int = 1
  eval_chunk_size: int | None = None
  order: str = "shuffle"

  def __post_init__(self):
    _checks.check_int("batching.batch_size", self.batch_size, minimum=1)
    _checks.check_choice("batching.order", self.order, ("shuffle", "strided"))
    _checks.check_int("batching.accumulation_steps", self.accumulation_steps, minimum=1)
    if self.batch_size % self.accumulation_steps:
      raise ValueError(f"batching.accumulation_steps={self.accumulation_steps} must divide "
                       f"batching.batch_size={self.batch_size}")
    if self.eval_chunk_size is not None:
      _checks.check_int("batching.eval_chunk_size", self.eval_chunk_size, minimum=1)

  @property
  def micro_batch_size(self) -> int:
    return self.batch_size // self.accumulation_steps


def num_examples(data) -> int:
  """Number of examples of a data pytree (leading axis of ``data.y``)."""
  return data.y.shape[0]


def take(data, index):
  """The examples ``index`` (int array, any shape prefix) of ``data``."""
  return data.replace(x=data.x[index], y=data.y[index])


def part_key(key, index):
  """``fold_in(key, index)``: the key of chunk or micro-batch ``index`` (None without key)."""
  return None if key is None else jax.random.fold_in(key, index)


def minibatch_indices(batching: MiniBatch, step, key_data, n: int) -> jax.Array:
  """Step ``step``'s examples ``[accumulation_steps, micro_batch_size]`` out of ``n``.

  ``key_data``: the member's raw key (`jax.random.key_data`); unused for
  ``order="strided"``. The shuffle key is ``fold_in(key, 2**31 - 1)``, distinct
  from the step keys ``fold_in(key, step)`` (``step < 2**31 - 2``).

  Example:
    >>> minibatch_indices(MiniBatch(4, accumulation_steps=2, order="strided"), 1, None, 8)
    Array([[1, 3],
           [5, 7]], dtype=int32)
  """
  steps_per_epoch = n // batching.batch_size
  epoch, position = jnp.divmod(step, steps_per_epoch)
  if batching.order == "strided":  # the same batches every epoch, no shuffling
    index = position + steps_per_epoch * jnp.arange(batching.batch_size)
    return index.reshape(batching.accumulation_steps, batching.micro_batch_size)
  shuffle_key = jax.random.fold_in(jax.random.wrap_key_data(key_data), 2**31 - 1)
  order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n)
  index = jax.lax.dynamic_slice_in_dim(order, position * batching.batch_size,
                                       batching.batch_size)
  return index.reshape(batching.accumulation_steps, batching.micro_batch_size)


def scan_micro_batches(body: Callable, carry, data, index_AB: jax.Array, key):
  """``lax.scan`` of ``body(carry, micro_batch, micro_key) -> (carry, out)`` over the rows
  ``a`` of ``index_AB`` (`minibatch_indices`), ``micro_key = fold_in(key, a)``.

  Returns ``(carry, outs)``, ``outs`` stacked over the ``A`` micro-batches.
  """
  def micro(carry, inputs):
    index_B, a = inputs
    micro_key = part_key(key, a)
    return body(carry, take(data, index_B), micro_key)

  return jax.lax.scan(micro, carry, (index_AB, jnp.arange(index_AB.shape[0], dtype=jnp.int32)))


def slice_examples(data, start: int, size: int):
  """Examples ``[start, start + size)`` (static bounds)."""
  return data.replace(x=data.x[start:start + size], y=data.y[start:start + size])


def chunked(data, chunk_size: int):
  """Splits ``data`` into ``(main, remainder)`` chunks of ``chunk_size`` examples.

  ``main`` has leaves ``[q, chunk_size, ...]`` on ``x``/``y`` (q = n // chunk_size;
  None if q = 0); ``remainder`` holds the last ``n % chunk_size`` examples (None
  if there are none). Global leaves are left as they are.
  """
  n = num_examples(data)
  q, r = divmod(n, chunk_size)
  main = None
  if q:
    head = slice_examples(data, 0, q * chunk_size)
    main = head.replace(x=head.x.reshape((q, chunk_size) + head.x.shape[1:]),
                        y=head.y.reshape((q, chunk_size) + head.y.shape[1:]))
  remainder = slice_examples(data, q * chunk_size, r) if r else None
  return main, remainder


def _is_per_example(name: str) -> bool:
  return name.endswith("_N")


def accumulate(fn: Callable[[Any, jax.Array], tuple[Any, dict]], data, chunk_size: int | None):
  """Evaluates ``fn(batch, chunk_index) -> (sums, aux)`` over chunks and combines them.

  ``sums`` is a pytree averaged over chunks with weights ``chunk examples / n``
  (exact for quantities that are means over a chunk's examples: objective,
  gradient, mean loss). In ``aux`` (a dict), per-example entries (names ending in
  ``_N``, leading axis over the chunk's examples or tokens) are concatenated in
  example order, and other entries are dropped: they would not fit (e.g. logits
  ``[n, C]``). With ``chunk_size=None`` (or >= n) this is one call ``fn(data, 0)``
  returning its aux unchanged.

  Returns:
    ``(mean_sums, aux)``.
  """
  if chunk_size is None or chunk_size >= num_examples(data):
    return fn(data, jnp.zeros((), jnp.int32))
  n = num_examples(data)
  main, remainder = chunked(data, chunk_size)
  parts, means = [], None

  def keep(aux):
    return {k: v for k, v in aux.items() if _is_per_example(k)}

  if main is not None:
    q = main.y.shape[0]
    zero_index = jnp.zeros((), jnp.int32)
    chunk_sums = lambda x, y: fn(main.replace(x=x, y=y), zero_index)[0]  # noqa: E731
    shapes = jax.eval_shape(chunk_sums, main.x[0], main.y[0])
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def body(carry, inputs):
      x, y, index = inputs
      sums, aux = fn(main.replace(x=x, y=y), index)
      carry = jax.tree.map(lambda c, s: c + s * (chunk_size / n), carry, sums)
      return carry, keep(aux)

    means, stacked = jax.lax.scan(body, zeros, (main.x, main.y, jnp.arange(q, dtype=jnp.int32)))
    parts.append(jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), stacked))
  if remainder is not None:
    sums, aux = fn(remainder, jnp.asarray(n // chunk_size, jnp.int32))
    weighted = jax.tree.map(lambda s: s * (remainder.y.shape[0] / n), sums)
    means = weighted if means is None else jax.tree.map(jnp.add, means, weighted)
    parts.append(keep(aux))
  aux = {k: jnp.concatenate([p[k] for p in parts]) for k in parts[0]}
  return means, aux
