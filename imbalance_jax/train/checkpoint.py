"""Orbax checkpoints of finished units of work: `ResultStore`.

`ResultStore` keeps one orbax checkpoint per finished unit of work (e.g. one
optimizer's sweep over a set of step sizes), so a rerun of an interrupted
experiment skips what is done. Orbax commits a checkpoint only once it is
fully written, so a crash never leaves a half-written one that would be
loaded. A sweep's own segments are checkpointed by
`imbalance_jax.train.driver.SegmentCheckpoints` (see `imbalance_jax.train.run_sweep`).
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any

from absl import logging

import jax
import orbax.checkpoint as ocp

_SAFE_KEY = re.compile(r"[^A-Za-z0-9_.=-]+")


@contextlib.contextmanager
def quiet_orbax():
  """Orbax logs every file operation at INFO; keep experiment logs readable."""
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


def set_aside(path: str, error: BaseException, what: str) -> str:
  """Renames a checkpoint (or progress file) that cannot be read to ``<path>.damaged[-k]``.

  Nothing is deleted (the files stay for inspection); the caller recomputes the
  work. Returns the new name.
  """
  target, k = f"{path}.damaged", 1
  while os.path.exists(target):
    k += 1
    target = f"{path}.damaged-{k}"
  os.rename(path, target)
  logging.warning("%s at %s cannot be read (%s: %s); moved it to %s and recomputing it (delete "
                  "that copy once you no longer need it)", what, path,
                  type(error).__name__, str(error)[:300], target)
  return target


class ResultStore:
  """Named pytrees of arrays saved under ``directory/<key>`` (one orbax checkpoint each).

  Example:
    >>> import tempfile
    >>> store = ResultStore(tempfile.mkdtemp())
    >>> if store.load("adam+m/round0") is None:
    ...   store.save("adam+m/round0", {"final_loss": np.array([0.5, 0.25])})
    >>> store.load("adam+m/round0")["final_loss"]
    array([0.5 , 0.25])
  """

  def __init__(self, directory: str | os.PathLike):
    self.directory = os.path.abspath(os.fspath(directory))
    self._checkpointer = ocp.StandardCheckpointer()

  def _path(self, key: str) -> str:
    parts = [_SAFE_KEY.sub("_", part) for part in key.split("/") if part]
    if not parts:
      raise ValueError(f"key must name a checkpoint, got {key!r}")
    return os.path.join(self.directory, *parts)

  def load(self, key: str) -> Any | None:
    """The pytree saved under ``key`` (numpy leaves), or None if there is none.

    A checkpoint damaged on disk (e.g. a partial copy) is set aside with a
    warning (`set_aside`) and reads as None, so the caller recomputes it.
    """
    path = self._path(key)
    if not os.path.isdir(path):
      return None
    try:
      with quiet_orbax():
        return self._checkpointer.restore(path)
    except Exception as error:  # noqa: BLE001  orbax/tensorstore raise many kinds
      set_aside(path, error, f"checkpoint {key!r}")
      return None

  def save(self, key: str, tree: Any) -> None:
    """Saves ``tree`` under ``key`` (replacing what was there); returns once it is committed."""
    path = self._path(key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with quiet_orbax():
      self._checkpointer.save(path, jax.device_get(tree), force=True)
      self._checkpointer.wait_until_finished()
