"""Shared scaffolding of the experiment binaries: flags, presets, checks and config.json.

Every binary ``experiments/<name>.py`` takes ``--workdir`` (required) and
``--config`` (default: ``experiments/configs/<name>.py``, overridable field by
field, e.g. ``--config.preset=small``). `start` refuses bad input before any
work: an unknown ``--config.<field>``, a field outside its declared range (the
config module's ``validate``), a size that does not fit in memory, a
``--workdir`` that is a file, or a ``--workdir`` holding the results of a
different config. A rerun with the same ``--workdir`` and config resumes.

Example (the top of a binary)::

  _WORKDIR, _CONFIG = cli.define_flags(__file__)

  def main(argv):
    config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
"""

from __future__ import annotations

import difflib
import json
import os
import runpy
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from imbalance_jax import results
from imbalance_jax.config import resolve_preset
from imbalance_jax.train import distributed


def define_flags(binary_file: str):
  """Defines ``--workdir`` and ``--config`` for the binary at ``binary_file``.

  Unknown ``--config.<field>`` overrides are accepted while flags are parsed
  (ml_collections would otherwise fail inside flag parsing with a bare
  AttributeError) and refused by `start` with a ValueError listing the valid
  fields.
  """
  name = os.path.splitext(os.path.basename(binary_file))[0]
  workdir = flags.DEFINE_string("workdir", None,
                                "Directory for results, figures and checkpoints.")
  config = config_flags.DEFINE_config_file(
      "config", os.path.join(os.path.dirname(os.path.abspath(binary_file)), "configs",
                             f"{name}.py"),
      "Experiment config (ml_collections); --config.preset selects a preset.",
      lock_config=False, accept_new_attributes=True)
  flags.mark_flag_as_required("workdir")
  distributed.define_flags()
  return workdir, config


def default_config(config_flag) -> ml_collections.ConfigDict:
  """The config as its file defines it (without command-line overrides)."""
  path = config_flags.get_config_filename(flags.FLAGS[config_flag.name])
  return runpy.run_path(path.split(":", 1)[0])["get_config"]()


def check_known_fields(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict,
                       flag_name: str = "config") -> None:
  """Raises ValueError naming every field of ``config`` that ``defaults`` lacks."""
  for key in config.keys():
    if key not in defaults:
      close = difflib.get_close_matches(key, list(defaults.keys()), n=1)
      hint = f" (did you mean --{flag_name}.{close[0]}?)" if close else ""
      raise ValueError(f"unknown config field --{flag_name}.{key}{hint}; valid fields: "
                       f"{', '.join(defaults.keys())}")


def prepare_workdir(workdir: str | None, config: ml_collections.ConfigDict) -> str:
  """Creates ``workdir`` (or checks an existing one) and writes ``config.json``.

  An existing ``config.json`` must equal ``config``: the checkpoints in the
  directory are then results of the same config and a rerun resumes from them.

  Raises:
    ValueError: naming ``--workdir`` if it is empty, names a file, lies under a
      file, cannot be written, or holds the results of a different config.
  """
  if not workdir:
    raise ValueError(f"--workdir must name a directory, got {workdir!r}")
  path = os.path.abspath(workdir)
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
    current = results.to_jsonable(config)
    if previous != current:
      changed = sorted(k for k in set(previous) | set(current)
                       if previous.get(k) != current.get(k))
      diff = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
      raise ValueError(f"--workdir={workdir} holds results of a different config ({diff}); "
                       "rerun with the same config to resume, or pass a new --workdir")
  os.makedirs(path, exist_ok=True)
  results.write_json(config_path, config)
  return workdir


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
      with open(self.path) as f:
        self._done = json.load(f)

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


def resolve(config: ml_collections.ConfigDict, config_module: Any, *,
            defaults: ml_collections.ConfigDict | None = None,
            validate: Callable[[ml_collections.ConfigDict], Any] | None = None
            ) -> ml_collections.ConfigDict:
  """Checks for unknown fields, resolves the preset and validates (no side effects).

  Args:
    config: the config with command-line overrides.
    config_module: the binary's config module (``PRESETS``, ``get_config`` and,
      if defined, ``validate(config)`` are taken from it), or a mapping of presets.
    defaults: the config as its file defines it (default:
      ``config_module.get_config()``); fields of ``config`` it lacks are refused.
    validate: overrides the module's ``validate``.

  Returns:
    The resolved config.

  Example:
    A config module in miniature (a binary's ``experiments/configs/<name>.py``):

    >>> import types
    >>> from imbalance_jax import config as config_lib
    >>> def get_config():
    ...   return ml_collections.ConfigDict(
    ...       {"preset": "quick", "num_seeds": ml_collections.config_dict.placeholder(int)})
    >>> def validate(cfg):
    ...   config_lib.check_fields(cfg, {"preset": config_lib.Choice(["quick"]),
    ...                                 "num_seeds": config_lib.Int(minimum=1)})
    >>> module = types.SimpleNamespace(PRESETS={"quick": {"num_seeds": 3}},
    ...                                get_config=get_config, validate=validate)
    >>> resolve(get_config(), module).num_seeds  # filled from the preset
    3
    >>> config = get_config()
    >>> config.num_seeds = 0  # a command-line override wins over the preset...
    >>> resolve(config, module)  # ...and is checked
    Traceback (most recent call last):
    ...
    ValueError: config.num_seeds must be >= 1, got 0
  """
  if isinstance(config_module, Mapping):
    presets = config_module
  else:
    presets = config_module.PRESETS
    validate = validate or getattr(config_module, "validate", None)
    if defaults is None:
      defaults = config_module.get_config()
  if defaults is not None:
    check_known_fields(config, defaults)
  config = resolve_preset(config, presets)
  if validate is not None:
    validate(config)
  return config


def start(workdir_flag, config_flag, config_module: Any,
          validate: Callable[[ml_collections.ConfigDict], Any] | None = None):
  """`resolve` the config flag, then `prepare_workdir`: all checks before any work.

  Args:
    workdir_flag, config_flag: the holders returned by `define_flags`.
    config_module, validate: see `resolve`.

  Returns:
    ``(config, workdir)``.

  Raises:
    ValueError: naming the bad field or ``--workdir``.
  """
  config = resolve(config_flag.value, config_module, defaults=default_config(config_flag),
                   validate=validate)
  workdir = prepare_workdir(workdir_flag.value, config)
  distributed.initialize_from_flags()  # opt-in multi-host; a no-op unless asked
  logging.info("preset %r, writing to %s", config.preset, workdir)
  return config, workdir
