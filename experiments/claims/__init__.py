"""The registry: every experiment binary, what it reproduces, and the criteria of its claims.

One module per binary, ``experiments/claims/<binary>.py``, defines ``EXPERIMENT``
(an `imbalance_jax.experiment.Experiment`): the presets `experiments.reproduce`
runs at each scale, the figures they write, the claims their numbers decide,
its row of the docs index, and the tiny flags its tests run. Everything else is
derived from these modules: `BINARIES` (every module here, cheapest CPU runs
first), the docs index table (`docs_table`), the kill-and-resume and bad-input
tests. Adding a study is its binary plus its claims module; nothing to list.

Example:
  >>> from experiments import claims
  >>> "heavy_tailed_linear" in claims.BINARIES
  True
  >>> claims.load("heavy_tailed_linear").claims[0].paper in claims.PAPERS
  True
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from imbalance_jax import results
from imbalance_jax.experiment import RunSummary
from imbalance_jax.experiment.claims import (Claim, Criterion, Experiment, Figure, RunResult,
                                             Verdict, at_least, at_most)

PAPERS = {
    "H": "Heavy-Tailed Class Imbalance and Why Adam Outperforms Gradient Descent on "
         "Language Models (Kunstner et al., 2024)",
    "R": "Why Loss Re-weighting Works If You Stop Early: Training Dynamics of "
         "Unconstrained Features (Zhao and Thrampoulidis)",
    "S": "Provable Benefit of Sign Descent: A Minimal Model Under Heavy-Tailed Class "
         "Imbalance (arXiv 2512.00763)",
    "F": "A Theoretical Analysis of the Learning Dynamics under Class Imbalance (Francazi et "
         "al., ICML 2023)",
    "W": "Muon Outperforms Adam in Tail-End Associative Memory Learning (Wang et al., "
         "arXiv 2509.26030)",
    "X": "Adam Exploits l_inf-geometry of Loss Landscape via Coordinate-wise Adaptivity (Xie, "
         "Mohamadi and Li, ICLR 2025, arXiv 2410.08198)",
    "Z": "Deconstructing What Makes a Good Optimizer for Language Models (Zhao et al., ICLR "
         "2025, arXiv 2407.07972)",
    "ZH": "Why Transformers Need Adam: A Hessian Perspective (Zhang et al., NeurIPS 2024, "
          "arXiv 2402.16788)",
    "D": "Towards Quantifying the Hessian Structure of Neural Networks (Dong et al., 2025, "
         "arXiv 2505.02809)",
    "KB": "Scaling Laws for Gradient Descent and Sign Descent for Linear Bigram Models under "
          "Zipf's Law (Kunstner and Bach, NeurIPS 2025, arXiv 2505.19227)",
    "LA": "Long-tail learning via logit adjustment (Menon et al., ICLR 2021, arXiv 2007.07314)",
}


def load(binary: str) -> Experiment:
  """The `Experiment` declared in ``experiments/claims/<binary>.py``."""
  experiment = importlib.import_module(f"experiments.claims.{binary}").EXPERIMENT
  if experiment.binary != binary:
    raise ValueError(f"experiments/claims/{binary}.py declares binary {experiment.binary!r}")
  return experiment


def _discover() -> tuple[str, ...]:
  names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
  # Cheap and foundational first: by the CPU presets' total measured time.
  return tuple(sorted(names, key=lambda name: (sum(load(name).cpu_runs.values()), name)))


def load_all() -> list[Experiment]:
  return [load(binary) for binary in BINARIES]


def binary_module(binary: str):
  """The binary's module ``experiments.<binary>`` (its ``CONFIG`` and ``run``)."""
  return importlib.import_module(f"experiments.{binary}")


def _figure_key(name: str) -> tuple:
  paper, _, figure = name.partition(" ")
  number = re.search(r"\d+", figure)
  return (paper, not figure.startswith("Fig"), int(number.group()) if number else 0, figure)


def docs_table() -> str:
  """The experiments table of ``docs/index.md``, from the registry and each binary's presets."""
  rows = ["| binary | figures | notes | presets |", "|---|---|---|---|"]
  for experiment in load_all():
    shown = [f.paper + " " + f.figure for f in experiment.figures]
    shown += [c.paper + " " + c.figure for c in experiment.claims]
    figures = sorted(dict.fromkeys(shown), key=_figure_key)
    figures += [f"{g} (GPU)" for g in experiment.gpu_only if g not in figures]
    presets = list(binary_module(experiment.binary).CONFIG.presets)
    rows.append(f"| `{experiment.binary}` | {', '.join(figures)} | {experiment.notes} | "
                f"{', '.join(presets)} |")
  return "\n".join(rows)


def write_docs_index(path: str) -> None:
  """Replaces the experiments table in the docs index at ``path`` by `docs_table`."""
  with open(path) as f:
    lines = f.read().split("\n")
  start = lines.index("| binary | figures | notes | presets |")
  end = start
  while end < len(lines) and lines[end].startswith("|"):
    end += 1
  table = docs_table()  # first: a failure must not leave the index half written
  with results.atomic_path(path) as tmp, open(tmp, "w") as f:
    f.write("\n".join(lines[:start] + [table] + lines[end:]))


def group_losses(entry) -> tuple[float, float]:
  """(most frequent group, rarest group) final loss of a summary entry."""
  entry = entry if isinstance(entry, RunSummary) else RunSummary.from_json(entry)
  return entry.frequent_loss, entry.rarest_loss


# Every experiment binary, in the order `experiments.reproduce` runs them (last: the claims
# modules import this package's names).
BINARIES = _discover()

__all__ = ["BINARIES", "Claim", "Criterion", "Experiment", "Figure", "PAPERS", "RunResult",
           "Verdict", "at_least", "at_most", "binary_module", "docs_table", "group_losses",
           "load", "load_all", "write_docs_index"]
