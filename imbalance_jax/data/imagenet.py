"""ImageNet subsets of paper H (App. A.2): Heavy-Tailed ImageNet and small ImageNet.

* ``"heavy_tail"``: classes sorted by frequency, ``ceil(1300 / k)`` images of
  the k-th (n = 10,217 over 1000 classes), via `heavy_tail_counts`.
* ``"uniform"``: 10 images per class (n = 10,000), via `uniform_subsample`'s
  rule.

Images come from a local copy, never downloaded: a TFDS-prepared
``imagenet2012`` directory (read with ``tfds.data_source``; no TensorFlow)
or an image folder (``root/<class>/<image>``, classes sorted by name, as
torchvision's ``ImageFolder``). Only the labels of the whole split are read
first; then only the chosen images are decoded (PIL, in a thread pool),
resized so the shorter side is ``resize_size`` and centre-cropped to
``image_size`` (256 -> 224, torchvision's standard evaluation transform).
The paper trained on random 224x224 crops (``RandomResizedCrop`` + flips) of
the same images; a fixed array data set keeps the centre crop. Normalise
with `imagenet_normalizer` (ImageNet channel statistics) or `fit_normalizer`.

This is GPU-scale: 10,217 RGB images at 224x224 are 1.5 GB of uint8, and
reading the labels of the 1.28M-image training split takes minutes.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.data import imbalance
from imbalance_jax.data.images import make_image_dataset, open_tfds_split, read_tfds_examples
from imbalance_jax.data.normalization import Normalizer

IMAGENET_SUBSETS = ("heavy_tail", "uniform")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TFDS_NAME = "imagenet2012"
_SPLIT_NAMES = {"train", "val", "validation", "test"}


def imagenet_normalizer() -> Normalizer:
  """Per-channel ImageNet statistics in raw pixel units (x 255), for uint8 inputs."""
  return Normalizer(mean=jnp.asarray(IMAGENET_MEAN, jnp.float32) * 255,
                    std=jnp.asarray(IMAGENET_STD, jnp.float32) * 255)


def resize_and_center_crop(image, image_size: int = 224, resize_size: int = 256) -> np.ndarray:
  """Resizes the shorter side to ``resize_size`` (bilinear) and centre-crops ``image_size``.

  Args:
    image: uint8 ``[H, W, C]`` array, a PIL image, or encoded bytes (JPEG/PNG).
    image_size: side of the square output, ``<= resize_size``.
    resize_size: shorter side after resizing.

  Returns:
    uint8 RGB ``[image_size, image_size, 3]``.

  Example:
    >>> resize_and_center_crop(np.zeros((300, 400, 3), np.uint8), 8, 10).shape
    (8, 8, 3)
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image_size = _checks.check_int("image_size", image_size, minimum=1)
  resize_size = _checks.check_int("resize_size", resize_size, minimum=image_size)
  if isinstance(image, (bytes, bytearray)):
    image = Image.open(io.BytesIO(image))
  elif isinstance(image, np.ndarray):
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
      raise ValueError(f"image must be uint8 [H, W(, C)], got {image.dtype} {image.shape}")
    image = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
  image = image.convert("RGB")
  width, height = image.size
  scale = resize_size / min(width, height)
  new_w, new_h = max(resize_size, round(width * scale)), max(resize_size, round(height * scale))
  image = image.resize((new_w, new_h), Image.BILINEAR)
  left, top = (new_w - image_size) // 2, (new_h - image_size) // 2
  return np.asarray(image.crop((left, top, left + image_size, top + image_size)), np.uint8)


def _subset_counts(subset, class_counts, per_class, max_per_class):
  if subset == "heavy_tail":
    return imbalance.heavy_tail_counts(class_counts, max_per_class)
  per_class = _checks.check_int("per_class", per_class, minimum=1)
  if per_class > class_counts.min():
    raise ValueError(f"per_class={per_class} exceeds the size of class "
                     f"{int(class_counts.argmin())} ({int(class_counts.min())} images)")
  return np.full(class_counts.size, per_class)


def _image_folder(root: pathlib.Path):
  classes = sorted(p.name for p in root.iterdir() if p.is_dir())
  paths, labels = [], []
  for label, name in enumerate(classes):
    files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    paths += files
    labels += [label] * len(files)
  return paths, np.asarray(labels, np.int32), len(classes)


def _find_source(data_dir: pathlib.Path, split: str):
  if any(data_dir.glob(f"{TFDS_NAME}/*/dataset_info.json")):
    return "tfds", data_dir
  if (data_dir / split).is_dir():
    return "folder", data_dir / split
  subdirs = {p.name for p in data_dir.iterdir() if p.is_dir()} if data_dir.is_dir() else set()
  if subdirs and not subdirs & _SPLIT_NAMES:                     # data_dir is the class folder
    return "folder", data_dir
  raise FileNotFoundError(
      f"No ImageNet under {data_dir}: put a TFDS-prepared {TFDS_NAME} at "
      f"{data_dir / TFDS_NAME}/<version>/ (dataset_info.json and "
      f"{TFDS_NAME}-{split}.array_record-* files), or an image folder "
      f"{data_dir / split}/<class>/<image>.JPEG (one folder per class). Nothing is downloaded.")


