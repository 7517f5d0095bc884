"""Config field kinds: each declares a field's type, range, default and help once.

A field is declared once in a binary's `Config` (`imbalance_jax.experiment.config`)
and that one declaration gives the ml_collections default (``--config.<name>``
on the command line), the check of the value before any work (a ValueError
naming ``config.<name>`` and its allowed range) and the typed value the binary
reads: `Runs` gives `optim.RunSpec` s, `Exponents` a sorted tuple of floats,
`IntList` a tuple of ints. A field without a default takes its value from the
preset (`Config.presets`).

Each kind also names values it refuses (``invalid_examples``): the bad-input
test of every registered binary tries each of them.

Example:
  >>> Int(minimum=1, help="seeds").check("config.num_seeds", 3)
  3
  >>> Exponents().check("config.exponents", "0,-1")
  (-1.0, 0.0)
  >>> [spec.name for spec in Runs().check("config.runs", "gd,adam+m")]
  ['gd', 'adam+m']
  >>> Choice(("a", "b"), default="a").check("config.kind", "c")
  Traceback (most recent call last):
  ...
  ValueError: config.kind must be one of ('a', 'b'), got 'c'
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Callable, Iterable
from typing import Any

from imbalance_jax import _checks, losses, optim
from imbalance_jax.train.selection import SPARSE_EXPONENTS

# A field whose value comes from the preset.
FROM_PRESET = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Field(abc.ABC):
  """A config field: ``type`` (of the ml_collections value), ``default`` (None: the
  preset sets it) and ``help``. Subclasses define `check` and `invalid_examples`."""

  default: Any = FROM_PRESET
  help: str = ""
  type = str

  @abc.abstractmethod
  def check(self, name: str, value: Any) -> Any:
    """The typed value of ``value`` (named ``config.<name>`` in errors), or a ValueError."""

  def invalid_examples(self) -> tuple[Any, ...]:
    """Values of the field's ``type`` that `check` refuses."""
    return ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Int(Field):
  """An integer in ``[minimum, maximum]`` (None: unbounded)."""

  minimum: int | None = None
  maximum: int | None = None
  type = int

  def check(self, name, value):
    return _checks.check_int(name, value, minimum=self.minimum, maximum=self.maximum)

  def invalid_examples(self):
    return tuple(v for v in (None if self.minimum is None else self.minimum - 1,
                             None if self.maximum is None else self.maximum + 1) if v is not None)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Real(Field):
  """A finite real in an interval (``open_*``: the bound is excluded)."""

  minimum: float | None = None
  maximum: float | None = None
  open_minimum: bool = False
  open_maximum: bool = False
  type = float

  def check(self, name, value):
    return _checks.check_real(name, value, minimum=self.minimum, maximum=self.maximum,
                              open_minimum=self.open_minimum, open_maximum=self.open_maximum)

  def invalid_examples(self):
    out = [float("nan"), float("inf")]
    if self.minimum is not None:
      out.append(float(self.minimum) if self.open_minimum else self.minimum - 1.0)
    if self.maximum is not None:
      out.append(float(self.maximum) if self.open_maximum else self.maximum + 1.0)
    return tuple(out)


def Positive(**kwargs) -> Real:  # noqa: N802 (reads like the other kinds)
  """A finite real > 0."""
  return Real(minimum=0.0, open_minimum=True, **kwargs)


def LearningRate(**kwargs) -> Real:  # noqa: N802
  """A fixed step size for every run (> 0), or 0: tune it (see `step_size_grid`)."""
  kwargs.setdefault("help", ">0: one fixed step size for every run, no tuning; 0: tune")
  return Real(minimum=0.0, **kwargs)


