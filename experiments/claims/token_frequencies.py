"""Claims of `experiments.token_frequencies`: paper H Fig 9, token frequency vs rank."""

from experiments.claims import Claim, Experiment, Figure, at_least, at_most


def _entries(run):
  """{"corpus/tokenizer": summary entry} over every corpus and tokenizer of the run."""
  return {f"{corpus}/{kind}": entry for corpus, by_kind in run.summary.items()
          for kind, entry in by_kind.items()}


def _slopes(run):
  slopes = {f"slope_{name}": e["slope"] for name, e in _entries(run).items()}
  return {**slopes, "steepest_slope": min(slopes.values()),
          "flattest_slope": max(slopes.values())}


def _group_sizes(run):
  # Classes in the rarest ~10% of the tokens over classes in the most frequent ~10%.
  ratios = {f"rare_over_frequent_classes_{name}":
                e["classes_per_group"][-1] / e["classes_per_group"][0]
            for name, e in _entries(run).items()}
  return {**ratios, "min_ratio": min(ratios.values())}


EXPERIMENT = Experiment(
    binary="token_frequencies",
    cpu_runs={"quick": 10.0},
    paper_runs=("paper",),
    notes="word, BPE, Unigram on PTB; any local corpus",
    # Killed after the word tokenizer's counts are saved, before BPE's and Unigram's.
    test_flags=("--config.subword_vocab_size=120", "--config.num_groups=4"),
    kill_after=1,
    slow_test=True,  # resume with -m slow: theory_figures checks Progress units in CI
    figures=(
        Figure("H", "Fig 9", "quick", "token_frequencies.png",
               "Relative token frequency vs frequency rank (log-log) on PTB's training split "
               "under the word, BPE and Unigram tokenizers (subword vocabularies of 8,192 "
               "requested), with 1/k for reference; paper H also shows WikiText-2, which the "
               "paper preset adds when the files are given"),
        Figure("H", "Fig 9", "quick", "token_groups.png",
               "Token counts sorted by frequency and coloured by ~10% frequency group, per "
               "tokenizer (the class distribution of panel (a) of Figs 1 and 17)"),
    ),
    claims=(
        Claim("H", "Fig 9", "Different tokenizers lead to heavy-tailed token distributions: "
              "the relative frequency of the k-th most frequent token is roughly proportional "
              "to 1/k under word, BPE and Unigram tokenization (fitted log-log slope near -1).",
              "quick", _slopes,
              (at_least("steepest_slope", -1.5), at_most("flattest_slope", -0.7))),
        Claim("H", "Fig 9", "Under every tokenizer a handful of tokens make up the most frequent "
              "~10% of the text while the rarest ~10% are spread over thousands of tokens "
              "(at least 100 times as many classes).", "quick", _group_sizes,
              (at_least("min_ratio", 100.0),)),
        Claim("H", "Fig 9", "PTB under torchtext's basic_english word tokenizer has a "
              "vocabulary of 9,920 words (paper H App. A; ours must be within 0.5%).", "quick",
              lambda run: {"ptb_word_vocabulary": run.summary["ptb"]["word"]["vocab_size"],
                           "ptb_word_tokens": run.summary["ptb"]["word"]["num_tokens"]},
              (at_least("ptb_word_vocabulary", 9870), at_most("ptb_word_vocabulary", 9970))),
    ),
)
