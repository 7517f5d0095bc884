"""Checkpoints with orbax: finished sweep rounds and in-flight sweep segments.

`ResultStore` keeps one orbax checkpoint per finished unit of work (e.g. one
optimizer's sweep over a set of step sizes), so a rerun of an interrupted
experiment skips what is done. `run_sweep` runs a sweep in segments and saves
the full sweep state after each, so a long (paper-scale) sweep resumes from
its last segment. Orbax commits a checkpoint only once it is fully written, so
a crash never leaves a half-written one that would be loaded.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from typing import Any

from absl import logging

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from imbalance_jax.train.sweep import Sweep

_SAFE_KEY = re.compile(r"[^A-Za-z0-9_.=-]+")


@contextlib.contextmanager
def _quiet():
  """Orbax logs every file operation at INFO; keep experiment logs readable."""
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


class ResultStore:
  """Named pytrees of arrays saved under ``directory/<key>`` (one orbax checkpoint each).

  Example:
    >>> store = ResultStore(os.path.join(workdir, "checkpoints"))
    >>> if (done := store.load("adam+m/round0")) is None:
    ...   store.save("adam+m/round0", compute())
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
    """The pytree saved under ``key`` (numpy leaves), or None if there is none."""
    path = self._path(key)
    if not os.path.isdir(path):
      return None
    with _quiet():
      return self._checkpointer.restore(path)

  def save(self, key: str, tree: Any) -> None:
    path = self._path(key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with _quiet():
      self._checkpointer.save(path, jax.device_get(tree), force=True)
      self._checkpointer.wait_until_finished()


def run_sweep(sweep: Sweep, params_S, data, learning_rates_L, *,
              checkpoint_dir: str | None = None, segment_steps: int | None = None,
              on_segment: Callable[[int, int], None] | None = None):
  """Runs a sweep to the end, optionally in checkpointed segments.

  Without ``checkpoint_dir`` (or with one segment) this is one compiled call
  ``sweep(params_S, data, learning_rates_L)``. With it, the run advances
  ``segment_steps`` steps at a time (one compiled program for all segments);
  after each segment the sweep state and history so far are saved, and a rerun
  resumes from the last saved segment to the same result.

  Returns:
    `TrainResult` with numpy leaves ``[S, L, ...]``.
  """
  train = sweep.train
  segment_steps = segment_steps or train.num_steps
  if train.num_steps % segment_steps or segment_steps % train.log_every:
    raise ValueError(f"segment_steps={segment_steps} must divide num_steps={train.num_steps} "
                     f"and be a multiple of log_every={train.log_every}")
  num_segments = train.num_steps // segment_steps
  if checkpoint_dir is None or num_segments == 1:
    return jax.device_get(sweep(params_S, data, learning_rates_L))

  state = sweep.init(params_S, data, learning_rates_L)
  segment_shape = jax.eval_shape(lambda s, d: sweep.run(s, d, segment_steps), state, data)[1]
  with _quiet():
    manager = ocp.CheckpointManager(os.path.abspath(checkpoint_dir),
                                    options=ocp.CheckpointManagerOptions(max_to_keep=1))
    done = manager.latest_step() or 0
  history = None
  if done:
    abstract = {"state": jax.tree.map(ocp.utils.to_shape_dtype_struct, state),
                "history": jax.tree.map(lambda s: jax.ShapeDtypeStruct(
                    s.shape[:2] + (s.shape[2] * done,) + s.shape[3:], s.dtype), segment_shape)}
    with _quiet():
      restored = manager.restore(done, args=ocp.args.StandardRestore(abstract))
    state, history = restored["state"], restored["history"]
  for segment in range(done, num_segments):
    state, segment_history = sweep.run(state, data, segment_steps)
    history = segment_history if history is None else jax.tree.map(
        lambda a, b: jnp.concatenate([a, b], axis=2), history, segment_history)
    with _quiet():
      manager.save(segment + 1, args=ocp.args.StandardSave({"state": state, "history": history}))
      manager.wait_until_finished()
    if on_segment is not None:
      on_segment(segment + 1, num_segments)
  result, final = sweep.finish(state, data)
  history = jax.tree.map(lambda h, f: jnp.concatenate([h, f[:, :, None]], axis=2), history, final)
  with _quiet():
    manager.close()
  return jax.device_get(result.replace(history=history))
