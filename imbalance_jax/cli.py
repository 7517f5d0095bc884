"""Shared scaffolding of the experiment binaries: flags, presets and config.json.

Every binary ``experiments/<name>.py`` takes ``--workdir`` (required) and
``--config`` (default: ``experiments/configs/<name>.py``, overridable field by
field, e.g. ``--config.preset=small``).

Example (the top of a binary)::

  _WORKDIR, _CONFIG = cli.define_flags(__file__)

  def main(argv):
    config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib.PRESETS)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from absl import flags, logging
from ml_collections import config_flags

from imbalance_jax import results
from imbalance_jax.config import resolve_preset


def define_flags(binary_file: str):
  """Defines ``--workdir`` and ``--config`` for the binary at ``binary_file``."""
  name = os.path.splitext(os.path.basename(binary_file))[0]
  workdir = flags.DEFINE_string("workdir", None,
                                "Directory for results, figures and checkpoints.")
  config = config_flags.DEFINE_config_file(
      "config", os.path.join(os.path.dirname(os.path.abspath(binary_file)), "configs",
                             f"{name}.py"),
      "Experiment config (ml_collections); --config.preset selects a preset.")
  flags.mark_flag_as_required("workdir")
  return workdir, config


def start(workdir_flag, config_flag, presets: Mapping[str, Mapping[str, Any]]):
  """Resolves the preset, creates the workdir and writes ``config.json`` into it.

  Returns:
    ``(config, workdir)``.
  """
  config = resolve_preset(config_flag.value, presets)
  workdir = workdir_flag.value
  os.makedirs(workdir, exist_ok=True)
  results.write_json(os.path.join(workdir, "config.json"), config)
  logging.info("preset %r, writing to %s", config.preset, workdir)
  return config, workdir
