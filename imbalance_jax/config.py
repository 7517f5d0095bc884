"""Preset resolution for ml_collections experiment configs.

A config names a ``preset`` and leaves preset-controlled fields as typed
placeholders (``ml_collections.config_dict.placeholder(int)``); a field the
user sets on the command line (``--config.num_steps=50``) wins over the preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections


def resolve_preset(config: ml_collections.ConfigDict,
                   presets: Mapping[str, Mapping[str, Any]]) -> ml_collections.ConfigDict:
  """Returns a copy of ``config`` with unset (None) fields filled from its preset.

  Raises:
    ValueError: for an unknown preset or a preset naming a missing field, or if
      a field is still None after resolution.
  """
  if config.preset not in presets:
    raise ValueError(f"config.preset must be one of {tuple(presets)}, got {config.preset!r}")
  resolved = ml_collections.ConfigDict(config.to_dict())
  for key, value in presets[config.preset].items():
    if key not in resolved:
      raise ValueError(f"preset {config.preset!r} sets unknown config field {key!r}")
    if resolved[key] is None:
      resolved[key] = value
  missing = [k for k, v in resolved.items() if v is None]
  if missing:
    raise ValueError(f"config fields {missing} are unset and preset {config.preset!r} "
                     "does not provide them")
  return resolved
