"""A preset's cost before renting a GPU: its training step lowered on abstract shapes.

A binary that trains describes its preset with ``plan_steps(config) ->
[StepPlan]``: per compiled program, the `train.Train`, one member's parameters
and the data as `jax.ShapeDtypeStruct`s (``jax.eval_shape`` of the model's
``init`` and of the data generator, or the data set's known sizes), how many
runs are tuned with it, the seeds and the step-size `Grid`. `measure` lowers
one member's quiet step and logged step (`train.Train.step`) with ``jax.jit``
and reads XLA's cost analysis (FLOPs, on the step without its accumulation
loops, since XLA counts a loop body once) and the compiled program's memory
analysis (on this machine's backend): no data is loaded, nothing allocated. `cost` turns that into
the sweep's total (paper H's tuning: ``seeds x (grid + 2 per refinement
round)`` members, App. A.4) and hours at a stated peak and MFU.

Example (a linear softmax model: 3 examples of dimension 4, 2 classes):
  >>> import jax, jax.numpy as jnp
  >>> from imbalance_jax import models, optim, types
  >>> from imbalance_jax.experiment.runs import Grid, train_builder
  >>> model = models.LinearSoftmax(2)
  >>> x = jax.ShapeDtypeStruct((3, 4), jnp.float32)
  >>> ds = types.Dataset(x, jax.ShapeDtypeStruct((3,), jnp.int32),
  ...                    jax.ShapeDtypeStruct((2,), jnp.int32), 2)
  >>> params = jax.eval_shape(model.init, jax.random.key(0), x)
  >>> build = train_builder(model.apply, num_steps=10, log_every=5)
  >>> step = StepPlan("gd", build(optim.parse_runs("gd")[0]), params, ds, num_seeds=2,
  ...                 grid=Grid((-1.0, 0.0), 1))
  >>> step.members, step.programs
  (8, 2)
  >>> measured = measure(step)
  >>> measured.parameters, measured.step_flops > 2 * 3 * 4 * 2
  (10, True)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax.experiment.config import Config, Values
from imbalance_jax.experiment.fields import Directory
from imbalance_jax.experiment.runs import Grid
from imbalance_jax.train import batching as batching_lib

H100_BYTES = 80e9
# H100 SXM dense peaks (NVIDIA data sheet): tensor cores at TF32, which XLA uses for
# float32 dots and convolutions at JAX's default precision, and bfloat16; the CUDA cores'
# float32 rate bounds elementwise work and `jax.default_matmul_precision("highest")`.
PEAK_FLOPS = {"tf32": 494.7e12, "bf16": 989.4e12, "fp32": 66.9e12}


@dataclasses.dataclass(frozen=True)
class StepPlan:
  """One compiled sweep program of a preset, on abstract shapes.

  Attributes:
    name: what the program trains, e.g. ``"gd+m"`` or ``"resnet18_bn/full"``.
    train: the `train.Train` of one member (its ``num_steps`` and ``log_every`` count).
    params: one member's parameters (``jax.ShapeDtypeStruct`` leaves).
    data: one seed's data (``ShapeDtypeStruct`` leaves), as the run passes it.
    num_runs: run specs tuned with programs of this cost (their optimizers differ only
      in elementwise updates; the step is lowered with ``train``'s).
    num_seeds: seeds per program.
    grid: the step sizes of the tuning (one program per round).
    data_per_seed: the data is held once per seed (else once per program).
    analytic_flops: FLOPs per member-step by formula, where the model has one.
    flops_train: where ``train`` loops inside its metrics (e.g. Hutchinson probes
      mapped in batches), the same step with that loop unrolled into one vmap;
      its FLOPs are read instead (XLA counts a loop's body once).
  """

  name: str
  train: Any
  params: Any
  data: Any
  num_runs: int = 1
  num_seeds: int = 1
  grid: Grid = Grid()
  data_per_seed: bool = False
  analytic_flops: float | None = None
  flops_train: Any = None

  @property
  def members(self) -> int:
    """Member-runs of one tuning: seeds x (grid + at most 2 per refinement round)."""
    return self.num_seeds * (len(self.grid.exponents) + 2 * self.grid.refine_rounds)

  @property
  def programs(self) -> int:
    """Compiled sweeps of one tuning: the grid, then one per refinement round."""
    return 1 + self.grid.refine_rounds


@dataclasses.dataclass(frozen=True)
class Measured:
  """XLA's numbers for one member: FLOPs of the quiet step and of the mean step (the
  logged step's extra work, e.g. a full-set evaluation, spread over ``log_every``), bytes
  of the train state, of the step's temporaries and of the data."""

  parameters: int
  step_flops: float
  mean_flops: float
  state_bytes: int
  temp_bytes: int
  data_bytes: int


def preset_values(config: Config, preset: str, **overrides) -> Values:
  """A preset's typed values without the binary's ``validate`` (which checks this machine's
  memory and the data directories; a plan needs neither). Directories read ``"."``, not
  checked for the data they should hold: no data is read, but a binary may size its data
  by whether a directory is given (full MNIST)."""
  directories = {name: "." for name, field in config.fields.items()
                 if isinstance(field, Directory)}
  fields = {name: dataclasses.replace(field, holds=None)
            if name in directories and hasattr(field, "holds") else field
            for name, field in config.fields.items()}
  unchecked = dataclasses.replace(config, fields=fields, validate=None)
  return unchecked.resolve({"preset": preset, **directories, **overrides})


def resolve(config: Config, overrides: dict, *, planning: bool = False) -> Values:
  """``config.resolve(overrides)`` (``overrides`` holds ``"preset"``), or with ``planning``
  `preset_values` (unchecked; a ``data_dir`` override is dropped, the directory taken as
  given): how a binary resolves another binary's config as its sub-config for both."""
  if not planning:
    return config.resolve(overrides)
  overrides = {k: v for k, v in overrides.items() if k != "data_dir"}
  return preset_values(config, overrides.pop("preset"), **overrides)


def _bytes(tree) -> int:
  return int(sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize
                 for x in jax.tree.leaves(tree)))


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0))


