"""What each experiment binary reproduces, and the criteria that decide whether it held.

One module per binary, ``experiments/claims/<binary>.py``, defines
``EXPERIMENT``: the presets `experiments.reproduce` runs at each scale, the
figures they write (paper, figure number, PNG), and the claims, each a sentence
from a paper, a function that reads the numbers from the run's own result files,
and explicit thresholds on those numbers. Nothing here is a result: a claim
holds or not only by what a run wrote.

Example:
  >>> from experiments import claims
  >>> claim = claims.Claim(
  ...     paper="H", figure="Fig 4", run="quick",
  ...     statement="GD makes little progress on rare classes; Adam does.",
  ...     measure=lambda run: {"ratio": run.summary["gd"]["rare"] / run.summary["adam"]["rare"]},
  ...     criteria=(claims.at_least("ratio", 5.0),))
  >>> claim.evaluate(claims.RunResult("quick", {"gd": {"rare": 3.0}, "adam": {"rare": 0.3}}))
  Verdict(status='held', numbers={'ratio': 10.0}, failed=(), error=None)
  >>> str(claim.criteria[0])
  'ratio ≥ 5'
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Every experiment binary, in the order `experiments.reproduce` runs them
# (cheap and foundational first). A binary missing here fails tests/test_reproduce.py.
BINARIES = (
    "theory_figures",
    "curvature_linear",
    "heavy_tailed_linear",
    "unigram_scaling",
    "token_frequencies",
    "curvature_cnn",
    "transformer_last_layer",
    "reweighting_mnist",
    "transformer_ptb",
    "barcoded_mnist",
    "imagenet_resnet",
)

PAPERS = {
    "H": "Heavy-Tailed Class Imbalance and Why Adam Outperforms Gradient Descent on "
         "Language Models (Kunstner et al., 2024)",
    "R": "Why Loss Re-weighting Works If You Stop Early: Training Dynamics of "
         "Unconstrained Features (Zhao and Thrampoulidis)",
    "S": "Provable Benefit of Sign Descent: A Minimal Model Under Heavy-Tailed Class "
         "Imbalance (arXiv 2512.00763)",
}


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


def at_least(name: str, value: float) -> Criterion:
  return Criterion(name, ">=", value)


def at_most(name: str, value: float) -> Criterion:
  return Criterion(name, "<=", value)


@dataclasses.dataclass(frozen=True)
class RunResult:
  """One finished preset run of a binary: its ``summary.json`` and its directory."""
  run: str
  summary: Mapping[str, Any]
  path: str | None = None

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
    paper: "H", "R" or "S" (see `PAPERS`).
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
  """What `experiments.reproduce` needs to know about one binary.

  Attributes:
    binary: module name under ``experiments/``.
    cpu_runs: presets run by ``--scale=cpu``, each with its wall time in seconds
      measured by ``experiments.reproduce --jobs=2`` on the 2-core reference
      machine (for the progress estimate).
    paper_runs: presets run by ``--scale=paper``.
    figures: the figures the runs write.
    claims: the claims their numbers decide.
    gpu_only: paper figures this binary reproduces only at paper scale (GPU).
  """
  binary: str
  cpu_runs: Mapping[str, float]
  paper_runs: Sequence[str]
  figures: Sequence[Figure] = ()
  claims: Sequence[Claim] = ()
  gpu_only: Sequence[str] = ()

  def runs(self, scale: str) -> dict[str, float | None]:
    if scale == "cpu":
      return dict(self.cpu_runs)
    return {preset: None for preset in self.paper_runs}


def load(binary: str) -> Experiment:
  """The `Experiment` declared in ``experiments/claims/<binary>.py``."""
  experiment = importlib.import_module(f"experiments.claims.{binary}").EXPERIMENT
  if experiment.binary != binary:
    raise ValueError(f"experiments/claims/{binary}.py declares binary {experiment.binary!r}")
  return experiment


def load_all() -> list[Experiment]:
  return [load(binary) for binary in BINARIES]


def group_losses(entry: Mapping[str, Any]) -> tuple[float, float]:
  """(most frequent group, rarest group) final loss of a summary entry."""
  losses = entry["final_group_losses"]
  return losses[0], losses[-1]
