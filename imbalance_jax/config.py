"""Experiment configs: preset resolution and a declarative check of every field.

A config names a ``preset`` and leaves preset-controlled fields as typed
placeholders (``ml_collections.config_dict.placeholder(int)``); a field the
user sets on the command line (``--config.num_steps=50``) wins over the preset.

Each ``experiments/configs/<name>.py`` declares ``FIELDS``, the type and the
allowed range (or choices) of every config field, and a ``validate(config)``
that calls `check_fields` and then checks what depends on several fields
(divisibility, sizes against the machine's memory). `imbalance_jax.cli.start`
runs it after preset resolution, before any work, so a bad value is a
``ValueError`` naming ``config.<field>`` and its allowed range.

Example::

  FIELDS = {"preset": config.Choice(PRESETS), "m": config.Int(minimum=1),
            "learning_rate": config.Real(minimum=0.0)}

  def validate(cfg):
    config.check_fields(cfg, FIELDS)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ml_collections

from imbalance_jax import _checks


def resolve_preset(config: ml_collections.ConfigDict,
                   presets: Mapping[str, Mapping[str, Any]]) -> ml_collections.ConfigDict:
  """Returns a copy of ``config`` with unset (None) fields filled from its preset.

  Raises:
    ValueError: for an unknown preset or a preset naming a missing field, or if
      a field is still None after resolution.

  Example:
    >>> import ml_collections
    >>> cfg = ml_collections.ConfigDict(
    ...     {"preset": "quick", "m": ml_collections.config_dict.placeholder(int), "steps": 5})
    >>> resolved = resolve_preset(cfg, {"quick": {"m": 3, "steps": 100}})
    >>> resolved.m, resolved.steps  # the preset fills m; steps was set, so it stays
    (3, 5)
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


@dataclasses.dataclass(frozen=True)
class Int:
  """An integer field in ``[minimum, maximum]`` (None: unbounded)."""

  minimum: int | None = None
  maximum: int | None = None

  def check(self, name: str, value: Any) -> int:
    return _checks.check_int(name, value, minimum=self.minimum, maximum=self.maximum)


@dataclasses.dataclass(frozen=True)
class Real:
  """A finite real field in an interval (``open_*``: the bound is excluded)."""

  minimum: float | None = None
  maximum: float | None = None
  open_minimum: bool = False
  open_maximum: bool = False

  def check(self, name: str, value: Any) -> float:
    return _checks.check_real(name, value, minimum=self.minimum, maximum=self.maximum,
                              open_minimum=self.open_minimum, open_maximum=self.open_maximum)


def Positive() -> Real:  # noqa: N802 (reads like the other field types)
  """A finite real field > 0."""
  return Real(minimum=0.0, open_minimum=True)


@dataclasses.dataclass(frozen=True)
class Bool:

  def check(self, name: str, value: Any) -> bool:
    return _checks.check_bool(name, value)


@dataclasses.dataclass(frozen=True)
class Choice:
  """One of ``choices`` (strings)."""

  choices: tuple[str, ...]

  def __init__(self, choices: Iterable[str]):
    object.__setattr__(self, "choices", tuple(choices))

  def check(self, name: str, value: Any) -> str:
    return _checks.check_choice(name, value, self.choices)


@dataclasses.dataclass(frozen=True)
class IntList:
  """A comma-separated list of integers (``"16,32"``), each >= ``minimum``."""

  minimum: int | None = None
  min_length: int = 1

  def check(self, name: str, value: Any) -> tuple[int, ...]:
    return _checks.check_int_list(name, value, minimum=self.minimum, min_length=self.min_length)


@dataclasses.dataclass(frozen=True)
class Parsed:
  """A string field checked by ``parse`` (which raises ValueError on bad input)."""

  parse: Callable[[Any], Any]
  description: str

  def check(self, name: str, value: Any) -> Any:
    if not isinstance(value, str):
      raise ValueError(f"{name} must be {self.description}, got {value!r}")
    try:
      return self.parse(value)
    except ValueError as e:
      raise ValueError(f"{name} must be {self.description}, got {value!r}: {e}") from None


def check_fields(config: ml_collections.ConfigDict, fields: Mapping[str, Any]) -> dict[str, Any]:
  """Checks every field of ``config`` against its spec in ``fields``.

  Args:
    config: a resolved config (no None placeholders left).
    fields: ``{field name: Int(...) | Real(...) | Bool() | Choice(...) |
      IntList(...) | Parsed(...)}``; it must cover every field of ``config``.

  Returns:
    ``{field: parsed value}`` (e.g. the tuple of an `IntList`).

  Raises:
    ValueError: naming ``config.<field>`` and its allowed range or choices.

  Example:
    >>> import ml_collections
    >>> cfg = ml_collections.ConfigDict({"preset": "quick", "m": 3, "sizes": "16,32"})
    >>> fields = {"preset": Choice(["quick"]), "m": Int(minimum=1), "sizes": IntList(minimum=1)}
    >>> check_fields(cfg, fields)
    {'preset': 'quick', 'm': 3, 'sizes': (16, 32)}
    >>> cfg.m = 0
    >>> check_fields(cfg, fields)
    Traceback (most recent call last):
    ...
    ValueError: config.m must be >= 1, got 0
  """
  unknown = [k for k in config.keys() if k not in fields]
  if unknown:
    raise ValueError(f"config fields {unknown} have no declared type/range; valid fields: "
                     f"{sorted(fields)}")
  missing = [k for k in fields if k not in config]
  if missing:
    raise ValueError(f"config lacks the declared fields {missing}")
  return {key: spec.check(f"config.{key}", config[key]) for key, spec in fields.items()}


def check_step_schedule(cfg: ml_collections.ConfigDict) -> None:
  """``log_every`` divides ``num_steps``; ``segment_steps`` (if the config has it, 0 = none)
  divides ``num_steps`` and is a multiple of ``log_every``. Raises ValueError naming them."""
  if cfg.num_steps % cfg.log_every:
    raise ValueError(f"config.log_every={cfg.log_every} must divide "
                     f"config.num_steps={cfg.num_steps}")
  segment_steps = cfg.get("segment_steps", 0)
  if segment_steps and (cfg.num_steps % segment_steps or segment_steps % cfg.log_every):
    raise ValueError(f"config.segment_steps={segment_steps} must be 0 (no segments) or "
                     f"divide config.num_steps={cfg.num_steps} and be a multiple of "
                     f"config.log_every={cfg.log_every}")
