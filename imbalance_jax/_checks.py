"""Argument checks shared by the public entry points.

Every check raises ``ValueError`` naming the offending argument, so a bad
config value fails at the boundary instead of deep inside a compiled program.
Traced values (inside ``jit``/``vmap``) are not inspected: they are checked
where they enter, e.g. the learning-rate grid of a sweep.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np


def is_traced(value: Any) -> bool:
  return isinstance(value, jax.core.Tracer)


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
  """Returns ``value`` as an int, requiring an integral value >= minimum."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"{name} must be an integer, got {value!r}")
  if minimum is not None and value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}")
  return int(value)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> Any:
  """Requires finite values > 0 (or >= 0); arrays are checked elementwise."""
  if value is None or is_traced(value) or callable(value):
    if value is None:
      raise ValueError(f"{name} must be a positive number, got None")
    return value
  array = np.asarray(value)
  if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
    raise ValueError(f"{name} must be a real number, got {value!r}")
  bad = ~np.isfinite(array) | ((array < 0) if allow_zero else (array <= 0))
  if np.any(bad):
    kind = "non-negative" if allow_zero else "positive"
    raise ValueError(f"{name} must be finite and {kind}, got {value!r}")
  return value


def check_fraction(name: str, value: Any) -> float:
  """Requires a real number in [0, 1) (momentum-like coefficients)."""
  if is_traced(value):
    return value
  array = np.asarray(value)
  if (isinstance(value, bool) or array.ndim != 0 or not np.issubdtype(array.dtype, np.floating)
      and not np.issubdtype(array.dtype, np.integer) or not 0.0 <= float(array) < 1.0):
    raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
  return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
  choices = tuple(choices)
  if value not in choices:
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")
  return value
