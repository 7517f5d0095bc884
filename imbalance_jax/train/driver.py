"""The sweep driver: a sweep run to the end in segments, checkpointed, dropping decided members.

`run_sweep` runs a `Sweep` as one compiled call or, with checkpoints or member
dropping, in segments: `segment_step` is a pure function from one `Progress`
(sweep state, history so far, `LiveMembers`: the host-side record of which
member each state slot holds and what the dropped ones left) to the next, and
`SegmentCheckpoints` saves the `Progress` after each segment (orbax commits a
checkpoint only once fully written), so a long (paper-scale) sweep resumes from
its last segment to the same result.

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

A dropped member's result (what a reader of the returned `SweepResult` sees):

* ``history``: the real values up to the last step logged before the drop,
  NaN from then on (also the final entry); integer/bool metrics are 0.
* ``final_loss`` and ``params``: NaN (not computed).
* ``initial_loss``: real; ``max_loss`` and ``finite``: as at the drop (later
  steps are not tracked). ``LossStats.diverged`` is True, as without dropping.
* ``dropped_at``: the step of the drop, -1 for members that ran to the end.

Scores, the diverged set and the selected step size are therefore the same as
without dropping; `imbalance_jax.train.tune_sweep` reruns the one step size
whose numbers are reported if it holds a dropped member (see there).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding

from imbalance_jax import _checks
from imbalance_jax.train.checkpoint import quiet_orbax, set_aside
from imbalance_jax.train.loop import Train, TrainResult
from imbalance_jax.train.selection import diverged_so_far
from imbalance_jax.train.sweep import Layout, Sweep, gather_members, to_host
from imbalance_jax.train.members import LiveMembers, _blank, _bucket


@flax.struct.dataclass
class SweepResult(TrainResult):
  """A sweep's `TrainResult` (numpy leaves ``[S, L, ...]``) and where members were dropped.

  ``dropped_at`` is int ``[S, L]``: the step after which member ``(s, l)`` stopped
  being computed, -1 if it ran to the end (see the module doc for its other fields).
  """

  dropped_at: np.ndarray


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


@dataclasses.dataclass(frozen=True)
class Progress:
  """A segmented sweep between two segments: what `SegmentCheckpoints` saves.

  Attributes:
    state: the sweep's `TrainState`, leaves ``[padded seeds, W, ...]`` (on device).
    history: numpy leaves ``[S, L, T', ...]``: the history logged so far
      (NaN, or 0 for integer metrics, where not yet logged or dropped).
    members: the `LiveMembers` record of ``state``'s slots.
  """

  state: Any
  history: Any
  members: LiveMembers


@dataclasses.dataclass(frozen=True)
class SegmentPlan:
  """How a sweep is cut into segments and which members are dropped between them."""

  segment_steps: int
  num_segments: int
  logs_per_segment: int  # history entries one segment adds
  drop_decided: bool
  threshold: float
  layout: Layout
  sharding: NamedSharding | None  # of the state's members; None on one device


def _drop_decided(state, members: LiveMembers, threshold: float, step: int, layout: Layout,
                  sharding) -> tuple[Any, LiveMembers]:
  """Drops the members decided after ``step`` steps; gathers the state if ``W`` shrinks."""
  initial, max_loss, finite = to_host((state.initial_loss, state.max_loss, state.finite))
  members = members.drop(diverged_so_far(initial, max_loss, finite, threshold), initial,
                         max_loss, finite, step)
  live = (members.cols >= 0).sum(axis=1).max()
  width = min(members.width, layout.pad_width(_bucket(int(live))))
  if width == members.width:
    return state, members
  index, members = members.compact(width)
  return gather_members(state, index, sharding), members


def segment_step(sweep: Sweep, data, progress: Progress, segment: int,
                 plan: SegmentPlan) -> Progress:
  """The sweep after ``segment + 1`` segments, given ``progress`` after ``segment`` (untouched).

  The live members advance ``plan.segment_steps`` steps on ``data`` (as placed
  by `Sweep.init`) and their history is recorded; with ``plan.drop_decided``
  the members decided by then are dropped (not after the last segment: those
  runs are complete anyway). With no live member left nothing is computed.
  """
  if not progress.members.any_live():
    return progress
  state, segment_history = sweep.run(progress.state, data, plan.segment_steps)
  start, count = segment * plan.logs_per_segment, plan.logs_per_segment
  history = jax.tree.map(np.copy, progress.history)
  jax.tree.map(lambda out, new: progress.members.scatter(out[:, :, start:start + count], new),
               history, to_host(segment_history))
  members = progress.members
  if plan.drop_decided and segment + 1 < plan.num_segments:
    state, members = _drop_decided(state, members, plan.threshold,
                                   (segment + 1) * plan.segment_steps, plan.layout, plan.sharding)
  return Progress(state, history, members)


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


class SegmentCheckpoints:
  """The `Progress` of a segmented sweep after its latest segment, one orbax checkpoint.

  ``save(n, progress)`` commits the progress after ``n`` segments under
  ``directory/<n>`` (the previous one is deleted); `restore` reads the latest
  back. PRNG keys in the state are saved as their raw data.
  """

  def __init__(self, directory: str | os.PathLike):
    self._directory = os.path.abspath(os.fspath(directory))
    self._manager = self._open()

  def _open(self):
    with quiet_orbax():
      return ocp.CheckpointManager(self._directory,
                                   options=ocp.CheckpointManagerOptions(max_to_keep=1))

  def restore(self, fresh: Progress, sharding: NamedSharding | None = None
              ) -> tuple[int, Progress]:
    """``(segments done, progress)`` of the latest checkpoint; ``(0, fresh)`` if none.

    A checkpoint damaged on disk is set aside with a warning
    (`imbalance_jax.train.checkpoint.set_aside`) and the round starts afresh.

    Args:
      fresh: the sweep before its first segment; gives the saved trees'
        structure, dtypes and key types.
      sharding: where the restored state goes (None: one device).
    """
    try:
      return self._restore(fresh, sharding)
    except Exception as error:  # noqa: BLE001  orbax/tensorstore raise many kinds
      self.close()
      set_aside(self._directory, error, "sweep segment checkpoint")
      self._manager = self._open()
      return 0, fresh

  def _restore(self, fresh: Progress, sharding: NamedSharding | None) -> tuple[int, Progress]:
    done = self._manager.latest_step() or 0
    if not done:
      return 0, fresh
    with quiet_orbax():
      meta = self._manager.restore(done, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    width, state = int(meta["width"]), fresh.state
    num_slots = fresh.members.cols.shape[0]
    if width != fresh.members.width:  # the saved state had members dropped: shape it alike
      state = gather_members(state, np.zeros((num_slots, width), int), sharding)
    abstract = {"state": _abstract(_keys_to_data(state)), "history": _abstract(fresh.history),
                "cols": jax.ShapeDtypeStruct((num_slots, width), fresh.members.cols.dtype),
                "dropped": _abstract(fresh.members.dropped)}
    with quiet_orbax():
      restored = self._manager.restore(done, args=ocp.args.Composite(
          sweep=ocp.args.StandardRestore(abstract))).sweep
    state = _data_to_keys(restored["state"], state)
    if sharding is not None:
      state = jax.device_put(state, sharding)
    members = LiveMembers(np.asarray(restored["cols"]), restored["dropped"])
    return done, Progress(state, restored["history"], members)

  def save(self, segments_done: int, progress: Progress) -> None:
    """Commits ``progress``, the sweep after ``segments_done`` segments (returns once written)."""
    tree = {"state": _keys_to_data(progress.state), "history": progress.history,
            "cols": progress.members.cols, "dropped": progress.members.dropped}
    with quiet_orbax():
      self._manager.save(segments_done, args=ocp.args.Composite(
          sweep=ocp.args.StandardSave(tree),
          meta=ocp.args.JsonSave({"width": int(progress.members.width)})))
      self._manager.wait_until_finished()

  def close(self) -> None:
    with quiet_orbax():
      self._manager.close()


def _check_segment_steps(train: Train, segment_steps: int | None, drop_decided: bool) -> int:
  if segment_steps is None:
    segment_steps = (default_segment_steps(train.num_steps, train.log_every) if drop_decided
                     else train.num_steps)
  segment_steps = _checks.check_int("segment_steps", segment_steps, minimum=1)
  if train.num_steps % segment_steps or segment_steps % train.log_every:
    raise ValueError(f"segment_steps={segment_steps} must divide num_steps={train.num_steps} "
                     f"and be a multiple of log_every={train.log_every}")
  return segment_steps


def _start(sweep: Sweep, state, data, plan: SegmentPlan) -> Progress:
  """The sweep before its first segment: every member live, nothing logged."""
  layout = plan.layout
  grid = (layout.num_seeds, layout.num_rates)
  num_logged = plan.num_segments * plan.logs_per_segment + 1
  segment_shape = jax.eval_shape(lambda s, d: sweep.run(s, d, plan.segment_steps), state, data)[1]
  history = jax.tree.map(lambda a: _blank(grid + (num_logged,) + a.shape[3:], a.dtype),
                         segment_shape)
  return Progress(state, history, LiveMembers.start(layout, np.dtype(state.max_loss.dtype)))


def _assemble(sweep: Sweep, data, progress: Progress, layout: Layout) -> SweepResult:
  """The `SweepResult` ``[S, L, ...]``: live members finished, dropped ones as at the drop."""
  members, dropped = progress.members, progress.members.dropped
  grid = (layout.num_seeds, layout.num_rates)
  result, final = to_host(sweep.finish(progress.state, data))
  history = jax.tree.map(np.copy, progress.history)
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

  return SweepResult(params=jax.tree.map(params_out, result.params), history=history,
                     dropped_at=dropped["at"], **fields)


def run_sweep(sweep: Sweep, params_S, data, learning_rates_L, *, keys_S=None,
              checkpoint_dir: str | None = None, segment_steps: int | None = None,
              on_segment: Callable[[int, int], None] | None = None,
              drop_decided: bool = False, threshold: float = 1.5) -> SweepResult:
  """Runs a sweep to the end, optionally in checkpointed segments, dropping decided members.

  With one segment, or without ``checkpoint_dir`` and ``drop_decided``,
  this is one compiled call
  ``sweep(params_S, data, learning_rates_L, keys_S)``. Otherwise the run
  advances ``segment_steps`` steps at a time (`segment_step`, one compiled
  program per member-count bucket); with ``checkpoint_dir`` the `Progress`
  is saved after each segment (`SegmentCheckpoints`), and a rerun resumes
  from the last saved segment to the same result.

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

  Returns:
    `SweepResult` with numpy leaves ``[S, L, ...]``, ``dropped_at`` included.

  Example:
    >>> from imbalance_jax import data, models, optim, train
    >>> keys = jax.random.split(jax.random.key(0), 2)
    >>> data_S = jax.vmap(lambda k: data.heavy_tailed_labels(k, m=3))(keys)
    >>> model = models.LinearSoftmax(data_S.num_classes)
    >>> params_S = jax.vmap(lambda k: model.init(k, data_S.x[0, :1]))(keys)
    >>> run = train.make_train(train.classification_objective(model.apply),
    ...                        optim.injectable("sign_descent", 0.0), num_steps=12, log_every=3)
    >>> result = run_sweep(train.Sweep(run), params_S, data_S, [1e-2, 1e3],
    ...                    drop_decided=True, segment_steps=3)
    >>> result.dropped_at               # 1e3 blew up in the first 3 steps
    array([[-1,  3],
           [-1,  3]])
    >>> bool(np.isnan(result.final_loss[0, 1])), result.history["loss"].shape
    (True, (2, 2, 5))
  """
  train = sweep.train
  _checks.check_positive("threshold", threshold)
  segment_steps = _check_segment_steps(train, segment_steps, drop_decided)
  num_segments = train.num_steps // segment_steps
  if num_segments == 1 or (not drop_decided and checkpoint_dir is None):
    result = to_host(sweep(params_S, data, learning_rates_L, keys_S))
    return SweepResult(**{f.name: getattr(result, f.name) for f in dataclasses.fields(result)},
                       dropped_at=np.full(result.final_loss.shape, -1))

  layout, state, placed = sweep.init(params_S, data, learning_rates_L, keys_S)
  plan = SegmentPlan(segment_steps=segment_steps, num_segments=num_segments,
                     logs_per_segment=segment_steps // train.log_every,
                     drop_decided=drop_decided, threshold=threshold, layout=layout,
                     sharding=None if layout.num_devices == 1 else Sweep.member_sharding(layout))
  progress, done = _start(sweep, state, placed, plan), 0
  checkpoints = None if checkpoint_dir is None else SegmentCheckpoints(checkpoint_dir)
  try:
    if checkpoints is not None:
      done, progress = checkpoints.restore(progress, plan.sharding)
    for segment in range(done, num_segments):
      progress = segment_step(sweep, placed, progress, segment, plan)
      if checkpoints is not None:
        checkpoints.save(segment + 1, progress)
      if on_segment is not None:
        on_segment(segment + 1, num_segments)
  finally:
    if checkpoints is not None:
      checkpoints.close()
  return _assemble(sweep, placed, progress, layout)