def abstract_state(step: StepPlan, train=None):
  """The member's `train.TrainState` as ``ShapeDtypeStruct``s (``jax.eval_shape``)."""
  train = step.train if train is None else train
  key = jax.random.key(0) if train.needs_key or train.stateful else None
  return jax.eval_shape(lambda p, d: train.init(p, d, 0.1, key), step.params, step.data)


def lowered_step(step: StepPlan, record: bool, train=None):
  """One member's step (``record``: the logged one) lowered on abstract arguments."""
  train = step.train if train is None else train
  fn = jax.jit(functools.partial(train.step, record=record))
  return fn.lower(abstract_state(step, train), step.data)


def one_pass(train):
  """The same step without accumulation or chunk loops: XLA's cost analysis counts a
  loop's body once, so the FLOPs are read from this program (equal FLOPs)."""
  batching = train.batching
  flat = (batching_lib.FullBatch() if isinstance(batching, batching_lib.FullBatch)
          else batching_lib.MiniBatch(batching.batch_size))
  return dataclasses.replace(train, batching=flat)


def measure(step: StepPlan, memory: bool = True) -> Measured:
  """`Measured`: FLOPs from the one-pass steps' lowered HLO, temporaries from the compiled
  program as the run chunks it (the larger of the quiet and logged steps: either can be;
  0 unless ``memory``: compiling is most of a plan's time)."""
  flat = one_pass(step.flops_train or step.train)
  quiet, logged = (_flops(lowered_step(step, record, flat)) for record in (False, True))
  every = step.train.log_every
  temp = max(lowered_step(step, record).compile().memory_analysis().temp_size_in_bytes
             for record in (False, True)) if memory else 0
  return Measured(parameters=int(sum(x.size for x in jax.tree.leaves(step.params))),
                  step_flops=quiet, mean_flops=(quiet * (every - 1) + logged) / every,
                  state_bytes=_bytes(abstract_state(step)), temp_bytes=int(temp),
                  data_bytes=_bytes(step.data))


