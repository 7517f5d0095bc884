"""Data sets as pure functions of a PRNG key and sizes."""

from imbalance_jax.data.barcode import (BARCODED_VARIANTS, barcode_bits, barcoded, barcoded_mnist,
                                        stamp_barcodes, train_validation_split)
from imbalance_jax.data.corpora import CORPORA, Corpus, corpus_files, load_corpus
from imbalance_jax.data.imagenet import (IMAGENET_SUBSETS, imagenet_labels, imagenet_normalizer,
                                         load_imagenet_subset, resize_and_center_crop)
from imbalance_jax.data.images import (IMAGE_SOURCES, find_images, load_images, make_image_dataset,
                                       read_idx, write_idx, write_tfds_images)
from imbalance_jax.data.imbalance import (exponential_counts, exponential_subsample,
                                          frequency_groups, heavy_tail_counts,
                                          heavy_tail_subsample, host_rng, per_class_indices,
                                          step_imbalance, subsample_per_class, take,
                                          uniform_subsample)
from imbalance_jax.data.normalization import Normalizer, fit_normalizer, normalize
from imbalance_jax.data.synthetic import (INPUT_DISTRIBUTIONS, heavy_tailed_class_counts,
                                          heavy_tailed_images, heavy_tailed_labels)
from imbalance_jax.data.theory_problems import (simple_imbalanced_setting, simplex_encoded_labels,
                                                step_class_counts, step_imbalanced_labels,
                                                zipf_distribution)
from imbalance_jax.data.tokenizers import (TOKENIZERS, SubwordTokenizer, WordTokenizer,
                                           train_tokenizer)
from imbalance_jax.data.vocabulary import Vocabulary, basic_english, build_vocabulary
from imbalance_jax.data.windows import (TokenWindows, language_model_data, next_token_windows,
                                        per_token_dataset)
from imbalance_jax.data.zipf import rank_frequencies, zipf_fit

__all__ = ["INPUT_DISTRIBUTIONS", "frequency_groups", "heavy_tailed_class_counts",
           "heavy_tailed_images", "heavy_tailed_labels", "simple_imbalanced_setting",
           "simplex_encoded_labels", "step_class_counts", "step_imbalanced_labels",
           "zipf_distribution"]
__all__ += ["CORPORA", "TOKENIZERS", "Corpus", "SubwordTokenizer", "TokenWindows", "Vocabulary",
            "WordTokenizer", "basic_english", "build_vocabulary", "language_model_data",
            "corpus_files", "load_corpus", "next_token_windows", "per_token_dataset",
            "rank_frequencies",
            "train_tokenizer", "zipf_fit"]
__all__ += ["BARCODED_VARIANTS", "IMAGENET_SUBSETS", "IMAGE_SOURCES", "Normalizer", "barcode_bits",
            "barcoded", "barcoded_mnist", "exponential_counts", "exponential_subsample",
            "find_images", "fit_normalizer", "heavy_tail_counts",
            "heavy_tail_subsample", "host_rng", "imagenet_labels", "imagenet_normalizer",
            "load_imagenet_subset", "load_images",
            "make_image_dataset", "normalize", "per_class_indices", "read_idx",
            "resize_and_center_crop", "stamp_barcodes", "step_imbalance", "subsample_per_class",
            "take", "train_validation_split", "uniform_subsample", "write_idx", "write_tfds_images"]
