"""Barcoded MNIST: pixels, labels, counts and splits exact on small synthetic images."""

import jax
import numpy as np
import pytest

from imbalance_jax import data


def _tagged_digits(per_digit, height=4, width=12, seed=0):
  """Random images whose last pixel holds the example index (to find each copy's source)."""
  rng = np.random.default_rng(seed)
  n = 10 * per_digit
  images = rng.integers(0, 200, (n, height, width, 1), dtype=np.uint8)
  images[:, -1, -1, 0] = np.arange(n)
  labels = rng.permutation(np.repeat(np.arange(10), per_digit)).astype(np.int32)
  return images, labels


def _stamp_reference(image, code, num_bits):
  out = image.copy()
  for column, bit in enumerate(format(code, f"0{num_bits}b")):
    if bit == "1":
      out[0, column, :] = 255
  return out


def test_barcode_bits_msb_first():
  for num_bits in (1, 3, 10):
    bits = data.barcode_bits(num_bits)
    assert bits.shape == (2**num_bits, num_bits)
    for code in (0, 1, 2**num_bits - 1, (2**num_bits) // 3):
      assert "".join(map(str, bits[code])) == format(code, f"0{num_bits}b")


def test_stamp_barcodes_matches_pixel_loop():
  images, _ = _tagged_digits(2, height=3, width=5)
  codes = np.arange(images.shape[0]) % 8
  out = data.stamp_barcodes(images, codes, 3)
  for image, code, got in zip(images, codes, out):
    np.testing.assert_array_equal(got, _stamp_reference(image, code, 3))
  np.testing.assert_array_equal(out[:, 1:], images[:, 1:])       # only row 0 changes
  np.testing.assert_array_equal(out[:, 0, 3:], images[:, 0, 3:])  # only columns < num_bits


@pytest.mark.parametrize("with_plain", [False, True])
def test_barcoded_pixels_labels_and_counts(with_plain):
  num_bits, copies = 3, 4
  images, labels = _tagged_digits(3)
  ds = data.barcoded(jax.random.key(0), images, labels, num_bits=num_bits, copies=copies,
                     with_plain=with_plain)
  x, y = np.asarray(ds.x), np.asarray(ds.y)
  num_barcoded = 10 * 2**num_bits
  offset = 10 if with_plain else 0
  assert ds.num_classes == num_barcoded + offset and x.dtype == np.uint8
  assert y.size == num_barcoded * copies + (labels.size if with_plain else 0)
  counts = np.asarray(ds.class_counts)
  assert np.all(counts[offset:] == copies)
  if with_plain:
    np.testing.assert_array_equal(counts[:10], np.bincount(labels, minlength=10))
    np.testing.assert_array_equal(x[:labels.size], images)
    np.testing.assert_array_equal(y[:labels.size], labels)
  bar_x, bar_y = x[y >= offset][-num_barcoded * copies:], y[-num_barcoded * copies:] - offset
  # Class-major layout: barcode b, digit d, copy j -> label 10 b + d.
  expected_labels = np.repeat(np.arange(num_barcoded), copies)
  np.testing.assert_array_equal(bar_y, expected_labels)
  for image, label in zip(bar_x, bar_y):
    code, digit = divmod(int(label), 10)
    source = int(image[-1, -1, 0])
    assert labels[source] == digit
    np.testing.assert_array_equal(image, _stamp_reference(images[source], code, num_bits))


def test_copies_are_drawn_with_replacement_from_the_digit():
  images, labels = _tagged_digits(2)
  ds = data.barcoded(jax.random.key(3), images, labels, num_bits=1, copies=40, with_plain=False)
  sources = np.asarray(ds.x)[:, -1, -1, 0].reshape(2, 10, 40)     # [barcode, digit, copy]
  for digit in range(10):
    used = set(sources[:, digit].ravel().tolist())
    assert used == set(np.flatnonzero(labels == digit).tolist())   # both images, nothing else


def test_barcoded_is_a_pure_function_of_the_key():
  images, labels = _tagged_digits(3)
  a = data.barcoded(jax.random.key(1), images, labels, num_bits=2)
  b = data.barcoded(jax.random.key(1), images, labels, num_bits=2)
  c = data.barcoded(jax.random.key(2), images, labels, num_bits=2)
  np.testing.assert_array_equal(a.x, b.x)
  assert not np.array_equal(a.x, c.x)


def test_plain_per_digit_sets_the_imbalance_level():
  images, labels = _tagged_digits(6)
  ds = data.barcoded(jax.random.key(0), images, labels, num_bits=2, copies=2, plain_per_digit=3)
  counts = np.asarray(ds.class_counts)
  assert counts[:10].tolist() == [3] * 10 and np.all(counts[10:] == 2)
  plain = np.asarray(ds.x)[:30, -1, -1, 0]
  assert len(set(plain.tolist())) == 30 and np.all(labels[plain] == np.asarray(ds.y)[:30])
  with pytest.raises(ValueError, match="plain_per_digit"):
    data.barcoded(jax.random.key(0), images, labels, num_bits=2, plain_per_digit=7)
  with pytest.raises(ValueError, match="plain_per_digit"):
    data.barcoded(jax.random.key(0), images, labels, num_bits=2, with_plain=False,
                  plain_per_digit=1)


def test_paper_scale_counts():
  # 60,000 1x10 "digits" are enough to check the paper's sizes quickly.
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (60_000, 1, 10, 1), dtype=np.uint8)
  labels = np.repeat(np.arange(10), 6000).astype(np.int32)
  sets = data.barcoded_mnist(jax.random.key(0), data.make_image_dataset(images, labels, 10),
                             normalized=False)
  train, val = sets["train"], sets["validation"]
  assert (train.num_examples, train.num_classes) == (101_200, 10_250)
  assert val.num_examples == 10_000 + 10_240
  assert int(train.class_counts[:10].sum()) == 50_000
  assert np.all(np.asarray(train.class_counts[10:]) == 5)
  assert np.all(np.asarray(val.class_counts[10:]) == 1)
  assert int((np.asarray(train.y) >= 10).sum()) == 51_200        # the Barcoded-only part


