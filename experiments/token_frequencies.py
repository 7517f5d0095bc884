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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, logging  # noqa: E402

from experiments.configs import token_frequencies as config_lib  # noqa: E402
from imbalance_jax import cli, data, plotting, results  # noqa: E402

_WORKDIR, _CONFIG = cli.define_flags(__file__)
_TOKENIZER_STYLE = {"word": dict(color="black"),
                    "bpe": dict(color=(187 / 255, 85 / 255, 102 / 255)),
                    "unigram": dict(color=(0.0, 68 / 255, 136 / 255))}


def frequency_figure(counts: dict):
  fig, axes = plt.subplots(1, len(counts), figsize=(4.6 * len(counts), 3.8), squeeze=False)
  for ax, (corpus, by_tokenizer) in zip(axes[0], counts.items()):
    for name, c in by_tokenizer.items():
      freqs = data.rank_frequencies(c)
      ax.plot(np.arange(1, freqs.size + 1), freqs, label=name, linewidth=1.5,
              **_TOKENIZER_STYLE.get(name, {}))
    top = max(data.rank_frequencies(c)[0] for c in by_tokenizer.values())
    k = np.logspace(0, np.log10(max(c.size for c in by_tokenizer.values())), 50)
    ax.plot(k, top / k, color="gray", linestyle=":", label=r"$\propto 1/k$")
    ax.set(xscale="log", yscale="log", xlabel="rank k (by frequency)",
           ylabel=r"relative frequency $\pi_k$", title=corpus)
    ax.legend(frameon=False)
  fig.tight_layout()
  return fig


def group_figure(counts: dict, num_groups: int):
  rows = len(counts)
  cols = max(len(v) for v in counts.values())
  fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.2 * rows), squeeze=False)
  for r, (corpus, by_tokenizer) in enumerate(counts.items()):
    for c, (name, class_counts) in enumerate(by_tokenizer.items()):
      ax = axes[r, c]
      groups = data.frequency_groups(class_counts, num_groups)
      order = np.argsort(-class_counts, kind="stable")
      ranks = np.arange(1, class_counts.size + 1)
      colors = plotting.group_colors(num_groups)
      for g in range(int(groups.max()) + 1):  # one filled step curve per group (fast for 50k)
        mask = groups[order] == g
        x = np.append(ranks[mask], ranks[mask][-1] + 1)  # each class spans [rank, rank + 1)
        y = np.maximum(np.append(class_counts[order][mask], class_counts[order][mask][-1]), 0.5)
        ax.fill_between(x, 0.5, y, step="post", color=colors[g], linewidth=0)
      ax.set(xscale="log", yscale="log", xlabel="token (sorted by frequency)",
             title=f"{corpus}, {name}")
    axes[r, 0].set_ylabel("occurrences")
  plotting.add_group_colorbar(fig, axes, num_groups)
  return fig


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  corpora = config_lib.parse_corpora(config.corpus)
  kinds = config_lib.parse_tokenizers(config.tokenizers)
  eos = data.text.EOS if config.eos else None
  summary, counts, arrays = {}, {}, {}
  for name in corpora:
    corpus = data.load_corpus(name, config_lib.corpus_dir_for(name, config.corpus_dir),
                              layout=config.layout)
    summary[name], counts[name] = {}, {}
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
      counts[name][kind] = class_counts
      arrays[f"{name}/{kind}"] = class_counts[order]
      logging.info("%s / %s: vocabulary %d, %d tokens, slope %.3f (%.1fs)", name, kind,
                   tokenizer.vocab_size, total, fit["slope"], summary[name][kind]["seconds"])
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_npz(os.path.join(workdir, "counts.npz"), **arrays)
  plotting.save_figure(frequency_figure(counts), os.path.join(workdir, "token_frequencies.png"))
  plotting.save_figure(group_figure(counts, config.num_groups),
                       os.path.join(workdir, "token_groups.png"))
  logging.info("Wrote summary.json, counts.npz and figures to %s", workdir)


if __name__ == "__main__":
  app.run(main)
