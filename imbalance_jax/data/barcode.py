"""Barcoded MNIST (paper H, App. A.2; details as in the authors' release).

A barcode ``b`` is a ``num_bits``-bit number drawn in row 0, columns
``0 .. num_bits-1`` of the image, one pixel per bit, most significant bit in
column 0; a 1 bit sets the pixel to 255 (the raw uint8 maximum), a 0 bit
leaves it unchanged. All ``2**num_bits`` barcodes are used (all-zeros
included). For every (barcode, digit) pair, ``copies`` images are drawn with
replacement from that digit's images; the label is ``10 b + digit``, shifted
by 10 when the plain digits are kept with labels 0-9.

At paper scale (``num_bits=10``, 5 copies, 50,000 plain training digits):
Barcoded-only has 10,240 classes x 5 = 51,200 examples; MNIST+Barcoded has
101,200 examples over 10,250 classes (10 with ~5k, 10,240 with 5). Smaller
``num_bits`` keep the same two groups (10 frequent plain classes, ``10 2^b``
rare barcoded ones) at a CPU-friendly size; the groups hold equal shares
when ``5 * 10 * 2^b`` matches the plain digits, e.g. the embedded 4,000
training digits split 3,200 / 800 with ``num_bits=6``: 3,200 plain + 3,200
barcoded examples over 650 classes (plain classes 64x more frequent).

Everything is vectorised: images are gathered with one index array and the
bits written with one ``where``; no loop runs over barcodes or digits.
"""

from __future__ import annotations

import jax
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.data import imbalance
from imbalance_jax.data.images import NUM_DIGIT_CLASSES, check_images, make_image_dataset
from imbalance_jax.data.normalization import fit_normalizer, normalize
from imbalance_jax.types import Dataset

MAX_BITS = 10
BAR_VALUE = 255
BARCODED_VARIANTS = ("mnist", "barcoded", "mnist+barcoded")


def barcode_bits(num_bits: int) -> np.ndarray:
  """Bits of every barcode, ``[2**num_bits, num_bits]`` (row b, column j = bit of column j).

  Column 0 holds the most significant bit, so barcode ``b`` reads as the
  binary number ``bits[b, 0] bits[b, 1] ...``.

  Example:
    >>> barcode_bits(2).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
  """
  num_bits = _check_bits(num_bits)
  codes = np.arange(2**num_bits)[:, None]
  shifts = np.arange(num_bits - 1, -1, -1)[None, :]
  return ((codes >> shifts) & 1).astype(np.uint8)


def _check_bits(num_bits) -> int:
  num_bits = _checks.check_int("num_bits", num_bits, minimum=1)
  if num_bits > MAX_BITS:
    raise ValueError(f"num_bits must be in [1, {MAX_BITS}], got {num_bits}")
  return num_bits


def _check_digits(images, labels, name="images"):
  images = check_images(name, images)
  labels = np.asarray(labels)
  if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise ValueError(f"labels must have shape [N] = [{images.shape[0]}], got {labels.shape}")
  if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or (
      labels.max() >= NUM_DIGIT_CLASSES):
    raise ValueError(f"labels must be digits in [0, {NUM_DIGIT_CLASSES}), got dtype "
                     f"{labels.dtype} and range [{labels.min()}, {labels.max()}]")
  counts = np.bincount(labels, minlength=NUM_DIGIT_CLASSES)
  if np.any(counts == 0):
    raise ValueError(f"labels must hold every digit 0-9 (copies are drawn per digit); "
                     f"missing {np.flatnonzero(counts == 0).tolist()}")
  return images, labels.astype(np.int32), counts


def stamp_barcodes(images, codes, num_bits: int) -> np.ndarray:
  """Draws barcode ``codes[i]`` into ``images[i]`` (row 0, MSB in column 0).

  Args:
    images: uint8 ``[N, H, W, C]`` with ``W >= num_bits``.
    codes: ints ``[N]`` in ``[0, 2**num_bits)``.
    num_bits: barcode length.

  Returns:
    A new uint8 array: 1 bits set to 255 in every channel, 0 bits unchanged.

  Example:
    >>> out = stamp_barcodes(np.zeros((1, 2, 3, 1), np.uint8), [2], 2)
    >>> out[0, :, :, 0].tolist()
    [[255, 0, 0], [0, 0, 0]]
  """
  num_bits = _check_bits(num_bits)
  images = check_images("images", images)
  if images.shape[2] < num_bits:
    raise ValueError(f"images are {images.shape[2]} pixels wide, too narrow for "
                     f"num_bits={num_bits}")
  codes = np.asarray(codes)
  if codes.shape != images.shape[:1] or codes.min() < 0 or codes.max() >= 2**num_bits:
    raise ValueError(f"codes must be [N] = [{images.shape[0]}] ints in [0, {2**num_bits}), got "
                     f"shape {codes.shape}")
  bits = barcode_bits(num_bits)[codes].astype(bool)             # [N, B]
  out = images.copy()
  out[:, 0, :num_bits, :] = np.where(bits[:, :, None], np.uint8(BAR_VALUE),
                                     out[:, 0, :num_bits, :])
  return out