def cost(step: StepPlan, measured: Measured, *, peak_flops: float, mfu: float,
         memory_bytes: float = H100_BYTES) -> dict:
  """The plan's row: FLOPs, memory per member, members that fit, total and hours."""
  per_member = measured.state_bytes + measured.temp_bytes
  shared = measured.data_bytes * (step.num_seeds if step.data_per_seed else 1)
  fit = max(0, int((memory_bytes - shared) // per_member))
  steps = step.train.num_steps
  total = measured.mean_flops * steps * step.members * step.num_runs
  return {"program": step.name, "parameters": measured.parameters,
          "step_flops": measured.step_flops, "analytic_flops": step.analytic_flops,
          "mean_flops": measured.mean_flops,
          "bytes_per_member": per_member, "data_bytes": shared, "members_fit": fit,
          "steps": steps, "members": step.members, "rounds": step.programs,
          "runs": step.num_runs, "total_flops": total,
          "hours": total / (peak_flops * mfu) / 3600}


def describe(step: StepPlan, *, peak_flops: float, mfu: float) -> dict:
  """`cost` of `measure`."""
  return cost(step, measure(step), peak_flops=peak_flops, mfu=mfu)


def abstract(tree):
  """``ShapeDtypeStruct``s of a pytree of arrays (static fields kept)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)), tree)


def init_shapes(init, x):
  """``jax.eval_shape`` of ``init(key, x[:1])`` (e.g. a Flax ``model.init``) for abstract
  inputs ``x [N, ...]``: one member's parameter shapes, nothing allocated."""
  return jax.eval_shape(lambda key, x: init(key, x[:1]), jax.random.key(0), x)


def spread_groups(num_classes: int, num_groups: int) -> np.ndarray:
  """``class_to_group [C]`` with classes in contiguous equal blocks: what a segment sum of
  group metrics costs does not depend on the assignment, so a plan needs no class counts."""
  return np.arange(num_classes) * min(num_groups, num_classes) // num_classes


def abstract_dataset(num_examples: int, example_shape: tuple[int, ...], num_classes: int,
                     dtype=jnp.float32):
  """A `types.Dataset` of ``ShapeDtypeStruct``s: ``x [N, *example_shape]``, ``y [N]``,
  ``class_counts [C]`` (a data set's known sizes, nothing read)."""
  from imbalance_jax import types
  return types.Dataset(jax.ShapeDtypeStruct((num_examples, *example_shape), dtype),
                       jax.ShapeDtypeStruct((num_examples,), jnp.int32),
                       jax.ShapeDtypeStruct((num_classes,), jnp.int32), num_classes)


COLUMNS = (("binary", "binary"), ("preset", "preset"), ("program", "program"),
           ("parameters", "params"), ("step_flops", "FLOPs/step (XLA)"),
           ("analytic_flops", "FLOPs/step (formula)"), ("mean_flops", "FLOPs/step (with logging)"),
           ("bytes_per_member", "GB/member"), ("members_fit", "members in 80 GB"),
           ("steps", "steps"), ("members", "members"), ("rounds", "rounds"), ("runs", "runs"),
           ("hours", "hours"))


def _cell(name: str, value) -> str:
  if value is None:
    return "–"
  if name == "bytes_per_member":
    return f"{value / 1e9:.3g}"
  if name == "hours":
    return f"{value:.3g}"
  return f"{value:.3g}" if isinstance(value, float) else str(value)


def format_table(rows) -> str:
  """The plan's rows as a Markdown table (a row with a ``note`` is a preset not lowered)."""
  lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
           "|" + "---|" * len(COLUMNS)]
  for row in rows:
    if "note" in row:
      cells = [row["binary"], row["preset"], row["note"]] + [""] * (len(COLUMNS) - 3)
    else:
      cells = [_cell(name, row.get(name)) for name, _ in COLUMNS]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def total_hours(rows, exclude_presets=()) -> float:
  """Hours of every lowered row, less the ``(binary, preset)`` pairs in ``exclude_presets``."""
  return float(sum(r["hours"] for r in rows
                   if "hours" in r and (r["binary"], r["preset"]) not in exclude_presets))
