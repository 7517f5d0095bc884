"""Exact messages, edges and offline guarantees of the data loaders (written against
surviving mutants; see docs/testing.md)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import curvature, data, optim


def test_bad_counts_and_run_lists_are_refused_with_their_messages():
  with pytest.raises(ValueError, match="^class_counts must be non-negative with a positive total$"):
    data.frequency_groups([0, 0])
  with pytest.raises(ValueError, match="^runs must name at least one run$"):
    optim.parse_runs("")
  with pytest.raises(ValueError, match="class_counts"):
    data.rank_frequencies([3, -1])  # a negative count, positive total


def test_short_idx_file_is_a_bad_magic_number(tmp_path):
  path = tmp_path / "short-idx1-ubyte"
  path.write_bytes(b"\x00\x00")
  with pytest.raises(ValueError, match="bad magic number"):
    data.read_idx(path)


def test_idx_label_ten_is_refused(tmp_path):
  data.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
  data.write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([9, 10], np.uint8))
  with pytest.raises(ValueError, match=r"holds labels >= 10; is it a mnist label file\?$"):
    data.load_images("mnist", "train", tmp_path)


def test_tfds_sources_never_download(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  calls, real = [], tfds.data_source

  def recording(*args, **kwargs):
    calls.append(kwargs)
    return real(*args, **kwargs)
  monkeypatch.setattr(tfds, "data_source", recording)
  rng = np.random.default_rng(0)
  data.write_tfds_images(tmp_path / "digits", "mnist", "train",
                         rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8), [0, 1, 2])
  assert data.load_images("mnist", "train", tmp_path / "digits").num_examples == 3
  data.write_tfds_images(tmp_path / "imagenet", "imagenet2012", "train",
                         [rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)] * 2, [4, 4])
  subset = data.load_imagenet_subset(jax.random.key(0), tmp_path / "imagenet", image_size=4,
                                     resize_size=4, num_threads=1)
  assert subset.num_examples == 2
  assert len(calls) >= 2 and all(call["download"] is False for call in calls)


def test_imagenet_thread_count_is_checked_first(tmp_path):
  with pytest.raises(ValueError, match="^num_threads must be >= 1"):
    data.load_imagenet_subset(jax.random.key(0), tmp_path, num_threads=0)


def test_data_moments_keep_classes_without_samples():
  with jax.enable_x64(True):
    x = jnp.arange(6.0).reshape(3, 2)
    m = curvature.data_moments(x, jnp.array([0, 0, 1]), 4)  # classes 2 and 3 are empty
    assert m.xbar_DC.shape == (2, 4) and m.trace_H_C.shape == (4,)
    np.testing.assert_allclose(m.xbar_DC[:, 0], [1.0, 2.0])
    with pytest.raises(ValueError, match="^num_classes must be >= 1"):
      curvature.data_moments(x, jnp.array([0, 0, 1]), 0)


def test_synthetic_data_keep_the_requested_dtype_and_size_memory_by_it(monkeypatch):
  key = jax.random.key(0)
  for dist in ("uniform", "normal_1", "normal_0"):
    assert data.heavy_tailed_labels(key, 2, dist, dtype=jnp.bfloat16).x.dtype == jnp.bfloat16
  images = data.heavy_tailed_images(key, 2, 4, dtype=jnp.bfloat16)
  assert images.x.dtype == jnp.bfloat16
  # m = 2: n = 8 examples of d = 12 values; the estimate counts bytes of the requested dtype.
  from imbalance_jax import _checks
  monkeypatch.setattr(_checks, "available_memory_bytes", lambda: 2 * 8 * 12)
  data.heavy_tailed_labels(key, 2, dtype=jnp.bfloat16)
  with pytest.raises(ValueError, match=r"^m=2 \(n=8, d=12\) needs about .* lower m$"):
    data.heavy_tailed_labels(key, 2)
  n = images.num_examples
  monkeypatch.setattr(_checks, "available_memory_bytes", lambda: 2 * n * 16)
  data.heavy_tailed_images(key, 2, 4, dtype=jnp.bfloat16)
  with pytest.raises(ValueError, match=rf"^m=2, image_size=4 \(n={n}\) needs about .* lower m "
                                       r"or image_size$"):
    data.heavy_tailed_images(key, 2, 4)


def test_check_images_refuses_other_sizes():
  from imbalance_jax.data.images import check_images
  images = np.zeros((2, 5, 6, 1), np.uint8)
  assert check_images("x", images, height=5, width=6) is not None
  with pytest.raises(ValueError, match=r"^x must be 4x6 images, got shape \(2, 5, 6, 1\)$"):
    check_images("x", images, height=4, width=6)


def test_imbalance_helpers_refuse_bad_counts_and_labels():
  key = jax.random.key(0)
  labels = np.array([0, 0, 1])
  for bad in (np.array([-1, 0, 1]), np.array([0, 1, 2])):
    with pytest.raises(ValueError, match=r"^labels must lie in \[0, num_classes=2\)$"):
      data.per_class_indices(key, bad, [1, 1], 2)
  for wanted in ([1.0, 1.0], [1, -1], [1]):
    with pytest.raises(ValueError, match=r"^counts_per_class must be non-negative ints \[2\]"):
      data.per_class_indices(key, labels, np.asarray(wanted), 2)
  assert data.per_class_indices(key, np.zeros(3, int), [2], 1).size == 2  # one class is fine
  for bad in ([[1, 2]], [], [3, -1]):
    with pytest.raises(ValueError, match=r"^class_counts must be non-negative \[C\] with C >= 1"):
      data.heavy_tail_counts(bad)
  # Ties are ranked by class id (120 classes: numpy's default sort is not stable there).
  counts = np.tile([4, 2, 4, 2], 30)
  rank = np.empty(counts.size, int)
  rank[np.lexsort((np.arange(counts.size), -counts))] = np.arange(1, counts.size + 1)
  np.testing.assert_array_equal(data.heavy_tail_counts(counts), np.minimum(counts, -(-4 // rank)))


def test_vocabulary_bounds_and_messages():
  tokens = "a a a b b c".split()
  with pytest.raises(ValueError, match="^min_frequency must be >= 1, got 0$"):
    data.build_vocabulary(tokens, min_frequency=0)
  # 3 distinct tokens + <unk> = 4 entries at most; with one special, max_size >= 2.
  assert len(data.build_vocabulary(tokens, max_size=4).tokens) == 4
  with pytest.raises(ValueError, match=r"^max_size=5 is larger than the corpus's vocabulary: it "
                                       r"has 4 distinct tokens including '<unk>'"):
    data.build_vocabulary(tokens, max_size=5)
  with pytest.raises(ValueError, match=r"^max_size must be >= 2, got 1$"):
    data.build_vocabulary(tokens, max_size=1, specials=["<eos>"])
  # <unk> already in the corpus is not counted twice.
  with pytest.raises(ValueError, match=r"has 3 distinct tokens"):
    data.build_vocabulary(["<unk>", "a", "b"], max_size=4)


def test_token_windows_and_corpus_names(tmp_path):
  with pytest.raises(ValueError, match="^num_classes must be >= 1, got 0$"):
    data.next_token_windows(np.arange(10), seq_len=3, num_classes=0)
  # Classes that never occur still get a count: class_counts has num_classes entries.
  windows = data.next_token_windows(np.arange(9) % 3, seq_len=2, num_classes=6)
  assert windows.class_counts.tolist() == [2, 3, 3, 0, 0, 0]
  path = tmp_path / "one.txt"
  path.write_text("a b c\n")
  assert data.load_corpus(f"text:{path}").name == f"text:{path}"
  path.write_text("  \n")
  with pytest.raises(ValueError, match=rf"^corpus 'text:{path}': the train split is empty "
                                       rf"\(source: {path}\)$"):
    data.load_corpus(f"text:{path}")


def test_dense_block_ids_of_a_whole_model():
  head = {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}
  whole = {"params": {"hidden": {"kernel": jnp.zeros((4, 3))}, "head": head}}
  for got in (curvature.dense_block_ids(whole), curvature.dense_block_ids(whole["params"])):
    assert got["kernel"].tolist() == [[0, 1]] * 3 and got["bias"].tolist() == [0, 1]


def test_tokenizer_and_trace_arguments_are_named():
  with pytest.raises(ValueError, match="^vocab_size must be >= 2, got 1$"):
    data.train_tokenizer("bpe", "a b c\n", vocab_size=1)
  assert data.train_tokenizer("bpe", "ab ab ba\n", vocab_size=7).kind == "bpe"
  loss = lambda p: jnp.sum(p["w"] ** 2)  # noqa: E731
  params = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="^num_blocks must be >= 1, got 0$"):
    curvature.hutchinson_block_traces(loss, params, {"w": jnp.zeros(2, jnp.int32)},
                                      num_blocks=0, key=jax.random.key(0), num_probes=1)


def test_image_dataset_arguments_are_named(tmp_path):
  images = np.zeros((2, 4, 4, 1), np.uint8)
  with pytest.raises(ValueError, match="^num_classes must be >= 1, got 0$"):
    data.make_image_dataset(images, [0, 0], 0)
  with pytest.raises(ValueError, match="^split must be one of "):
    data.load_images("mnist", "dev", tmp_path)
  with pytest.raises(ValueError, match="^per must be one of "):
    data.fit_normalizer(data.make_image_dataset(images, [0, 0], 1), per="image")
