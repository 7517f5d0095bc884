"""Next-token windows: a token stream cut into inputs ``x [n, T]`` and targets ``y [n, T]``.

For next-token prediction the class of a position is the *next* token;
`next_token_windows` cuts a token stream into non-overlapping windows
``x [n, T]`` with targets ``y [n, T]`` shifted by one (a `TokenWindows` pytree),
and `language_model_data` does so for every split of a corpus. Frequency groups
come from `imbalance_jax.data.frequency_groups` applied to
``TokenWindows.class_counts``.

Example:
  >>> from imbalance_jax.data import load_corpus, train_tokenizer
  >>> corpus = load_corpus("ptb")                       # embedded PTB
  >>> tokenizer = train_tokenizer("word", corpus["train"])
  >>> tokenizer.vocab_size
  9922
  >>> windows = next_token_windows(tokenizer.encode(corpus["train"]), 35,
  ...                              tokenizer.vocab_size)
  >>> windows.x.shape, windows.y.shape
  ((26411, 35), (26411, 35))
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.data.corpora import Corpus
from imbalance_jax.types import Dataset


@flax.struct.dataclass
class TokenWindows:
  """Next-token prediction data: token windows and their shifted targets (a pytree).

  The same field names as `imbalance_jax.types.Dataset`, but ``y`` holds one
  label per *position*: the class of position ``t`` of window ``i`` is the next
  token, ``y[i, t] = x[i, t + 1]`` inside a window and the first token of the
  next stretch of text at ``t = T - 1``. A sequence model's per-token loss is
  ``cross_entropy(logits [n, T, V], y [n, T])``, flattened to ``loss_N`` over
  the ``n * T`` tokens.

  Attributes:
    x: input token ids, int32 ``[n, T]``.
    y: target token ids, int32 ``[n, T]``.
    class_counts: number of target positions of each token id, int32 ``[V]``.
    num_classes: vocabulary size ``V`` (static).

  Leading batch axes are allowed on every leaf, as for `Dataset`; the window
  axis is ``-2``.

  Example:
    >>> w = next_token_windows(np.arange(7) % 3, seq_len=3, num_classes=3)
    >>> w.x.tolist(), w.y.tolist()
    ([[0, 1, 2], [0, 1, 2]], [[1, 2, 0], [1, 2, 0]])
  """

  x: jax.Array
  y: jax.Array
  class_counts: jax.Array
  num_classes: int = flax.struct.field(pytree_node=False)

  @property
  def num_examples(self) -> int:
    """Number of windows ``n`` (the unit of mini-batching)."""
    return self.y.shape[-2]

  @property
  def seq_len(self) -> int:
    return self.y.shape[-1]

  @property
  def num_tokens(self) -> int:
    """Number of predicted positions ``n * T`` (the examples of the per-token loss)."""
    return self.y.shape[-2] * self.y.shape[-1]

  @property
  def class_frequencies(self) -> jax.Array:
    """pi_k = n_k / (n T), shape ``[..., V]``."""
    counts = self.class_counts.astype(jnp.float32)
    return counts / counts.sum(axis=-1, keepdims=True)

  def flat_targets(self) -> jax.Array:
    """Targets flattened over windows and positions, ``[..., n * T]`` (aligned with ``loss_N``)."""
    return self.y.reshape(self.y.shape[:-2] + (-1,))


def per_token_dataset(windows: TokenWindows, features_NTD) -> Dataset:
  """A `Dataset` with one example per predicted position: ``x`` = its features.

  For last-layer studies (paper H Fig 5): with the body of a transformer frozen
  at init, the features ``[n, T, d]`` it feeds the head (``return_features=True``)
  make the problem a linear softmax model on ``n T`` examples, so the linear
  tools (`imbalance_jax.models.LinearSoftmax`, exact block curvature) apply.

  Args:
    windows: `TokenWindows` with ``y [n, T]``.
    features_NTD: float ``[n, T, d]`` (one feature vector per position).

  Returns:
    `Dataset` with ``x [n T, d]``, ``y [n T]`` (the next tokens) and the
    windows' ``class_counts``.

  Example:
    >>> w = next_token_windows(np.arange(9) % 4, seq_len=4, num_classes=4)
    >>> ds = per_token_dataset(w, jnp.ones((2, 4, 3)))
    >>> ds.x.shape, ds.y.tolist()
    ((8, 3), [1, 2, 3, 0, 1, 2, 3, 0])
  """
  features = jnp.asarray(features_NTD)
  if features.ndim != 3 or features.shape[:2] != windows.y.shape:
    raise ValueError(f"features_NTD must have shape [n, T, d] with [n, T] = {windows.y.shape}, "
                     f"got {features.shape}")
  return Dataset(x=features.reshape(-1, features.shape[-1]), y=windows.flat_targets(),
                 class_counts=windows.class_counts, num_classes=windows.num_classes)


def next_token_windows(token_ids, seq_len: int, num_classes: int, *,
                       max_windows: int | None = None) -> TokenWindows:
  """Cuts a token stream into non-overlapping windows with next-token targets.

  Window ``i`` reads ``ids[i T : (i + 1) T]`` and predicts
  ``ids[i T + 1 : (i + 1) T + 1]``; the ``(L - 1) mod T`` trailing tokens that
  cannot fill a window are dropped.

  Args:
    token_ids: int ``[L]`` token stream with ids in ``[0, num_classes)``.
    seq_len: window length ``T >= 2`` (paper H: 35 for PTB, 1024 for
      WikiText-103).
    num_classes: vocabulary size ``V``.
    max_windows: keep only the first this many windows (``None``: all).

  Returns:
    `TokenWindows` with ``x, y [n, T]`` and the target counts ``[V]``.

  Raises:
    ValueError: ``seq_len < 2``, a stream shorter than ``seq_len + 1`` tokens,
      ids out of range, ``max_windows < 1``.

  Example:
    >>> next_token_windows(np.arange(8), seq_len=3, num_classes=8).y.tolist()
    [[1, 2, 3], [4, 5, 6]]
  """
  seq_len = _checks.check_int("seq_len", seq_len, minimum=2)
  num_classes = _checks.check_int("num_classes", num_classes, minimum=1)
  ids = np.asarray(token_ids)
  if ids.ndim != 1:
    raise ValueError(f"token_ids must have shape [L], got {ids.shape}")
  if ids.size and not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f"token_ids must be integers, got dtype {ids.dtype}")
  if ids.size < seq_len + 1:
    raise ValueError(f"token_ids holds {ids.size} tokens: a window of seq_len={seq_len} needs at "
                     f"least {seq_len + 1} (the corpus is too short or empty)")
  if ids.min() < 0 or ids.max() >= num_classes:
    raise ValueError(f"token_ids must lie in [0, num_classes={num_classes}), got ids in "
                     f"[{ids.min()}, {ids.max()}]")
  n = (ids.size - 1) // seq_len
  if max_windows is not None:
    n = min(n, _checks.check_int("max_windows", max_windows, minimum=1))
  x = ids[:n * seq_len].reshape(n, seq_len).astype(np.int32)
  y = ids[1:n * seq_len + 1].reshape(n, seq_len).astype(np.int32)
  counts = np.bincount(y.ravel(), minlength=num_classes).astype(np.int32)
  return TokenWindows(x=jnp.asarray(x), y=jnp.asarray(y), class_counts=jnp.asarray(counts),
                      num_classes=num_classes)


def language_model_data(corpus: Corpus, tokenizer, seq_len: int, *,
                        max_windows: int | None = None,
                        splits: Sequence[str] | None = None) -> dict[str, TokenWindows]:
  """`next_token_windows` of every split of ``corpus`` (``{"train": ..., "valid": ...}``).

  Each split's ``class_counts`` are its own target counts; use the training
  split's for frequency groups and class weights.

  Example:
    >>> from imbalance_jax.data import load_corpus, train_tokenizer
    >>> corpus = load_corpus("tinyptb")
    >>> data = language_model_data(corpus, train_tokenizer("word", corpus["train"]), 35,
    ...                            max_windows=1024)
    >>> data["train"].x.shape
    (1024, 35)
  """
  splits = tuple(corpus.splits) if splits is None else tuple(splits)
  return {s: next_token_windows(tokenizer.encode(corpus[s]), seq_len, tokenizer.vocab_size,
                                max_windows=max_windows) for s in splits}