def barcoded(key: jax.Array, images, labels, *, num_bits: int = 10, copies: int = 5,
             with_plain: bool = True, plain_per_digit: int | None = None) -> Dataset:
  """Barcoded MNIST on raw uint8 images: a pure function of ``key``.

  Examples are laid out plain digits first (their order kept), then the
  barcoded copies class by class: barcode-major, digit, copy.

  Args:
    key: PRNG key choosing the copies (and the plain subsample).
    images: uint8 ``[N, H, W, C]`` digits (``W >= num_bits``).
    labels: digits ``[N]`` in ``[0, 10)``; every digit must appear.
    num_bits: barcode length in ``[1, 10]``: ``10 * 2**num_bits`` barcoded
      classes.
    copies: images per (barcode, digit), drawn with replacement, ``>= 1``.
    with_plain: keep the plain digits (labels 0-9, barcoded labels + 10):
      MNIST+Barcoded; ``False`` gives Barcoded-only.
    plain_per_digit: keep this many plain images of each digit (drawn without
      replacement) instead of all; sets the imbalance between the two groups
      (ratio ``plain_per_digit / copies``), from balanced to paper H's
      ~1000x. Only with ``with_plain``.

  Returns:
    uint8 `Dataset` with ``10 * 2**num_bits`` (+10 with plain) classes.

  Raises:
    ValueError: naming the argument, for bad shapes, missing digits,
      ``num_bits`` outside ``[1, 10]``, ``copies < 1`` or more plain images
      per digit than there are.

  Example:
    Twenty blank 3 x 4 "digits", two of each; 2 bits give 4 barcodes x 10 digits:

    >>> images, labels = np.zeros((20, 3, 4, 1), np.uint8), np.arange(20) % 10
    >>> ds = barcoded(jax.random.key(0), images, labels, num_bits=2, copies=1)
    >>> ds.num_classes, ds.num_examples  # 10 plain + 40 barcoded; 20 + 40 x 1 copy
    (50, 60)
    >>> int(ds.y[20 + 30]), ds.x[20 + 30, 0, :, 0].tolist()  # barcode 3 = 0b11 on digit 0
    (40, [255, 255, 0, 0])
  """
  num_bits = _check_bits(num_bits)
  copies = _checks.check_int("copies", copies, minimum=1)
  images, labels, digit_counts = _check_digits(images, labels)
  if images.shape[2] < num_bits:
    raise ValueError(f"images are {images.shape[2]} pixels wide, too narrow for "
                     f"num_bits={num_bits}")
  if plain_per_digit is not None and not with_plain:
    raise ValueError("plain_per_digit needs with_plain=True")
  key_copies, key_plain = jax.random.split(key)
  num_codes = 2**num_bits
  # Class c = 10 b + d holds `copies` draws from digit d's images.
  codes = np.repeat(np.arange(num_codes), NUM_DIGIT_CLASSES * copies)
  digits = np.tile(np.repeat(np.arange(NUM_DIGIT_CLASSES), copies), num_codes)
  order = np.argsort(labels, kind="stable")                      # images grouped by digit
  starts = np.concatenate([[0], np.cumsum(digit_counts)[:-1]])
  draws = imbalance.host_rng(key_copies).integers(0, digit_counts[digits])
  chosen = order[starts[digits] + draws]
  x_bar = stamp_barcodes(images[chosen], codes, num_bits)
  y_bar = (NUM_DIGIT_CLASSES * codes + digits).astype(np.int32)
  num_classes = NUM_DIGIT_CLASSES * num_codes
  if not with_plain:
    return make_image_dataset(x_bar, y_bar, num_classes)
  plain = np.arange(labels.size)
  if plain_per_digit is not None:
    plain_per_digit = _checks.check_int("plain_per_digit", plain_per_digit, minimum=0)
    if plain_per_digit > digit_counts.min():
      raise ValueError(f"plain_per_digit={plain_per_digit} exceeds the images of the rarest "
                       f"digit ({digit_counts.min()})")
    plain = imbalance.per_class_indices(
        key_plain, labels, np.full(NUM_DIGIT_CLASSES, plain_per_digit), NUM_DIGIT_CLASSES)
  return make_image_dataset(np.concatenate([images[plain], x_bar]),
                            np.concatenate([labels[plain], y_bar + NUM_DIGIT_CLASSES]),
                            num_classes + NUM_DIGIT_CLASSES)


