"""The experiment layer: a study is a `Config`, a ``run(config, workdir)`` and its claims.

Example (a whole binary, ``experiments/<name>.py``)::

  from imbalance_jax import experiment as ex
  from imbalance_jax.experiment import fields

  CONFIG = ex.Config(
      presets={"quick": dict(m=7, num_steps=300), "paper": dict(m=11, num_steps=1000)},
      fields=dict(m=fields.Int(minimum=1, help="frequency levels"),
                  num_steps=fields.Int(minimum=1), log_every=fields.Int(default=10),
                  runs=fields.Runs(default="gd,adam"), exponents=fields.Exponents(default=""),
                  refine_rounds=fields.Int(minimum=0, default=1),
                  learning_rate=fields.LearningRate(default=0.0)))

  def run(config, workdir):
    ...  # data, model, params
    tuned = ex.tune_runs(config.runs, ex.train_builder(model.apply, ...), params_S, data,
                         grid=ex.Grid.from_config(config), store=ex.store(workdir))
    ex.write_outputs(workdir, summary=tuned.summaries(), metrics=tuned.records())

  if __name__ == "__main__":
    ex.launch(CONFIG, run)

Modules: `fields` (field kinds), `config` (`Config`, `Values`), `cli` (flags,
workdir checks, `Progress`), `runs` (`tune_runs`), `outputs` (`write_outputs`,
`RunSummary`), `claims` (`Claim`, `Experiment`), `plan` (a preset's step on abstract
shapes: FLOPs, memory, hours).
"""

import os

from imbalance_jax.experiment import fields, plan
from imbalance_jax.experiment.claims import (Claim, Criterion, Experiment, Figure, RunResult,
                                             Verdict, at_least, at_most)
from imbalance_jax.experiment.cli import Progress, launch, prepare_workdir, run_in, start
from imbalance_jax.experiment.config import (Config, Values, check_memory, check_step_schedule,
                                             float_bytes, network_bytes)
from imbalance_jax.experiment.outputs import RunSummary, run_summaries, write_outputs
from imbalance_jax.experiment.runs import Grid, TunedRuns, train_builder, tune_runs


def store(workdir: str):
  """The `train.ResultStore` of a binary's finished units of work: ``workdir/checkpoints``."""
  from imbalance_jax import train
  return train.ResultStore(os.path.join(workdir, "checkpoints"))


__all__ = ["Claim", "Config", "Criterion", "Experiment", "Figure", "Grid", "Progress",
           "RunResult", "RunSummary", "TunedRuns", "Values", "Verdict", "at_least", "at_most",
           "check_memory", "check_step_schedule", "fields", "float_bytes", "launch",
           "network_bytes", "plan",
           "prepare_workdir", "run_in", "run_summaries", "start", "store", "train_builder",
           "tune_runs", "write_outputs"]
