"""Run names: ``<optimizer>[+m][@<weighting>]``, e.g. ``"adam+m"``, ``"gd+m@inverse_sqrt"``.

``+m`` means momentum 0.9 (for Adam: beta_1 = 0.9, standard Adam); without it
momentum is 0 (Adam with beta_1 = 0). ``@inverse`` / ``@inverse_sqrt`` train
on the loss reweighted by 1/pi_k or 1/sqrt(pi_k) (paper H, Fig. 22).
"""

from __future__ import annotations

import dataclasses

from imbalance_jax.losses import OBJECTIVES
from imbalance_jax.optim.aliases import OPTIMIZERS

MOMENTUM = 0.9
PAPER_RUNS = ("gd", "gd+m", "normalized_gd", "normalized_gd+m", "sign_descent",
              "sign_descent+m", "adam", "adam+m")


@dataclasses.dataclass(frozen=True)
class RunSpec:
  name: str
  optimizer: str
  momentum: float
  weighting: str


def parse_run(name: str, default_weighting: str = "none") -> RunSpec:
  """Parses a run name; raises ValueError naming ``run`` for unknown parts.

  Example:
    >>> parse_run("gd+m@inverse_sqrt")
    RunSpec(name='gd+m@inverse_sqrt', optimizer='gd', momentum=0.9, weighting='inverse_sqrt')
  """
  base, _, weighting = name.strip().partition("@")
  optimizer = base.removesuffix("+m")
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"run {name!r}: optimizer must be one of {tuple(OPTIMIZERS)}")
  weighting = weighting or default_weighting
  if weighting not in OBJECTIVES:  # a class weighting or a long-tail loss (losses.OBJECTIVES)
    raise ValueError(f"run {name!r}: weighting must be one of {OBJECTIVES}")
  return RunSpec(name=name.strip(), optimizer=optimizer,
                 momentum=MOMENTUM if base.endswith("+m") else 0.0, weighting=weighting)


def parse_runs(names: str | list[str], default_weighting: str = "none") -> list[RunSpec]:
  """Parses a comma-separated string (or list) of run names; rejects duplicates and empties."""
  if isinstance(names, str):
    names = [n for n in names.split(",") if n.strip()]
  specs = [parse_run(n, default_weighting) for n in names]
  if not specs:
    raise ValueError("runs must name at least one run")
  seen = [s.name for s in specs]
  if len(set(seen)) != len(seen):
    raise ValueError(f"runs contains duplicates: {seen}")
  return specs
