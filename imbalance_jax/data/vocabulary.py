"""Words and vocabularies: torchtext's ``basic_english`` rules, tokens numbered by frequency.

`basic_english` splits a line into words; `build_vocabulary` counts a training
token sequence and numbers the tokens by decreasing frequency (ties
alphabetically), rare words merged into ``<unk>`` (`Vocabulary`). The word
tokenizer of `imbalance_jax.data.tokenizers` is these two steps.

Example:
  >>> vocab = build_vocabulary(basic_english("The cat saw the dog."))
  >>> vocab.tokens, vocab.lookup(["the", "bird"]).tolist()
  (('the', '.', 'cat', 'dog', 'saw', '<unk>'), [0, 5])
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from imbalance_jax import _checks

UNK = "<unk>"
EOS = "<eos>"

# torchtext.data.utils._basic_english_normalize: applied in this order after
# lower-casing, then the line is split on whitespace.
_BASIC_ENGLISH_RULES = (
    (r"\'", " '  "),
    (r"\"", ""),
    (r"\.", " . "),
    (r"<br \/>", " "),
    (r",", " , "),
    (r"\(", " ( "),
    (r"\)", " ) "),
    (r"\!", " ! "),
    (r"\?", " ? "),
    (r"\;", " "),
    (r"\:", " "),
    (r"\s+", " "),
)
_BASIC_ENGLISH = tuple((re.compile(p), r) for p, r in _BASIC_ENGLISH_RULES)


def basic_english(line: str) -> list[str]:
  """torchtext's ``basic_english`` tokenizer (``_basic_english_normalize``).

  Lower-cases, then in order: ``'`` -> `` '  `` (so ``don't`` gives ``don ' t``),
  removes ``"``, pads ``.`` ``,`` ``(`` ``)`` ``!`` ``?`` with spaces, replaces
  ``<br />``, ``;`` and ``:`` by a space, and splits on whitespace. Other
  characters (``-``, ``$``, ``<``, ``>``, ``&``, ``/``, digits) stay inside words.

  Example:
    >>> basic_english('He said: "Don\\'t (ever) stop!"')
    ['he', 'said', 'don', "'", 't', '(', 'ever', ')', 'stop', '!']
  """
  line = line.lower()
  for pattern, replacement in _BASIC_ENGLISH:
    line = pattern.sub(replacement, line)
  return line.split()


def _line_chunks(text: str, chunk_chars: int = 1 << 22) -> Iterator[str]:
  """Consecutive pieces of ``text`` of about ``chunk_chars`` characters, cut after a newline."""
  start = 0
  while start < len(text):
    end = text.find("\n", start + chunk_chars)
    end = len(text) if end < 0 else end + 1
    yield text[start:end]
    start = end


def _word_chunks(text: str, eos_token: str | None,
                 chunk_chars: int = 1 << 22) -> Iterator[list[str]]:
  """`basic_english` line by line, ``eos_token`` after each non-empty line, in chunks.

  The rules run on chunks of many lines at once (none of them spans a newline,
  and ``\\s+ -> " "`` is subsumed by ``str.split``), which is much faster than
  per line and keeps memory bounded on WikiText-103.
  """
  eos = [eos_token] if eos_token else []
  for chunk in _line_chunks(text, chunk_chars):
    chunk = chunk.lower()
    for pattern, replacement in _BASIC_ENGLISH[:-1]:
      chunk = pattern.sub(replacement, chunk)
    yield [t for words in (line.split() for line in chunk.split("\n")) if words
           for t in words + eos]


def _word_split(text: str, eos_token: str | None) -> list[str]:
  """All of `_word_chunks` as one list."""
  return [t for chunk in _word_chunks(text, eos_token) for t in chunk]


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """Tokens numbered by decreasing training frequency (ties alphabetically).

  Attributes:
    tokens: id -> token string.
    counts: training-split count of each id, int64 ``[V]`` (non-increasing;
      out-of-vocabulary words are counted under ``<unk>``).
    unk_id: id of the unknown token.

  Example:
    >>> vocab = build_vocabulary(["b", "a", "b", "c", "b", "a"], min_frequency=2)
    >>> vocab.tokens, vocab.counts.tolist(), vocab.unk_id
    (('b', 'a', '<unk>'), [3, 2, 1], 2)
  """

  tokens: tuple[str, ...]
  counts: np.ndarray
  unk_id: int

  def __len__(self) -> int:
    return len(self.tokens)

  @functools.cached_property
  def index(self) -> dict[str, int]:
    """token -> id."""
    return {t: i for i, t in enumerate(self.tokens)}

  def lookup(self, tokens: Iterable[str]) -> np.ndarray:
    """Ids of ``tokens`` (``unk_id`` for unknown ones), int32 ``[L]``."""
    index, unk = self.index, self.unk_id
    return np.fromiter((index.get(t, unk) for t in tokens), np.int32)


def build_vocabulary(tokens: Iterable[str], *, min_frequency: int = 1,
                     max_size: int | None = None, unk_token: str = UNK,
                     specials: Sequence[str] = ()) -> Vocabulary:
  """Counts ``tokens`` and numbers them by decreasing frequency.

  Words seen fewer than ``min_frequency`` times, and words beyond the
  ``max_size - 1`` most frequent, are merged into ``unk_token`` (which joins
  the order by its merged count; if it never occurs it comes last, with count
  0). ``specials`` (e.g. ``<eos>``) are kept whatever their count.

  Args:
    tokens: the training token sequence.
    min_frequency: minimum count to keep a word, ``>= 1``.
    max_size: maximum vocabulary size including ``unk_token`` (``None``: no
      limit). Must not exceed the number of distinct tokens (+1 for ``<unk>``
      if it does not occur): a vocabulary larger than the corpus is an error.
    unk_token: the unknown token.
    specials: tokens always kept.

  Raises:
    ValueError: no tokens, ``min_frequency < 1``, ``max_size < 1`` or larger
      than the corpus's distinct tokens.
  """
  min_frequency = _checks.check_int("min_frequency", min_frequency, minimum=1)
  counter = collections.Counter(tokens)
  if not counter:
    raise ValueError("tokens is empty: cannot build a vocabulary from an empty corpus")
  available = len(counter) + (unk_token not in counter)
  if max_size is not None:
    max_size = _checks.check_int("max_size", max_size, minimum=1 + len(specials))
    if max_size > available:
      raise ValueError(f"max_size={max_size} is larger than the corpus's vocabulary: it has "
                       f"{available} distinct tokens including {unk_token!r}; use max_size=None "
                       "to keep them all")
  unk_count = counter.pop(unk_token, 0)
  ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
  keep = [(t, c) for t, c in ranked if c >= min_frequency or t in specials]
  if max_size is not None and len(keep) > max_size - 1:
    forced = [kv for kv in keep[max_size - 1:] if kv[0] in specials]
    keep = keep[:max_size - 1 - len(forced)] + forced
  kept = {t for t, _ in keep}
  unk_count += sum(c for t, c in ranked if t not in kept)
  entries = sorted(keep + [(unk_token, unk_count)], key=lambda kv: (-kv[1], kv[0]))
  tokens_out = tuple(t for t, _ in entries)
  return Vocabulary(tokens=tokens_out, counts=np.array([c for _, c in entries], np.int64),
                    unk_id=tokens_out.index(unk_token))
