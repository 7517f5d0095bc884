"""Result files written atomically: JSON, JSONL and npz.

Every writer renders into a temporary file beside the target and renames it
into place (``os.replace``), so an interrupted run never leaves a half-written
file behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
  """Converts numpy/JAX scalars and arrays (and nested containers) to JSON types.

  Non-finite floats become ``None`` (JSON has no NaN/inf).

  Example:
    >>> to_jsonable({"loss": np.float32(0.5), "nan": float("nan"), "x": jnp.arange(3),
    ...              "steps": (np.int64(0), 10)})
    {'loss': 0.5, 'nan': None, 'x': [0, 1, 2], 'steps': [0, 10]}
  """
  if isinstance(value, Mapping):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if hasattr(value, "to_dict"):  # ml_collections.ConfigDict
    return to_jsonable(value.to_dict())
  if hasattr(value, "__array__") and not isinstance(value, (str, bytes)):
    array = np.asarray(value)
    return to_jsonable(array.item() if array.ndim == 0 else array.tolist())
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, (np.integer, np.floating, np.bool_)):
    return to_jsonable(value.item())
  return value


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
  """Yields a temporary path; on success renames it to ``path``."""
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
  os.close(fd)
  try:
    yield tmp
    # mkstemp makes the file private (0600); give it the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_json(path, obj: Any) -> None:
  """Writes ``to_jsonable(obj)`` as indented JSON, atomically.

  Example:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "summary.json")
    >>> write_json(path, {"final_loss": np.float32(0.25), "max_loss": float("inf")})
    >>> with open(path) as f:
    ...   json.load(f)
    {'final_loss': 0.25, 'max_loss': None}
  """
  with atomic_path(path) as tmp, open(tmp, "w") as f:
    json.dump(to_jsonable(obj), f, indent=2, sort_keys=False)
    f.write("\n")


def write_jsonl(path, records: Iterable[Mapping[str, Any]]) -> None:
  """Writes one JSON object per line (records may be a generator), atomically."""
  with atomic_path(path) as tmp, open(tmp, "w") as f:
    for record in records:
      f.write(json.dumps(to_jsonable(record)) + "\n")


def read_jsonl(path) -> list[dict[str, Any]]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def write_npz(path, **arrays) -> None:
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
