r"""Token frequencies under word, BPE and Unigram tokenizers (paper H Fig 9).

Fits each tokenizer on a corpus's training split, counts the tokens of
``--config.split`` and writes config.json, summary.json (per corpus and
tokenizer: vocabulary size, token count, the slope of log frequency vs log
rank, the number of classes in each ~10% frequency group, the most frequent
tokens), counts.npz (the frequency-sorted counts) and two figures into
--workdir: token_frequencies.png (relative frequency vs rank, log-log, one line
per tokenizer, with 1/rank for reference) and token_groups.png (the class
distribution coloured by frequency group, one panel per corpus and tokenizer).

  python -m experiments.token_frequencies --workdir /tmp/zipf
  python -m experiments.token_frequencies --workdir /tmp/zipf --config.preset=paper \
      --config.corpus_dir=/data/wikitext
"""

import os
import time

import numpy as np
from absl import app, logging

from experiments.configs import token_frequencies as config_lib
from imbalance_jax import cli, data, plotting, results

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  corpora = config_lib.parse_corpora(config.corpus)
  kinds = config_lib.parse_tokenizers(config.tokenizers)
  eos = data.vocabulary.EOS if config.eos else None
  summary, counts, groups_of, arrays = {}, {}, {}, {}
  for name in corpora:
    corpus = data.load_corpus(name, config_lib.corpus_dir_for(name, config.corpus_dir),
                              layout=config.layout)
    summary[name], counts[name], groups_of[name] = {}, {}, {}
    for kind in kinds:
      start = time.perf_counter()
      tokenizer = data.train_tokenizer(
          kind, corpus["train"], eos_token=eos,
          vocab_size=None if kind == "word" else config.subword_vocab_size,
          min_frequency=config.min_frequency)
      if config.split == "train":
        class_counts = np.asarray(tokenizer.counts)
      else:
        class_counts = np.bincount(tokenizer.encode(corpus[config.split]),
                                   minlength=tokenizer.vocab_size)
      groups = data.frequency_groups(class_counts, config.num_groups)
      fit = data.zipf_fit(class_counts, config.fit_points)
      order = np.argsort(-class_counts, kind="stable")
      total = int(class_counts.sum())
      summary[name][kind] = {
          "vocab_size": tokenizer.vocab_size, "num_tokens": total,
          "num_observed_tokens": int(np.count_nonzero(class_counts)),
          "slope": fit["slope"], "intercept": fit["intercept"], "fit_points": fit["num_points"],
          "classes_per_group": np.bincount(groups).tolist(),
          "top_tokens": [[tokenizer.tokens[i], class_counts[i] / total] for i in order[:10]],
          "source": corpus.source, "split": config.split,
          "seconds": time.perf_counter() - start}
      counts[name][kind], groups_of[name][kind] = class_counts, groups
      arrays[f"{name}/{kind}"] = class_counts[order]
      logging.info("%s / %s: vocabulary %d, %d tokens, slope %.3f (%.1fs)", name, kind,
                   tokenizer.vocab_size, total, fit["slope"], summary[name][kind]["seconds"])
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_npz(os.path.join(workdir, "counts.npz"), **arrays)
  plotting.save_figure(plotting.language.plot_token_frequencies(counts),
                       os.path.join(workdir, "token_frequencies.png"))
  plotting.save_figure(plotting.language.plot_token_groups(counts, groups_of, config.num_groups),
                       os.path.join(workdir, "token_groups.png"))
  logging.info("Wrote summary.json, counts.npz and figures to %s", workdir)


if __name__ == "__main__":
  app.run(main)
