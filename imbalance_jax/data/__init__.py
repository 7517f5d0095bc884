"""Data sets as pure functions of a PRNG key and sizes."""

from imbalance_jax.data.imbalance import frequency_groups
from imbalance_jax.data.synthetic import (INPUT_DISTRIBUTIONS, heavy_tailed_class_counts,
                                          heavy_tailed_images, heavy_tailed_labels)
from imbalance_jax.data.theory_problems import (simple_imbalanced_setting, simplex_encoded_labels,
                                                step_class_counts, step_imbalanced_labels,
                                                zipf_distribution)
from imbalance_jax.data.text import (CORPORA, TOKENIZERS, Corpus, SubwordTokenizer, TokenWindows,
                                     Vocabulary, WordTokenizer, basic_english, build_vocabulary,
                                     language_model_data, load_corpus, next_token_windows,
                                     rank_frequencies, train_tokenizer, zipf_fit)

__all__ = ["INPUT_DISTRIBUTIONS", "frequency_groups", "heavy_tailed_class_counts",
           "heavy_tailed_images", "heavy_tailed_labels", "simple_imbalanced_setting",
           "simplex_encoded_labels", "step_class_counts", "step_imbalanced_labels",
           "zipf_distribution"]
__all__ += ["CORPORA", "TOKENIZERS", "Corpus", "SubwordTokenizer", "TokenWindows", "Vocabulary",
            "WordTokenizer", "basic_english", "build_vocabulary", "language_model_data",
            "load_corpus", "next_token_windows", "rank_frequencies", "train_tokenizer", "zipf_fit"]