def DivergenceThreshold(**kwargs) -> Real:  # noqa: N802
  """Paper H's divergence rule: a run diverged once its loss exceeds this x its initial loss."""
  kwargs.setdefault("default", 1.5)
  kwargs.setdefault("help", "a run diverged once its loss exceeds this x its initial loss")
  return Real(minimum=1.0, open_minimum=True, **kwargs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Bool(Field):
  type = bool

  def check(self, name, value):
    return _checks.check_bool(name, value)


@dataclasses.dataclass(frozen=True)
class Choice(Field):
  """One of ``choices`` (strings)."""

  choices: tuple[str, ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "choices", tuple(self.choices))

  def check(self, name, value):
    return _checks.check_choice(name, value, self.choices)

  def invalid_examples(self):
    return ("no_such_" + (self.choices[0] if self.choices else "choice"),)


@dataclasses.dataclass(frozen=True, kw_only=True)
class IntList(Field):
  """Comma-separated integers (``"16,32"``), each in ``[minimum, maximum]`` -> a tuple of ints."""

  minimum: int | None = None
  maximum: int | None = None
  min_length: int = 1

  def check(self, name, value):
    return _checks.check_int_list(name, value, minimum=self.minimum, maximum=self.maximum,
                                  min_length=self.min_length)

  def invalid_examples(self):
    return (("1,x", "") + (() if self.minimum is None else (f"{self.minimum - 1}",))
            + (() if self.maximum is None else (f"{self.maximum + 1}",)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Text(Field):
  """A string checked (and converted) by ``parse``, which raises ValueError on bad input.

  ``description`` completes "config.<name> must be ..." in the error message.
  """

  parse: Callable[[str], Any] = str
  description: str = "a string"
  invalid: tuple[str, ...] = ()

  def check(self, name, value):
    if not isinstance(value, str):
      raise ValueError(f"{name} must be {self.description}, got {value!r}")
    try:
      return self.parse(value)
    except ValueError as e:
      raise ValueError(f"{name} must be {self.description}, got {value!r}: {e}") from None

  def invalid_examples(self):
    return self.invalid


def parse_exponents(text: str) -> tuple[float, ...]:
  """``"-4,-3"`` -> ``(-4.0, -3.0)`` (sorted, distinct, in [-20, 20]); ``""`` -> paper H's
  grid ``SPARSE_EXPONENTS`` (10^-6 .. 10^1).

  Example:
    >>> parse_exponents("0,-2")
    (-2.0, 0.0)
  """
  if not text.strip():
    return tuple(SPARSE_EXPONENTS)
  try:
    values = tuple(float(e) for e in text.split(","))
  except ValueError:
    raise ValueError("expected numbers") from None
  if len(set(values)) != len(values):
    raise ValueError("duplicate exponents")
  if not all(-20 <= e <= 20 for e in values):
    raise ValueError("exponents must lie in [-20, 20]")
  return tuple(sorted(values))


def RatesAtOnce(**kwargs) -> Int:  # noqa: N802
  """Step sizes computed at once on one device (0: every member of the sweep at once; k:
  one seed and k step sizes at a time, a scan over batches that holds k members)."""
  kwargs.setdefault("help", "0: every sweep member at once; k: one seed x k step sizes at a "
                    "time (memory of k members; one device)")
  return Int(minimum=0, default=0, **kwargs)


def members_at_once(rates_at_once: int) -> tuple[int, int] | None:
  """`train.Sweep`'s ``members_at_once`` of a `RatesAtOnce` field's value."""
  return None if rates_at_once == 0 else (1, rates_at_once)


def Exponents(**kwargs) -> Text:  # noqa: N802
  """Step sizes 10^e tried in the first tuning round: ``"-3,-2"``, or ``""``: 10^-6..10^1."""
  kwargs.setdefault("help", "step sizes 10^e tried first (comma-separated e); '': 1e-6..1e1")
  return Text(parse=parse_exponents, description="comma-separated step-size exponents "
              "(10^e, distinct, in [-20, 20]) or '' for paper H's grid 1e-6..1e1",
              invalid=("-1,x", "0,0", "30"), **kwargs)


_RUN_GRAMMAR = (f"<optimizer>[+m][@<weighting>] with optimizer in {tuple(optim.OPTIMIZERS)} "
                f"and weighting in {losses.OBJECTIVES}")


def Runs(*, allow_all: bool = False, allow_empty: bool = False, **kwargs) -> Text:  # noqa: N802
  """Comma-separated run names -> a tuple of `optim.RunSpec` (no duplicates).

  ``allow_all``: ``"all"`` means `optim.PAPER_RUNS`; ``allow_empty``: ``""`` gives ``()``.
  """

  def parse(text):
    if allow_empty and not text.strip():
      return ()
    if allow_all and text.strip() == "all":
      text = ",".join(optim.PAPER_RUNS)
    return tuple(optim.parse_runs(text))

  description = ("'all' or " if allow_all else "") + f"comma-separated run names {_RUN_GRAMMAR}"
  kwargs.setdefault("help", "runs, comma-separated: " + _RUN_GRAMMAR)
  return Text(parse=parse, description=description + (" (or '')" if allow_empty else ""),
              invalid=("gd,no_such_optimizer", "gd,gd", "gd@no_such_weighting")
              + (() if allow_empty else ("",)), **kwargs)


def Run(**kwargs) -> Text:  # noqa: N802
  """One run name -> an `optim.RunSpec`."""
  kwargs.setdefault("help", "a run name " + _RUN_GRAMMAR)
  return Text(parse=optim.parse_run, description="a run name " + _RUN_GRAMMAR,
              invalid=("no_such_optimizer",), **kwargs)


def _directory(text: str) -> str:
  if text and not os.path.isdir(os.path.expanduser(text)):
    raise ValueError("no such directory")
  return os.path.expanduser(text)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Directory(Text):
  """An existing directory (``~`` expanded), or ``""`` (the binary says what that means,
  e.g. the embedded data)."""

  default: Any = ""
  parse: Callable[[str], Any] = _directory
  description: str = "an existing directory or ''"
  invalid: tuple[str, ...] = ("/no/such/directory",)
  holds: Callable[[str], Any] | None = None  # raises (ValueError/OSError) unless the data is there

  def check(self, name, value):
    if value is None:  # a preset that leaves the directory to the user
      raise ValueError(f"{name} is required by this preset: pass --{name}=<directory>")
    path = super().check(name, value)
    if path and self.holds is not None:
      try:
        self.holds(path)
      except (ValueError, OSError) as error:  # before any work, not at data loading
        raise ValueError(f"{name}={value!r}: {error}") from None
    return path


def Names(choices: Iterable[str], **kwargs) -> Text:  # noqa: N802
  """A comma-separated subset of ``choices`` (distinct, in the given order) -> a tuple."""
  choices = tuple(choices)

  def parse(text):
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in choices]
    if not names or bad or len(set(names)) != len(names):
      raise ValueError(f"expected distinct names from {choices}")
    return names

  return Text(parse=parse, description=f"a comma-separated subset of {choices}",
              invalid=("", f"{choices[0]},{choices[0]}", "no_such_name"), **kwargs)
