"""Sweeps in segments: checkpoints with orbax, and dropping decided members.

`ResultStore` keeps one orbax checkpoint per finished unit of work (e.g. one
optimizer's sweep over a set of step sizes), so a rerun of an interrupted
experiment skips what is done. `run_sweep` runs a sweep in segments and saves
the full sweep state after each, so a long (paper-scale) sweep resumes from
its last segment. Orbax commits a checkpoint only once it is fully written, so
a crash never leaves a half-written one that would be loaded.

With ``drop_decided=True`` `run_sweep` also stops computing members whose
outcome the step-size selection already knows (see
`imbalance_jax.train.selection`): after each segment, a member whose loss was
NaN/inf or above ``threshold`` x its initial loss is *diverged* for good, so
it is dropped. Each seed keeps its live members in a rectangle ``[S, W]``
gathered from the sweep state (the data, one set per seed, are never copied);
``W`` is the largest live count over seeds rounded up to a power of two (and to
the devices along the learning-rate mesh axis), so a sweep of ``L`` step
sizes compiles at most ``log2(L) + 1`` segment programs. Slots past a seed's
live count repeat one of its live members and are discarded.

A dropped member's result (what a reader of the returned `TrainResult` sees):

* ``history``: the real values up to the last step logged before the drop,
  NaN from then on (also the final entry); integer/bool metrics are 0.
* ``final_loss`` and ``params``: NaN (not computed).
* ``initial_loss``: real; ``max_loss`` and ``finite``: as at the drop (later
  steps are not tracked). ``LossStats.diverged`` is True, as without dropping.
* ``dropped_at`` (in the returned ``extras``): the step of the drop, -1 for
  members that ran to the end.

Scores, the diverged set and the selected step size are therefore the same as
without dropping; `imbalance_jax.train.tune_sweep` reruns the one step size
whose numbers are reported if it holds a dropped member (see there).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from typing import Any

from absl import logging

import jax
import numpy as np
import orbax.checkpoint as ocp

from imbalance_jax import _checks
from imbalance_jax.train.loop import TrainResult
from imbalance_jax.train.selection import diverged_so_far
from imbalance_jax.train.sweep import Sweep, gather_members, to_host

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


def default_segment_steps(num_steps: int, log_every: int, max_segments: int = 10) -> int:
  """Segment length for dropping: the most segments (at most ``max_segments``) that fit.

  Segments are whole multiples of ``log_every`` and divide ``num_steps``.

  Example:
    >>> default_segment_steps(300, 10)
    30
  """
  chunks = num_steps // log_every
  segments = max(g for g in range(1, min(chunks, max_segments) + 1) if chunks % g == 0)
  return num_steps // segments


def _bucket(count: int) -> int:
  """Smallest power of two >= count (and >= 1)."""
  return 1 << max(count - 1, 0).bit_length()


def _fill_value(dtype):
  return np.nan if np.issubdtype(dtype, np.inexact) else 0


def _blank(shape, dtype):
  return np.full(shape, _fill_value(dtype), dtype)


def _is_key(leaf) -> bool:
  return jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)


def _keys_to_data(tree):
  """PRNG key leaves as their raw uint32 data (orbax saves plain arrays)."""
  return jax.tree.map(lambda a: jax.random.key_data(a) if _is_key(a) else a, tree)


def _data_to_keys(tree, like):
  return jax.tree.map(lambda a, k: jax.random.wrap_key_data(a, impl=jax.random.key_impl(k))
                      if _is_key(k) else a, tree, like)


def _abstract(tree):
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


class _Members:
  """Host-side bookkeeping of which real member ``(s, l)`` each state slot holds."""

  def __init__(self, cols_SW):
    self.cols = cols_SW  # [padded seeds, W]: learning-rate column, -1 = padding/dropped

  def real(self):
    """``(slot_seed, slot_index, rate_column)`` of every live real slot."""
    s, j = np.nonzero(self.cols >= 0)
    return s, j, self.cols[s, j]

  def scatter(self, out, values):
    """``out[s, l, ...] = values[s, j, ...]`` for every live slot (numpy, in place)."""
    s, j, col = self.real()
    out[s, col] = values[s, j]

  def compact(self, width):
    """Gather indices ``[S', width]`` keeping live slots first; updates ``cols``."""
    order = np.argsort(self.cols < 0, axis=1, kind="stable")[:, :width]
    live = np.take_along_axis(self.cols, order, axis=1) >= 0
    index = np.where(live, order, order[:, :1])  # padding repeats the first slot
    self.cols = np.where(live, np.take_along_axis(self.cols, order, axis=1), -1)
    return index


def run_sweep(sweep: Sweep, params_S, data, learning_rates_L, *, keys_S=None,
              checkpoint_dir: str | None = None, segment_steps: int | None = None,
              on_segment: Callable[[int, int], None] | None = None,
              drop_decided: bool = False, threshold: float = 1.5,
              return_extras: bool = False):
  """Runs a sweep to the end, optionally in checkpointed segments, dropping decided members.

  With one segment, or without ``checkpoint_dir`` and ``drop_decided``,
  this is one compiled call
  ``sweep(params_S, data, learning_rates_L, keys_S)``. Otherwise the run
  advances ``segment_steps`` steps at a time (one compiled program per
  member-count bucket); with ``checkpoint_dir`` the sweep state and history
  so far are saved after each segment, and a rerun resumes from the last
  saved segment to the same result.

  Args:
    sweep, params_S, data, learning_rates_L, keys_S: as for `Sweep`.
    checkpoint_dir: where to save segments (None: no checkpoints).
    segment_steps: steps per segment; must divide ``num_steps`` and be a
      multiple of ``log_every``. Default: one segment, or with
      ``drop_decided`` `default_segment_steps`.
    on_segment: called with ``(segments done, segments)`` after each.
    drop_decided: stop computing members that diverged (see module doc for
      what their results hold).
    threshold: divergence threshold on loss / initial loss (as in selection).
    return_extras: also return ``{"dropped_at": int [S, L]}``.

  Returns:
    `TrainResult` with numpy leaves ``[S, L, ...]`` (and the extras).

  Example:
    >>> from imbalance_jax import data, models, optim, train
    >>> keys = jax.random.split(jax.random.key(0), 2)
    >>> data_S = jax.vmap(lambda k: data.heavy_tailed_labels(k, m=3))(keys)
    >>> model = models.LinearSoftmax(data_S.num_classes)
    >>> params_S = jax.vmap(lambda k: model.init(k, data_S.x[0, :1]))(keys)
    >>> run = train.make_train(train.classification_objective(model.apply),
    ...                        optim.injectable("sign_descent", 0.0), num_steps=12, log_every=3)
    >>> result, extras = run_sweep(train.Sweep(run), params_S, data_S, [1e-2, 1e3],
    ...                            drop_decided=True, segment_steps=3, return_extras=True)
    >>> extras["dropped_at"]            # 1e3 blew up in the first 3 steps
    array([[-1,  3],
           [-1,  3]])
    >>> bool(np.isnan(result.final_loss[0, 1])), result.history["loss"].shape
    (True, (2, 2, 5))
  """
  train = sweep.train
  _checks.check_positive("threshold", threshold)
  if segment_steps is None:
    segment_steps = (default_segment_steps(train.num_steps, train.log_every) if drop_decided
                     else train.num_steps)
  segment_steps = _checks.check_int("segment_steps", segment_steps, minimum=1)
  if train.num_steps % segment_steps or segment_steps % train.log_every:
    raise ValueError(f"segment_steps={segment_steps} must divide num_steps={train.num_steps} "
                     f"and be a multiple of log_every={train.log_every}")
  num_segments = train.num_steps // segment_steps
  if num_segments == 1 or (not drop_decided and checkpoint_dir is None):
    result = to_host(sweep(params_S, data, learning_rates_L, keys_S))
    if return_extras:
      return result, {"dropped_at": np.full(result.final_loss.shape, -1)}
    return result

  layout, state, placed = sweep.init(params_S, data, learning_rates_L, keys_S)
  num_seeds, num_rates = layout.num_seeds, layout.num_rates
  sharding = None if layout.num_devices == 1 else Sweep.member_sharding(layout)
  cols = np.full((layout.padded_seeds, layout.padded_rates), -1)
  cols[:num_seeds, :num_rates] = np.arange(num_rates)
  members = _Members(cols)
  grid = (num_seeds, num_rates)
  per_segment = segment_steps // train.log_every
  segment_shape = jax.eval_shape(lambda s, d: sweep.run(s, d, segment_steps), state, placed)[1]
  history = jax.tree.map(lambda a: _blank(grid + (num_segments * per_segment + 1,) + a.shape[3:],
                                          a.dtype), segment_shape)
  tracked_dtype = np.dtype(state.max_loss.dtype)
  dropped = {"initial": _blank(grid, tracked_dtype), "max": _blank(grid, tracked_dtype),
             "finite": np.ones(grid, bool), "at": np.full(grid, -1)}

  manager, done = None, 0
  if checkpoint_dir is not None:
    with _quiet():
      manager = ocp.CheckpointManager(os.path.abspath(checkpoint_dir),
                                      options=ocp.CheckpointManagerOptions(max_to_keep=1))
      done = manager.latest_step() or 0
  if done:
    with _quiet():
      width = manager.restore(done, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    width = int(width["width"])
    if width != state.max_loss.shape[1]:  # the saved state had members dropped
      state = gather_members(state, np.zeros((layout.padded_seeds, width), int), sharding)
    abstract = {"state": _abstract(_keys_to_data(state)), "history": _abstract(history),
                "cols": jax.ShapeDtypeStruct((layout.padded_seeds, width), cols.dtype),
                "dropped": _abstract(dropped)}
    with _quiet():
      restored = manager.restore(done, args=ocp.args.Composite(
          sweep=ocp.args.StandardRestore(abstract))).sweep
    state = _data_to_keys(restored["state"], state)
    if sharding is not None:
      state = jax.device_put(state, sharding)
    history, dropped = restored["history"], restored["dropped"]
    members.cols = np.asarray(restored["cols"])

  for segment in range(done, num_segments):
    if (members.cols >= 0).any():
      state, segment_history = sweep.run(state, placed, segment_steps)
      segment_history = to_host(segment_history)
      start = segment * per_segment
      jax.tree.map(lambda out, new: members.scatter(out[:, :, start:start + per_segment], new),
                   history, segment_history)
      if drop_decided and segment + 1 < num_segments:
        state = _drop(state, members, dropped, threshold, (segment + 1) * segment_steps,
                      layout, sharding)
    if manager is not None:
      width = {"width": int(members.cols.shape[1])}
      with _quiet():
        manager.save(segment + 1, args=ocp.args.Composite(
            sweep=ocp.args.StandardSave({"state": _keys_to_data(state), "history": history,
                                         "cols": members.cols, "dropped": dropped}),
            meta=ocp.args.JsonSave(width)))
        manager.wait_until_finished()
    if on_segment is not None:
      on_segment(segment + 1, num_segments)
  if manager is not None:
    with _quiet():
      manager.close()

  result, final = to_host(sweep.finish(state, placed))
  jax.tree.map(lambda out, new: members.scatter(out[:, :, -1], new), history, final)
  fields = {}
  for name in ("initial_loss", "final_loss", "max_loss", "finite"):
    value = np.asarray(getattr(result, name))
    fields[name] = _blank(grid, value.dtype)
    members.scatter(fields[name], value)
  is_dropped = dropped["at"] >= 0
  fields["initial_loss"] = np.where(is_dropped, dropped["initial"], fields["initial_loss"])
  fields["max_loss"] = np.where(is_dropped, dropped["max"], fields["max_loss"])
  fields["finite"] = np.where(is_dropped, dropped["finite"], fields["finite"])

  def params_out(leaf):
    out = _blank(grid + leaf.shape[2:], leaf.dtype)
    members.scatter(out, leaf)
    return out

  out = TrainResult(params=jax.tree.map(params_out, result.params), history=history, **fields)
  return (out, {"dropped_at": dropped["at"]}) if return_extras else out


def _drop(state, members: _Members, dropped, threshold, step, layout, sharding):
  """Marks members decided after ``step`` steps and compacts the state if W shrinks."""
  initial, max_loss, finite = to_host((state.initial_loss, state.max_loss, state.finite))
  decided = diverged_so_far(initial, max_loss, finite, threshold)
  s, j, col = members.real()
  newly = decided[s, j]
  s, j, col = s[newly], j[newly], col[newly]
  dropped["initial"][s, col] = initial[s, j]
  dropped["max"][s, col] = max_loss[s, j]
  dropped["finite"][s, col] = finite[s, j]
  dropped["at"][s, col] = step
  members.cols[s, j] = -1
  live = (members.cols >= 0).sum(axis=1).max()
  width = min(members.cols.shape[1], layout.pad_width(_bucket(int(live))))
  if width == members.cols.shape[1]:
    return state
  return gather_members(state, members.compact(width), sharding)
