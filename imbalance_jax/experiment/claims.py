"""Claims: a paper's statement, the numbers that test it, and the thresholds they must meet.

An `Experiment` declares, for one binary, the presets `experiments.reproduce`
runs at each scale, the figures they write (paper, figure number, PNG), the
claims (each a sentence from a paper, a function that reads the numbers from
the run's own result files, and explicit thresholds on those numbers), and
what its docs row and its tests need. Nothing here is a result: a claim holds
or not only by what a run wrote.

Example:
  >>> claim = Claim(
  ...     paper="H", figure="Fig 4", run="quick",
  ...     statement="GD makes little progress on rare classes; Adam does.",
  ...     measure=lambda run: {"ratio": run.runs()["gd"].rarest_loss
  ...                                   / run.runs()["adam"].rarest_loss},
  ...     criteria=(at_least("ratio", 5.0),))
  >>> entry = lambda rare: {"learning_rate": 0.1, "final_loss": 1.0,
  ...                       "final_group_losses": [0.1, rare]}
  >>> claim.evaluate(RunResult("quick", {"gd": entry(3.0), "adam": entry(0.3)}))
  Verdict(status='held', numbers={'ratio': 10.0}, failed=(), error=None)
  >>> str(claim.criteria[0])
  'ratio ≥ 5'
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from imbalance_jax.experiment.outputs import RunSummary, run_summaries


@dataclasses.dataclass(frozen=True)
class Criterion:
  """``numbers[name] <op> value``; renders as the sentence a reader checks by eye."""
  name: str
  op: str
  value: float

  _OPS = {">=": (operator.ge, "≥"), "<=": (operator.le, "≤"), ">": (operator.gt, ">"),
          "<": (operator.lt, "<")}

  def __post_init__(self):
    if self.op not in self._OPS:
      raise ValueError(f"Criterion.op must be one of {sorted(self._OPS)}, got {self.op!r}")

  def holds(self, numbers: Mapping[str, float]) -> bool:
    value = numbers[self.name]
    return value is not None and math.isfinite(value) and self._OPS[self.op][0](value, self.value)

  def __str__(self) -> str:
    return f"{self.name} {self._OPS[self.op][1]} {self.value:g}"


@dataclasses.dataclass(frozen=True)
class RunResult:
  """One finished preset run of a binary: its ``summary.json`` and its directory."""
  run: str
  summary: Mapping[str, Any]
  path: str | None = None

  def runs(self, data: str | None = None) -> dict[str, RunSummary]:
    """The typed run entries of the summary (of ``summary[data]`` for a binary over
    several data sets): ``run.runs()["gd"].rarest_loss``."""
    return run_summaries(self.summary, data)

  def read_json(self, filename: str) -> Any:
    """Another JSON file the run wrote (e.g. ``dataset.json``)."""
    with open(os.path.join(self.path, filename)) as f:
      return json.load(f)


@dataclasses.dataclass(frozen=True)
class Verdict:
  status: str  # "held", "did not hold", "not run" or "could not measure"
  numbers: Mapping[str, float]
  failed: tuple[str, ...] = ()
  error: str | None = None


@dataclasses.dataclass(frozen=True)
class Claim:
  """A paper's statement, the numbers that test it, and the thresholds they must meet.

  Attributes:
    paper: a key of the registry's papers (e.g. "H"; see ``experiments.claims.PAPERS``).
    figure: the figure or equation, e.g. "Fig 4" or "Thm 3".
    statement: what the paper says, in our words.
    run: the preset run whose results are measured.
    measure: `RunResult` -> named numbers (floats).
    criteria: every one must hold for the claim to hold.
  """
  paper: str
  figure: str
  statement: str
  run: str
  measure: Callable[[RunResult], Mapping[str, float]]
  criteria: tuple[Criterion, ...]

  def evaluate(self, result: RunResult | None) -> Verdict:
    if result is None:
      return Verdict("not run", {})
    try:
      numbers = {k: float(v) if v is not None else None
                 for k, v in self.measure(result).items()}
      failed = tuple(str(c) for c in self.criteria if not c.holds(numbers))
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError, OSError) as e:
      return Verdict("could not measure", {}, error=f"{type(e).__name__}: {e}")
    return Verdict("did not hold" if failed else "held", numbers, failed)


@dataclasses.dataclass(frozen=True)
class Figure:
  """A PNG a run writes, and the paper figure it corresponds to."""
  paper: str
  figure: str
  run: str
  file: str
  caption: str


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What the registry knows about one binary: runs, figures, claims, docs and tests.

  Attributes:
    binary: module name under ``experiments/``.
    cpu_runs: presets run by ``--scale=cpu``, each with its wall time in seconds
      measured by ``experiments.reproduce --jobs=2`` on the 2-core reference
      machine (for the progress estimate and the order: cheapest first).
    paper_runs: presets run by ``--scale=paper``.
    figures: the figures the runs write.
    claims: the claims their numbers decide.
    gpu_only: paper figures this binary reproduces only at paper scale (GPU).
    notes: the docs index's notes column.
    test_flags: ``--config.<field>=<value>`` flags of a tiny run (seconds on a CPU;
      embedded data only) that the kill-and-resume test runs.
    kill_after: the resume test kills the tiny run right after this many units
      of work were saved (segments, finished runs, progress entries).
    slow_test: the resume test of this binary runs only with ``-m slow``.
  """
  binary: str
  cpu_runs: Mapping[str, float]
  paper_runs: Sequence[str]
  figures: Sequence[Figure] = ()
  claims: Sequence[Claim] = ()
  gpu_only: Sequence[str] = ()
  notes: str = ""
  test_flags: Sequence[str] = ()
  kill_after: int = 1
  slow_test: bool = False

  def runs(self, scale: str) -> dict[str, float | None]:
    if scale == "cpu":
      return dict(self.cpu_runs)
    return {preset: None for preset in self.paper_runs}


def at_least(name: str, value: float) -> Criterion:
  return Criterion(name, ">=", value)


def at_most(name: str, value: float) -> Criterion:
  return Criterion(name, "<=", value)
