"""The standard outputs of a binary, written one way, and their typed reading.

`write_outputs` writes a run's files into its workdir, each atomically, with
``summary.json`` last: a directory with a ``summary.json`` holds a finished
run (what `experiments.reproduce` checks), whatever was killed before.

`RunSummary` is one run's entry of ``summary.json`` read back as attributes
(``learning_rate``, ``final_loss``, ``final_group_losses`` with group 0 the
most frequent, and any other key the binary wrote); `run_summaries` finds
every such entry of a summary, nested under a data set's name or not.

Example:
  >>> entry = RunSummary.from_json({"learning_rate": 0.1, "final_loss": 0.5,
  ...                               "final_group_losses": [0.1, 2.0], "scores": {}})
  >>> entry.rarest_loss / entry.frequent_loss, entry.scores
  (20.0, {})
  >>> sorted(run_summaries({"mnist": {"gd": entry.to_json()}, "eps": 0.1}, "mnist"))
  ['gd']
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

from imbalance_jax import results

REQUIRED = ("learning_rate", "final_loss", "final_group_losses")


@dataclasses.dataclass(frozen=True)
class RunSummary:
  """One run's ``summary.json`` entry; keys beyond `REQUIRED` read as attributes too."""

  learning_rate: float
  final_loss: float
  final_group_losses: tuple[float, ...]
  extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_json(cls, entry: Mapping[str, Any]) -> RunSummary:
    missing = [k for k in REQUIRED if k not in entry]
    if missing:
      raise KeyError(f"summary entry lacks {missing}")
    return cls(learning_rate=entry["learning_rate"], final_loss=entry["final_loss"],
               final_group_losses=tuple(entry["final_group_losses"]),
               extra={k: v for k, v in entry.items() if k not in REQUIRED})

  def to_json(self) -> dict[str, Any]:
    return {"learning_rate": self.learning_rate, "final_loss": self.final_loss,
            "final_group_losses": list(self.final_group_losses), **self.extra}

  def __getattr__(self, name: str) -> Any:
    extra = self.__dict__.get("extra", {})
    if name in extra:
      return extra[name]
    raise AttributeError(f"run summary has no {name!r}; it has "
                         f"{', '.join([*REQUIRED, *extra])}")

  @property
  def frequent_loss(self) -> float:
    """Final loss of group 0 (the most frequent classes)."""
    return self.final_group_losses[0]

  @property
  def rarest_loss(self) -> float:
    """Final loss of the last group (the rarest classes)."""
    return self.final_group_losses[-1]


def is_run_entry(entry: Any) -> bool:
  return isinstance(entry, Mapping) and all(k in entry for k in REQUIRED)


def run_summaries(summary: Mapping[str, Any], data: str | None = None) -> dict[str, RunSummary]:
  """The run entries of ``summary`` (or of ``summary[data]``), by run name."""
  scope = summary if data is None else summary[data]
  return {name: RunSummary.from_json(entry) for name, entry in scope.items()
          if is_run_entry(entry)}


def write_outputs(workdir: str, *, summary: Mapping[str, Any],
                  metrics: Iterable[Mapping[str, Any]] | None = None,
                  figures: Mapping[str, Any] | None = None,
                  arrays: Mapping[str, Mapping[str, Any]] | None = None,
                  files: Mapping[str, Any] | None = None) -> None:
  """Writes a finished run's outputs into ``workdir`` (each file atomically).

  Args:
    summary: ``summary.json`` (written last).
    metrics: records of ``metrics.jsonl``.
    figures: ``{file name: matplotlib Figure}``, saved as PNGs (and closed).
    arrays: ``{file name: {array name: array}}``, saved as ``.npz``.
    files: ``{file name: JSON-able value}``, other JSON files (e.g. ``timing.json``).
  """
  from imbalance_jax.plotting.common import save_figure  # matplotlib only when drawing

  for name, figure in (figures or {}).items():
    save_figure(figure, os.path.join(workdir, name))
  for name, named in (arrays or {}).items():
    results.write_npz(os.path.join(workdir, name), **named)
  if metrics is not None:
    results.write_jsonl(os.path.join(workdir, "metrics.jsonl"), metrics)
  for name, value in (files or {}).items():
    results.write_json(os.path.join(workdir, name), value)
  results.write_json(os.path.join(workdir, "summary.json"), summary)