class _Source:
  """Labels of a split and a reader of encoded images by index."""

  def __init__(self, data_dir, split: str):
    self.kind, self.root = _find_source(pathlib.Path(os.fspath(data_dir)).expanduser(), split)
    self.split = split
    if self.kind == "tfds":
      self._source, info = open_tfds_split(TFDS_NAME, split, self.root, image_decoding=False)
      self.num_classes = info.features["label"].num_classes
      self.size = len(self._source)
    else:
      self._paths, self._labels, self.num_classes = _image_folder(self.root)
      self.size = len(self._paths)

  def labels(self) -> np.ndarray:
    if self.kind == "tfds":   # a full pass over the records (images are not decoded)
      return np.asarray([int(e["label"]) for e in read_tfds_examples(self._source)], np.int32)
    return self._labels

  def describe(self, index: int) -> str:
    """Where example ``index`` lives, for error messages."""
    if self.kind == "tfds":
      return f"record {index} of {TFDS_NAME}/{self.split} under {self.root}"
    return str(self._paths[index])

  def read(self, indices) -> list[bytes]:
    if self.kind == "tfds":
      return [e["image"] for e in read_tfds_examples(self._source, indices)]
    return [self._paths[i].read_bytes() for i in indices]


def imagenet_labels(data_dir, split: str = "train") -> np.ndarray:
  """Labels ``[N]`` of a local ImageNet split, in record order.

  For a TFDS directory this reads every record once (the whole split: ~140 GB
  for ImageNet's training set); pass the result to `load_imagenet_subset`
  (``labels=``) to draw several subsets without reading it again.
  """
  return _Source(data_dir, split).labels()


def load_imagenet_subset(key: jax.Array, data_dir, subset: str = "heavy_tail", *,
                         split: str = "train", per_class: int = 10,
                         max_per_class: int | None = None, image_size: int = 224,
                         resize_size: int = 256, num_threads: int = 8, labels=None):
  """Heavy-Tailed ImageNet or small ImageNet from a local copy, as uint8 images.

  Args:
    key: PRNG key choosing the images of each class.
    data_dir: TFDS data directory holding ``imagenet2012/<version>/``, or an
      image folder: ``data_dir/<split>/<class>/*``, or ``data_dir/<class>/*``
      when ``data_dir`` has no split folders (train/val/validation/test).
    subset: ``"heavy_tail"`` (``ceil(max_per_class / k)`` of the k-th most
      frequent class) or ``"uniform"`` (``per_class`` of every class).
    split: the split to subsample.
    per_class: images per class of the uniform subset.
    max_per_class: ``n_1`` of the heavy-tailed subset; default: the largest
      class (1300 for ImageNet's training split).
    image_size, resize_size: see `resize_and_center_crop`.
    num_threads: threads decoding images.
    labels: the split's labels from `imagenet_labels` (skips the label pass).

  Returns:
    uint8 `Dataset` ``x [n, image_size, image_size, 3]`` with the original
    class ids (1000 classes for ImageNet).

  Raises:
    FileNotFoundError: when ``data_dir`` holds neither layout (the message
      says what to put where).
    ValueError: for a bad ``subset``, a class smaller than ``per_class`` or
      ``labels`` that do not fit the split.

  Example:
    >>> ds = load_imagenet_subset(jax.random.key(0), "~/tensorflow_datasets")  # doctest: +SKIP
    >>> ds.num_examples, ds.num_classes  # doctest: +SKIP
    (10217, 1000)
  """
  _checks.check_choice("subset", subset, IMAGENET_SUBSETS)
  num_threads = _checks.check_int("num_threads", num_threads, minimum=1)
  source = _Source(data_dir, split)
  labels = source.labels() if labels is None else np.asarray(labels)
  if labels.shape != (source.size,) or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be ints [{source.size}] (the split's size), got "
                     f"{labels.dtype} {labels.shape}")
  if labels.size == 0:
    raise FileNotFoundError(f"the {split} split under {source.root} holds no images")
  class_counts = np.bincount(labels, minlength=source.num_classes)
  wanted = _subset_counts(subset, class_counts, per_class, max_per_class)
  chosen = imbalance.per_class_indices(key, labels, wanted, source.num_classes)
  encoded = source.read(chosen)

  def decode(i):
    try:
      return resize_and_center_crop(encoded[i], image_size, resize_size)
    except Exception as error:  # noqa: BLE001  PIL raises many kinds for a damaged file
      raise ValueError(f"cannot decode the image {source.describe(int(chosen[i]))} "
                       f"({type(error).__name__}: {error}); replace or remove that file") from error

  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    images = list(pool.map(decode, range(len(encoded))))
  return make_image_dataset(np.stack(images), labels[chosen], source.num_classes)
