"""The command line of every experiment binary: flags, checks before any work, resuming.

A binary is ``run(config, workdir)`` plus, at its end::

  if __name__ == "__main__":
    experiment.launch(CONFIG, run)

`launch` defines ``--workdir`` (required) and ``--config`` (the binary's
`Config` defaults, overridable field by field, e.g. ``--config.preset=small``),
then `start` refuses bad input before any work: an unknown ``--config.<field>``,
a field outside its declared range, a size that does not fit in memory, a
``--workdir`` that is a file, or a ``--workdir`` holding the results of a
different config. A rerun with the same ``--workdir`` and config resumes.

From Python (a notebook, another study) `run_in` does the same checks::

  summary = experiment.run_in(heavy_tailed_linear, "/tmp/htl", preset="quick", m=5)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from absl import app, flags, logging
from ml_collections import config_flags

from imbalance_jax import results
from imbalance_jax.experiment.config import Config, Values
from imbalance_jax.train import distributed
from imbalance_jax.train.checkpoint import set_aside


def prepare_workdir(workdir: str | None, config: Values | Any) -> str:
  """Creates ``workdir`` (or checks an existing one) and writes ``config.json``.

  An existing ``config.json`` must equal ``config``: the checkpoints in the
  directory are then results of the same config and a rerun resumes from them.

  Raises:
    ValueError: naming ``--workdir`` if it is empty, names a file, lies under a
      file, cannot be written, or holds the results of a different config.
  """
  raw = config.raw if isinstance(config, Values) else config
  if not workdir:
    raise ValueError(f"--workdir must name a directory, got {workdir!r}")
  path = os.path.abspath(os.path.expanduser(workdir))
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f"--workdir={workdir} names an existing file; it must name a directory "
                     "(new or existing)")
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f"--workdir={workdir} cannot be created: {existing} is a file")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"--workdir={workdir} cannot be written: no write permission on {existing}")
  config_path = os.path.join(path, "config.json")
  if os.path.exists(config_path):
    try:
      with open(config_path) as f:
        previous = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f"--workdir={workdir}: cannot read its config.json ({e}); pass a new "
                       "--workdir") from None
    current = results.to_jsonable(raw)
    if previous != current:
      changed = sorted(k for k in set(previous) | set(current)
                       if previous.get(k) != current.get(k))
      diff = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
      raise ValueError(f"--workdir={workdir} holds results of a different config ({diff}); "
                       "rerun with the same config to resume, or pass a new --workdir")
  os.makedirs(path, exist_ok=True)
  results.write_json(config_path, raw)
  return path


class Progress:
  """JSON results of a binary's finished units of work, kept for resuming.

  Held in ``workdir/progress.json``; every `put` rewrites the whole file
  atomically (`imbalance_jax.results`), so a killed run leaves the previous
  complete file, never a truncated one. Values go through
  `results.to_jsonable`, and `put` returns the stored form, so a fresh run and
  a resumed run continue with identical values. For array results use
  `imbalance_jax.train.ResultStore`.

  Example:
    >>> import tempfile
    >>> import numpy as np
    >>> workdir = tempfile.mkdtemp()
    >>> progress = Progress(workdir)
    >>> if "quadratic" not in progress:
    ...   stored = progress.put("quadratic", {"loss": np.float32(0.5), "steps": (1, 2)})
    >>> progress["quadratic"]  # the JSON form: plain floats, tuples become lists
    {'loss': 0.5, 'steps': [1, 2]}
    >>> Progress(workdir).values()  # a resumed run reads the same values back
    [{'loss': 0.5, 'steps': [1, 2]}]
  """

  def __init__(self, workdir: str, filename: str = "progress.json"):
    self.path = os.path.join(workdir, filename)
    self._done: dict[str, Any] = {}
    if os.path.exists(self.path):
      try:
        with open(self.path) as f:
          self._done = json.load(f)
        if not isinstance(self._done, dict):
          raise ValueError(f"it holds a {type(self._done).__name__}, not an object")
      except (OSError, ValueError) as error:  # damaged on disk: recompute, keep the file
        self._done = {}
        set_aside(self.path, error, "progress file")

  def __contains__(self, key: str) -> bool:
    return key in self._done

  def __getitem__(self, key: str) -> Any:
    return self._done[key]

  def values(self) -> list[Any]:
    """Stored values in the order they were first put."""
    return list(self._done.values())

  def put(self, key: str, value: Any) -> Any:
    self._done[key] = json.loads(json.dumps(results.to_jsonable(value)))
    results.write_json(self.path, self._done)
    return self._done[key]


def start(config: Config, overrides: Any, workdir: str | None) -> tuple[Values, str]:
  """`Config.resolve` the overrides, then `prepare_workdir`: all checks before any work.

  Returns:
    ``(values, absolute workdir)``.

  Raises:
    ValueError: naming the bad field or ``--workdir``.
  """
  values = config.resolve(overrides)
  workdir = prepare_workdir(workdir, values)
  logging.info("preset %r, writing to %s", values.preset, workdir)
  return values, workdir


def run_in(binary: Any, workdir: str, **overrides) -> Any:
  """Runs an experiment module's ``run`` from Python with the binary's checks.

  Args:
    binary: a module with ``CONFIG`` (a `Config`) and ``run(config, workdir)``.
    workdir: as ``--workdir``.
    **overrides: config fields, as ``--config.<field>=<value>``.

  Returns:
    What ``run`` returns (the summary).
  """
  values, workdir = start(binary.CONFIG, overrides, workdir)
  return binary.run(values, workdir)


def launch(config: Config, run: Callable[[Values, str], Any]) -> None:
  """The absl main of a binary: ``--workdir`` and ``--config`` flags, `start`, ``run``.

  Unknown ``--config.<field>`` overrides are accepted while flags are parsed
  (ml_collections would otherwise fail inside flag parsing with a bare
  AttributeError) and refused by `start` with a ValueError listing the fields.
  """
  workdir_flag = flags.DEFINE_string("workdir", None,
                                     "Directory for results, figures and checkpoints.")
  config_flag = config_flags.DEFINE_config_dict(
      "config", config.defaults(), "Experiment config; --config.preset selects a preset. "
      "Fields:\n" + config.help(), lock_config=False, accept_new_attributes=True)
  flags.mark_flag_as_required("workdir")
  distributed.define_flags()

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments {argv[1:]}")
    values, workdir = start(config, config_flag.value, workdir_flag.value)
    distributed.initialize_from_flags()  # opt-in multi-host; a no-op unless asked
    run(values, workdir)

  app.run(main)
