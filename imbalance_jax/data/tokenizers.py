"""Tokenizers fitted on a corpus's training split, ids numbered by training frequency.

`train_tokenizer` fits one of:

* ``"word"``: torchtext's ``basic_english`` rules
  (`imbalance_jax.data.vocabulary.basic_english`), then a vocabulary sorted by
  training frequency (ties alphabetically) with ``<unk>`` (`WordTokenizer`);
* ``"bpe"`` / ``"unigram"``: HuggingFace ``tokenizers`` trained offline: BPE
  as in Sennrich et al. (merges inside whitespace-separated words, ``</w>``
  ending a word), Unigram as in SentencePiece (``▁`` starting a word)
  (`SubwordTokenizer`).

Every tokenizer numbers its tokens by training-split frequency: id 0 is the
most frequent token of the training text.

Example:
  >>> tokenizer = train_tokenizer("word", "a b b b c")
  >>> tokenizer.tokens, tokenizer.encode("b a d").tolist()
  (('b', 'a', 'c', '<unk>'), [0, 1, 3])
"""

from __future__ import annotations

import collections
import dataclasses
import itertools

import numpy as np

from imbalance_jax import _checks
from imbalance_jax.data.vocabulary import (UNK, Vocabulary, _line_chunks, _word_chunks, _word_split,
                                           build_vocabulary)

TOKENIZERS = ("word", "bpe", "unigram")
_END_OF_WORD = "</w>"


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
  # A merge joins two adjacent symbols of a distinct word, and the alphabet holds each
  # character alone and with the end-of-word mark: a bound checked before the call, because
  # HuggingFace's trainer allocates for the requested size and a huge one aborts the process.
  bpe_available = len(specials) + 2 * len(characters) + sum(len(w) - 1 for w in words)
  if kind == "bpe" and vocab_size > bpe_available:
    raise ValueError(
        f"vocab_size={vocab_size} is larger than the corpus supports: its training text has "
        f"{len(words)} distinct words and {len(characters)} distinct characters, so BPE makes "
        f"at most {bpe_available} pieces")
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
    >>> from imbalance_jax.data import load_corpus
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
