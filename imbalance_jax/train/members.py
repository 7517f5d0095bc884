"""Host-side bookkeeping of a segmented sweep's members: which slot holds whom, who dropped.

`LiveMembers` is what `imbalance_jax.train.driver.run_sweep` keeps between two
segments on the host: the learning-rate column held by each slot of the
vmapped state, and the loss tracking a dropped member left behind.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from imbalance_jax.train.sweep import Layout


def _bucket(count: int) -> int:
  """Smallest power of two >= count (and >= 1)."""
  return 1 << max(count - 1, 0).bit_length()


def _fill_value(dtype):
  return np.nan if np.issubdtype(dtype, np.inexact) else 0


def _blank(shape, dtype):
  return np.full(shape, _fill_value(dtype), dtype)


@dataclasses.dataclass(frozen=True)
class LiveMembers:
  """Host-side record of a segmented sweep: the member in each state slot, what dropped ones left.

  The state holds ``W`` slots per seed (``W`` shrinks as members are dropped);
  slot ``(s, j)`` holds member ``(s, cols[s, j])``. Methods return a new
  record; only `scatter` writes, into the array it is given.

  Attributes:
    cols: int ``[padded seeds, W]``: the learning-rate column of each slot's
      member, -1 for padding and dropped members.
    dropped: ``[S, L]`` arrays: ``"initial"``, ``"max"``, ``"finite"``, a
      dropped member's loss tracking as at the drop (NaN / True for the
      others), and ``"at"``, the step of the drop (-1: not dropped).

  Example:
    >>> members = LiveMembers(np.array([[0, -1, 2], [-1, 1, -1]]), dropped={})
    >>> [a.tolist() for a in members.slots()]     # seed, slot, column of each live slot
    [[0, 0, 1], [0, 2, 1], [0, 2, 1]]
    >>> index, members = members.compact(2)       # the state gathered to 2 slots per seed
    >>> index.tolist(), members.cols.tolist()     # padding repeats slot 0
    ([[0, 2], [1, 1]], [[0, 2], [1, -1]])
  """

  cols: np.ndarray
  dropped: dict[str, np.ndarray]

  @classmethod
  def start(cls, layout: Layout, loss_dtype) -> LiveMembers:
    """Every real member of ``layout``'s grid in its own slot, none dropped."""
    cols = np.full((layout.padded_seeds, layout.padded_rates), -1)
    cols[:layout.num_seeds, :layout.num_rates] = np.arange(layout.num_rates)
    grid = (layout.num_seeds, layout.num_rates)
    dropped = {"initial": _blank(grid, loss_dtype), "max": _blank(grid, loss_dtype),
               "finite": np.ones(grid, bool), "at": np.full(grid, -1)}
    return cls(cols, dropped)

  @property
  def width(self) -> int:
    """``W``, the slots per seed in the state."""
    return self.cols.shape[1]

  def any_live(self) -> bool:
    return bool((self.cols >= 0).any())

  def slots(self):
    """``(slot_seed, slot_index, rate_column)`` of every live real slot."""
    s, j = np.nonzero(self.cols >= 0)
    return s, j, self.cols[s, j]

  def scatter(self, out, values):
    """``out[s, l, ...] = values[s, j, ...]`` for every live slot (numpy, in place)."""
    s, j, col = self.slots()
    out[s, col] = values[s, j]

  def drop(self, decided_SW, initial_SW, max_loss_SW, finite_SW, step: int) -> LiveMembers:
    """Live members marked in ``decided_SW`` dropped after ``step`` steps, their tracking kept."""
    s, j, col = self.slots()
    newly = decided_SW[s, j]
    s, j, col = s[newly], j[newly], col[newly]
    dropped = {name: np.array(value) for name, value in self.dropped.items()}
    dropped["initial"][s, col] = initial_SW[s, j]
    dropped["max"][s, col] = max_loss_SW[s, j]
    dropped["finite"][s, col] = finite_SW[s, j]
    dropped["at"][s, col] = step
    cols = self.cols.copy()
    cols[s, j] = -1
    return LiveMembers(cols, dropped)

  def compact(self, width: int) -> tuple[np.ndarray, LiveMembers]:
    """``(gather indices [S', width], record)`` keeping live slots first."""
    order = np.argsort(self.cols < 0, axis=1, kind="stable")[:, :width]
    live = np.take_along_axis(self.cols, order, axis=1) >= 0
    index = np.where(live, order, order[:, :1])  # padding repeats the first slot
    cols = np.where(live, np.take_along_axis(self.cols, order, axis=1), -1)
    return index, LiveMembers(cols, self.dropped)
