"""A binary's config, declared once: fields, presets, cross-field checks -> typed values.

`Config` holds every field's declaration (`imbalance_jax.experiment.fields`),
the presets (``--config.preset=...``) and an optional ``validate(values)`` for
what depends on several fields (divisibility, memory). From it come the
ml_collections default config (`Config.defaults`, what ``--config.<field>``
overrides) and, through `Config.resolve`, the checked, typed `Values` a
binary's ``run(config, workdir)`` reads. A field without a default takes its
preset's value; a field set on the command line wins over the preset.

Example:
  >>> from imbalance_jax.experiment import fields
  >>> CONFIG = Config(
  ...     presets={"quick": dict(num_seeds=2), "paper": dict(num_seeds=3)},
  ...     fields=dict(num_seeds=fields.Int(minimum=1, help="seeds"),
  ...                 runs=fields.Runs(default="gd,adam")))
  >>> values = CONFIG.resolve({"preset": "paper"})
  >>> values.num_seeds, [spec.name for spec in values.runs]
  (3, ['gd', 'adam'])
  >>> CONFIG.resolve({"num_seeds": 0})
  Traceback (most recent call last):
  ...
  ValueError: config.num_seeds must be >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import ml_collections
from ml_collections import config_dict

from imbalance_jax import _checks
from imbalance_jax.experiment import fields as fields_lib


class Values:
  """A resolved config: typed field values as attributes (read-only).

  ``values.raw`` is the resolved ml_collections config (strings as given; what
  ``config.json`` holds), ``values.preset`` the preset's name.
  """

  def __init__(self, typed: Mapping[str, Any], raw: ml_collections.ConfigDict):
    object.__setattr__(self, "_typed", dict(typed))
    object.__setattr__(self, "raw", raw)

  def __getattr__(self, name: str) -> Any:
    try:
      return self._typed[name]
    except KeyError:
      raise AttributeError(f"config has no field {name!r}; fields: {', '.join(self._typed)}"
                           ) from None

  def __setattr__(self, name, value):
    raise AttributeError("config values are read-only; override fields with Config.resolve")

  def __getitem__(self, name: str) -> Any:
    return self._typed[name]

  def __contains__(self, name: str) -> bool:
    return name in self._typed

  def keys(self):
    return self._typed.keys()

  def __repr__(self) -> str:
    return f"Values({self._typed!r})"


def _unknown_field_error(key: str, known: list[str], flag_name: str = "config") -> ValueError:
  close = difflib.get_close_matches(key, known, n=1)
  hint = f" (did you mean --{flag_name}.{close[0]}?)" if close else ""
  return ValueError(f"unknown config field --{flag_name}.{key}{hint}; valid fields: "
                    f"{', '.join(known)}")


@dataclasses.dataclass(frozen=True)
class Config:
  """Every field of a binary's config, its presets and its cross-field checks.

  Attributes:
    presets: ``{preset name: {field: value}}``; the first is the default preset.
      A preset sets every field that has no default, and may set others (a
      preset that does not set one of those gets its declared default).
    fields: ``{field name: fields.Field}`` in display order (``preset`` is implicit).
    validate: ``(Values) -> None`` raising ValueError naming the fields, for what
      depends on several fields; runs after every field's own check.
  """

  presets: Mapping[str, Mapping[str, Any]]
  fields: Mapping[str, fields_lib.Field]
  validate: Callable[[Values], None] | None = None

  def __post_init__(self):
    if "preset" in self.fields:
      raise ValueError("'preset' is declared by Config itself")
    for preset, values in self.presets.items():
      unknown = [k for k in values if k not in self.fields]
      if unknown:
        raise ValueError(f"preset {preset!r} sets undeclared fields {unknown}")
      unset = [k for k, f in self.fields.items() if f.default is None and k not in values]
      if unset:
        raise ValueError(f"preset {preset!r} does not set {unset}, which have no default")

  def preset_controlled(self) -> set[str]:
    """Fields some preset sets: None in `defaults`, filled by `resolve`."""
    return {name for preset in self.presets.values() for name in preset}

  def defaults(self) -> ml_collections.ConfigDict:
    """The ml_collections config of ``--config``: declared defaults, and None (a typed
    placeholder) for every field a preset sets, so that a command-line value wins."""
    config = ml_collections.ConfigDict()
    config.preset = next(iter(self.presets))
    controlled = self.preset_controlled()
    for name, field in self.fields.items():
      config[name] = (config_dict.placeholder(field.type)
                      if field.default is None or name in controlled else field.default)
    return config

  def resolve(self, overrides: Mapping[str, Any] | ml_collections.ConfigDict = ()) -> Values:
    """Checks ``overrides`` (unknown fields, preset, every field, `validate`) -> `Values`.

    Args:
      overrides: field values set by the user (a mapping, or the ``--config``
        ConfigDict, whose None fields are taken from the preset).

    Raises:
      ValueError: naming the first bad field and its allowed range.
    """
    # A plain dict, so that a wrong-typed value reaches the field's own check (a named
    # ValueError) instead of ml_collections' TypeError.
    raw = self.defaults().to_dict()
    given = overrides.to_dict() if isinstance(overrides, ml_collections.ConfigDict) else overrides
    for key, value in dict(given).items():
      if key not in raw:
        raise _unknown_field_error(key, list(raw))
      raw[key] = value
    preset = raw["preset"]
    if preset not in self.presets:
      raise ValueError(f"config.preset must be one of {tuple(self.presets)}, got {preset!r}")
    for name, field in self.fields.items():
      if raw[name] is None:  # not set by the user: the preset's value, else the default
        raw[name] = self.presets[preset].get(name, field.default)
    typed = {"preset": preset}
    for name, field in self.fields.items():
      typed[name] = field.check(f"config.{name}", raw[name])
    raw = ml_collections.ConfigDict(raw)
    values = Values(typed, raw)
    if self.validate is not None:
      self.validate(values)
    return values

  def help(self) -> str:
    """One line per field: name, default (or 'preset'), help."""
    lines = [f"preset: one of {tuple(self.presets)}"]
    controlled = self.preset_controlled()
    for name, field in self.fields.items():
      default = ("from the preset" if field.default is None else
                 f"{field.default!r} unless the preset sets it" if name in controlled
                 else repr(field.default))
      lines.append(f"{name} ({default}): {field.help}")
    return "\n".join(lines)


def float_bytes() -> int:
  """Bytes of the default float (8 under ``JAX_ENABLE_X64``, else 4): memory estimates."""
  return 8 if jax.config.jax_enable_x64 else 4


def check_step_schedule(values: Values) -> None:
  """``log_every`` divides ``num_steps``; ``segment_steps`` (if declared; 0 = none) divides
  ``num_steps`` and is a multiple of ``log_every``. Raises ValueError naming them."""
  if values.num_steps % values.log_every:
    raise ValueError(f"config.log_every={values.log_every} must divide "
                     f"config.num_steps={values.num_steps}")
  segment_steps = values.segment_steps if "segment_steps" in values else 0
  if segment_steps and (values.num_steps % segment_steps or segment_steps % values.log_every):
    raise ValueError(f"config.segment_steps={segment_steps} must be 0 (no segments) or "
                     f"divide config.num_steps={values.num_steps} and be a multiple of "
                     f"config.log_every={values.log_every}")


check_memory = _checks.check_memory


def network_bytes(model, example_shape: tuple[int, ...], *, members: int, examples: int,
                  states_per_parameter: int = 4) -> int:
  """Estimated peak memory of training ``members`` copies of a Flax ``model`` at once.

  Shapes only (``jax.eval_shape``: nothing is allocated, so absurd widths are safe):
  per member, ``states_per_parameter`` copies of the parameters (weights, gradient,
  two optimizer moments) and, for ``examples`` inputs of ``example_shape`` in one
  pass, twice every module output (kept for the backward pass, and its gradient).

  Args:
    model: a Flax Linen module taking ``[N, *example_shape]``.
    example_shape: one example's shape, e.g. ``(28, 28, 1)``.
    members: models trained at once (seeds x step sizes).
    examples: the largest number of examples one pass sees (batch or eval chunk).

  Example:
    >>> import flax.linen as nn
    >>> network_bytes(nn.Dense(10), (784,), members=2, examples=100) // float_bytes()
    66800
  """
  x = jax.ShapeDtypeStruct((1, *example_shape), jax.numpy.float32)

  def forward(key, x):
    params = model.init(key, x)
    _, state = model.apply(params, x, capture_intermediates=True, mutable=["intermediates"])
    return params, state["intermediates"]

  params, outputs = jax.eval_shape(forward, jax.random.key(0), x)
  size = lambda tree: sum(int(np.prod(leaf.shape, dtype=object))
                          for leaf in jax.tree.leaves(tree))
  return float_bytes() * members * (states_per_parameter * size(params)
                                    + 2 * examples * size(outputs))