def train_validation_split(key: jax.Array, dataset: Dataset,
                           num_validation: int = 10_000) -> tuple[Dataset, Dataset]:
  """Splits a data set by a seeded permutation: MNIST-train's 60,000 -> 50,000 / 10,000.

  Args:
    key: PRNG key of the permutation.
    dataset: the `Dataset` to split (any dtype).
    num_validation: examples held out, in ``[1, N)``.

  Returns:
    ``(train, validation)`` with the same ``num_classes``.

  Example:
    >>> from imbalance_jax.data.images import make_image_dataset
    >>> ds = make_image_dataset(np.zeros((20, 3, 4, 1), np.uint8), np.arange(20) % 10, 10)
    >>> train, val = train_validation_split(jax.random.key(0), ds, 5)
    >>> train.num_examples, val.num_examples, val.num_classes
    (15, 5, 10)
  """
  num_validation = _checks.check_int("num_validation", num_validation, minimum=1)
  n = dataset.num_examples
  if num_validation >= n:
    raise ValueError(f"num_validation must be < the {n} examples, got {num_validation}")
  perm = imbalance.host_rng(key).permutation(n)
  return tuple(imbalance.take(dataset, np.sort(part))
               for part in (perm[num_validation:], perm[:num_validation]))


def plain_vs_barcoded_groups(num_classes: int) -> tuple[np.ndarray, list[str]]:
  """Paper H's two groups of MNIST+Barcoded: ``(class_to_group [C], group names)``.

  Classes ``0..9`` are the plain digits (group 0, frequent), the rest barcoded
  (group 1, rare).

  Example:
    >>> plain_vs_barcoded_groups(12)[0]
    array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1], dtype=int32)
  """
  groups = (np.arange(num_classes) >= NUM_DIGIT_CLASSES).astype(np.int32)
  return groups, ["plain digits (frequent)", "barcoded (rare)"]


def barcoded_mnist(key: jax.Array, dataset: Dataset, *, variant: str = "mnist+barcoded",
                   num_bits: int = 10, copies: int = 5, validation_copies: int = 1,
                   num_validation: int = 10_000, plain_per_digit: int | None = None,
                   normalized: bool = True) -> dict[str, Dataset]:
  """The data sets of paper H Figs 2 and 14, with their validation sets.

  Splits ``dataset`` (MNIST-train) by `train_validation_split`, then builds
  ``variant`` on each part with `barcoded` (``copies`` training and
  ``validation_copies`` validation images per (barcode, digit), drawn from
  that part's digits only), and normalises both with per-pixel statistics
  fitted on the training inputs (`fit_normalizer`).

  Fig 14 compares the imbalance levels ``"mnist"`` (plain digits, 10
  balanced classes), ``"barcoded"`` (Barcoded-only: ``10 2^b`` balanced
  classes) and ``"mnist+barcoded"`` (both: heavy-tailed); ``plain_per_digit``
  sets intermediate levels between the last two (training split only).

  Returns:
    ``{"train": Dataset, "validation": Dataset}`` (float32 when
    ``normalized``, raw uint8 otherwise).

  Example:
    A stand-in for MNIST-train: 200 blank images, 20 of each digit.

    >>> from imbalance_jax.data.images import make_image_dataset
    >>> mnist = make_image_dataset(np.zeros((200, 3, 4, 1), np.uint8), np.arange(200) % 10, 10)
    >>> sets = barcoded_mnist(jax.random.key(0), mnist, num_bits=2, num_validation=100)
    >>> sets["train"].num_examples, sets["validation"].num_examples  # 100 + 40 x 5, 100 + 40 x 1
    (300, 140)
    >>> sets["train"].num_classes, sets["train"].x.dtype
    (50, dtype('float32'))
  """
  _checks.check_choice("variant", variant, BARCODED_VARIANTS)
  validation_copies = _checks.check_int("validation_copies", validation_copies, minimum=1)
  key_split, key_train, key_val = jax.random.split(key, 3)
  train, val = train_validation_split(key_split, dataset, num_validation)
  if variant == "mnist":
    if plain_per_digit is not None:
      train = imbalance.uniform_subsample(key_train, train, plain_per_digit)
    sets = {"train": train, "validation": val}
  else:
    with_plain = variant == "mnist+barcoded"
    sets = {
        "train": barcoded(key_train, train.x, train.y, num_bits=num_bits, copies=copies,
                          with_plain=with_plain, plain_per_digit=plain_per_digit),
        "validation": barcoded(key_val, val.x, val.y, num_bits=num_bits,
                               copies=validation_copies, with_plain=with_plain),
    }
  if normalized:
    normalizer = fit_normalizer(sets["train"].x)
    sets = {name: normalize(ds, normalizer) for name, ds in sets.items()}
  return sets
