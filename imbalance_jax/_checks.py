"""Argument checks shared by the public entry points.

Every check raises ``ValueError`` naming the offending argument, so a bad
config value fails at the boundary instead of deep inside a compiled program.
Traced values (inside ``jit``/``vmap``) are not inspected: they are checked
where they enter, e.g. the learning-rate grid of a sweep.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np
import psutil


def is_traced(value: Any) -> bool:
  return isinstance(value, jax.core.Tracer)


def check_int(name: str, value: Any, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
  """Returns ``value`` as an int, requiring an integral value in [minimum, maximum]."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"{name} must be an integer, got {value!r}")
  if minimum is not None and maximum is not None and not minimum <= value <= maximum:
    raise ValueError(f"{name} must be an integer in [{minimum}, {maximum}], got {value}")
  if minimum is not None and value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}")
  if maximum is not None and value > maximum:
    raise ValueError(f"{name} must be <= {maximum}, got {value}")
  return int(value)


def describe_interval(minimum: float | None = None, maximum: float | None = None, *,
                      open_minimum: bool = False, open_maximum: bool = False) -> str:
  """``"> 0"``, ``">= 1"``, ``"in (0, 1]"``, ... (for error messages)."""
  if minimum is not None and maximum is not None:
    return (f"in {'(' if open_minimum else '['}{minimum:g}, {maximum:g}"
            f"{')' if open_maximum else ']'}")
  if minimum is not None:
    return f"{'>' if open_minimum else '>='} {minimum:g}"
  if maximum is not None:
    return f"{'<' if open_maximum else '<='} {maximum:g}"
  return "finite"


def check_real(name: str, value: Any, *, minimum: float | None = None,
               maximum: float | None = None, open_minimum: bool = False,
               open_maximum: bool = False) -> float:
  """Returns ``value`` as a float, requiring a finite real number in the given interval.

  Example:
    >>> check_real("divergence_threshold", 0.5, minimum=1.0, open_minimum=True)
    Traceback (most recent call last):
    ValueError: divergence_threshold must be a finite number > 1, got 0.5
  """
  interval = describe_interval(minimum, maximum, open_minimum=open_minimum,
                               open_maximum=open_maximum)
  what = "a finite number" + ("" if interval == "finite" else f" {interval}")
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f"{name} must be {what}, got {value!r}")
  value = float(value)
  ok = math.isfinite(value)
  if ok and minimum is not None:
    ok = value > minimum if open_minimum else value >= minimum
  if ok and maximum is not None:
    ok = value < maximum if open_maximum else value <= maximum
  if not ok:
    raise ValueError(f"{name} must be {what}, got {value!r}")
  return value


def check_bool(name: str, value: Any) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name} must be True or False, got {value!r}")
  return bool(value)


def check_int_list(name: str, text: Any, *, minimum: int | None = None,
                   maximum: int | None = None, min_length: int = 1) -> tuple[int, ...]:
  """Parses a comma-separated list of integers (``"16,32"``), each in ``[minimum, maximum]``.

  Example:
    >>> check_int_list("cnn_features", "16,32", minimum=1)
    (16, 32)
  """
  what = "a comma-separated list of integers" + (
      f" in [{minimum}, {maximum}]" if minimum is not None and maximum is not None
      else f" >= {minimum}" if minimum is not None
      else f" <= {maximum}" if maximum is not None else "")
  if not isinstance(text, str):
    raise ValueError(f"{name} must be {what} (e.g. '16,32'), got {text!r}")
  try:
    values = tuple(int(part) for part in text.split(","))
  except ValueError:
    raise ValueError(f"{name} must be {what} (e.g. '16,32'), got {text!r}") from None
  if (len(values) < min_length or (minimum is not None and min(values) < minimum)
      or (maximum is not None and max(values) > maximum)):
    raise ValueError(f"{name} must be {what}, at least {min_length} of them, got {text!r}")
  return values


def check_class_ids(name: str, ids: Any, num_classes: int) -> None:
  """Concrete ids must be integers in ``[0, num_classes)`` (traced ids are left alone: under
  jit a segment sum would drop ids out of range, so check before)."""
  if is_traced(ids):
    return
  ids = np.asarray(ids)
  if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0
                   or ids.max() >= num_classes):
    raise ValueError(f"{name} must be integer class ids in [0, {num_classes}), got "
                     f"{ids.dtype} values in [{ids.min()}, {ids.max()}]")


def check_class_counts(name: str, counts: Any) -> None:
  """Concrete counts ``[..., C]`` must be finite, non-negative, with a positive total."""
  if is_traced(counts):
    return
  given = np.asarray(counts)
  if (given.ndim == 0 or not np.issubdtype(given.dtype, np.number)
      or not np.all(np.isfinite(given)) or np.any(given < 0) or np.any(given.sum(-1) <= 0)):
    raise ValueError(f"{name} must be finite, non-negative counts [C] with a positive total, "
                     f"got {counts!r}")


def available_memory_bytes() -> int:
  """Memory a new allocation can use now: host RAM (``psutil``), or device memory.

  On an accelerator whose runtime reports ``bytes_limit``, the free memory of
  the first device (its limit minus what is in use) is returned instead.
  """
  device = jax.devices()[0]
  if device.platform != "cpu":
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
      return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
  return int(psutil.virtual_memory().available)


def format_bytes(num_bytes: float) -> str:
  for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
    if abs(num_bytes) < 1024 or unit == "PiB":
      return f"{num_bytes:.3g} {unit}" if unit != "B" else f"{int(num_bytes)} B"
    num_bytes /= 1024
  raise AssertionError


def check_memory(required_bytes: float, *, what: str, lower: str) -> None:
  """Refuses work whose estimated peak memory exceeds what is available now.

  Call it before allocating anything (sizes as Python ints, so absurd sizes
  cannot overflow or allocate).

  Args:
    required_bytes: estimated peak memory of the work.
    what: what needs it, e.g. ``"config.m=12 with 3 seeds (n=49152, d=53248)"``.
    lower: what to lower, e.g. ``"config.m or config.num_seeds (or pick
      --config.preset=quick)"``.

  Raises:
    ValueError: naming ``what``, both sizes and ``lower``.
  """
  available = available_memory_bytes()
  if required_bytes > available:
    raise ValueError(f"{what} needs about {format_bytes(required_bytes)} of memory but "
                     f"{format_bytes(available)} is available; lower {lower}")


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