def test_train_validation_split_partitions_the_data():
  images, labels = _tagged_digits(5)
  ds = data.make_image_dataset(images, labels, 10)
  train, val = data.train_validation_split(jax.random.key(0), ds, 12)
  ids_train = np.asarray(train.x)[:, -1, -1, 0]
  ids_val = np.asarray(val.x)[:, -1, -1, 0]
  assert val.num_examples == 12 and train.num_examples == 38
  assert sorted(ids_train.tolist() + ids_val.tolist()) == list(range(50))
  np.testing.assert_array_equal(np.asarray(train.y), labels[ids_train])
  again, _ = data.train_validation_split(jax.random.key(0), ds, 12)
  np.testing.assert_array_equal(again.x, train.x)
  with pytest.raises(ValueError, match="num_validation"):
    data.train_validation_split(jax.random.key(0), ds, 50)


@pytest.mark.parametrize("variant", data.BARCODED_VARIANTS)
def test_barcoded_mnist_variants_use_their_own_split(variant, x64):
  images, labels = _tagged_digits(12)
  sets = data.barcoded_mnist(jax.random.key(0), data.make_image_dataset(images, labels, 10),
                             variant=variant, num_bits=2, copies=3, num_validation=60,
                             normalized=False)
  train, val = sets["train"], sets["validation"]
  ids_train = set(np.asarray(train.x)[:, -1, -1, 0].tolist())
  ids_val = set(np.asarray(val.x)[:, -1, -1, 0].tolist())
  assert not ids_train & ids_val                              # copies come from their own split
  num_classes = {"mnist": 10, "barcoded": 40, "mnist+barcoded": 50}[variant]
  assert train.num_classes == val.num_classes == num_classes
  if variant != "mnist":
    assert np.all(np.asarray(val.class_counts)[-40:] == 1)
    assert np.all(np.asarray(train.class_counts)[-40:] == 3)
  normed = data.barcoded_mnist(jax.random.key(0), data.make_image_dataset(images, labels, 10),
                               variant=variant, num_bits=2, copies=3, num_validation=60)
  raw = np.asarray(train.x, np.float64)
  std = raw.std(0, ddof=1)
  expected = np.where(std > 0, (raw - raw.mean(0)) / np.where(std > 0, std, 1), raw)
  np.testing.assert_allclose(normed["train"].x, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(normed["validation"].y, val.y)


def test_embedded_digits_scaled_version():
  train = data.load_images("mnist", "train")
  ds = data.barcoded(jax.random.key(0), train.x, train.y, num_bits=4, copies=5)
  assert (ds.num_examples, ds.num_classes) == (4000 + 800, 170)
  bar = np.asarray(ds.x)[4000:]
  bits = data.barcode_bits(4)[np.repeat(np.arange(16), 50)]
  np.testing.assert_array_equal(bar[:, 0, :4, 0] == 255, bits == 1)   # 0 bits: blank MNIST corner


def test_bad_inputs_are_rejected():
  images, labels = _tagged_digits(2)
  key = jax.random.key(0)
  for num_bits in (0, 11):
    with pytest.raises(ValueError, match="num_bits"):
      data.barcoded(key, images, labels, num_bits=num_bits)
  with pytest.raises(ValueError, match="copies"):
    data.barcoded(key, images, labels, num_bits=2, copies=0)
  with pytest.raises(ValueError, match="images"):
    data.barcoded(key, images.astype(np.float32), labels, num_bits=2)
  with pytest.raises(ValueError, match="images"):
    data.barcoded(key, images[..., 0], labels, num_bits=2)
  with pytest.raises(ValueError, match="too narrow"):
    data.barcoded(key, images[:, :, :5], labels, num_bits=6)
  with pytest.raises(ValueError, match="every digit"):
    data.barcoded(key, images[labels != 4], labels[labels != 4], num_bits=2)
  with pytest.raises(ValueError, match="labels"):
    data.barcoded(key, images, labels + 1, num_bits=2)
  with pytest.raises(ValueError, match="variant"):
    data.barcoded_mnist(key, data.make_image_dataset(images, labels, 10), variant="mnist+noise")
  with pytest.raises(ValueError, match="codes"):
    data.stamp_barcodes(images, np.full(images.shape[0], 8), 3)


def test_exact_messages_edges_and_defaults():
  images, labels = _tagged_digits(2)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match=r"^labels must be digits in \[0, 10\), got dtype float64"):
    data.barcoded(key, images, labels.astype(np.float64), num_bits=2)
  with pytest.raises(ValueError, match=r"^labels must hold every digit 0-9 \(copies are drawn "
                                       r"per digit\); missing \[4\]$"):
    data.barcoded(key, images[labels != 4], labels[labels != 4], num_bits=2)
  with pytest.raises(ValueError, match=r"^images must be "):
    data.stamp_barcodes(images.astype(np.float32), np.zeros(20, int), 3)
  with pytest.raises(ValueError, match=r"^codes must be \[N\] = \[20\] ints in \[0, 8\), got "
                                       r"shape \(19,\)$"):
    data.stamp_barcodes(images, np.zeros(19, int), 3)
  with pytest.raises(ValueError, match=r"^plain_per_digit needs with_plain=True$"):
    data.barcoded(key, images, labels, num_bits=2, with_plain=False, plain_per_digit=1)
  with pytest.raises(ValueError, match=r"^plain_per_digit must be >= 0, got -1$"):
    data.barcoded(key, images, labels, num_bits=2, plain_per_digit=-1)
  assert data.barcoded(key, images, labels, num_bits=2, copies=1,
                       plain_per_digit=2).class_counts[:10].tolist() == [2] * 10  # all of them
  ds = data.make_image_dataset(images, labels, 10)
  with pytest.raises(ValueError, match=r"^num_validation must be >= 1, got 0$"):
    data.train_validation_split(key, ds, 0)
  # Paper H's default: 10 bits, 10 x 2^10 barcoded classes after the 10 plain digits.
  assert data.barcoded(key, images, labels, copies=1).num_classes == 10 + 10 * 1024
  # barcoded_mnist hands plain_per_digit to the training split.
  sets = data.barcoded_mnist(key, data.make_image_dataset(*_tagged_digits(12), 10), num_bits=1,
                             num_validation=60, plain_per_digit=2, normalized=False)
  assert sets["train"].class_counts[:10].tolist() == [2] * 10
