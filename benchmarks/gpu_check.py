r"""GPU check: each paper preset's step timed on the device against the plan's projection.

For every compiled program of every preset `experiments.reproduce --plan` lowers
(a binary's ``plan_steps``), builds one member's state and random data of the
plan's shapes on the device, times ``--steps`` quiet steps after a warm-up
(compile excluded) and prints the measured time per step, the measured MFU
(XLA's FLOPs per step / time / peak) and the time per step the plan projects at
``--mfu``. Then a tiny run (linear softmax on heavy-tailed labels, m=4, GD and
Adam for 20 steps) is trained on the device and on the CPU at float32 "highest"
matmul precision, and their loss histories must agree to ``--rtol``. Presets
that would overrun ``--budget_s`` are skipped (listed). Results also go to
``--out`` (JSON).

  python -m benchmarks.gpu_check                         # a GPU machine, <= 8 minutes
  python -m benchmarks.gpu_check --platform=cpu --tiny   # degraded: CPU presets on the CPU

  JAX_DEFAULT_MATMUL_PRECISION=BF16_BF16_F32 python -m benchmarks.gpu_check --peak=bf16

``--tiny`` times each binary's first CPU preset instead of its paper presets.
On the CPU there is no peak to compare with (MFU and projection print "–"
unless ``--peak_tflops`` is given).
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

_PLATFORM = flags.DEFINE_string("platform", None, "jax platform (default: jax's default).")
_TINY = flags.DEFINE_bool("tiny", False, "each binary's first CPU preset, not the paper's.")
_ONLY = flags.DEFINE_list("only", [], "binaries to time (default: all with plan_steps).")
_STEPS = flags.DEFINE_integer("steps", 3, "timed steps per program", lower_bound=1)
_MFU = flags.DEFINE_float("mfu", 0.3, "the MFU the plan assumes (projection)")
_PEAK = flags.DEFINE_string("peak", "tf32", "peak of experiment.plan.PEAK_FLOPS (GPU)")
_PEAK_TFLOPS = flags.DEFINE_float("peak_tflops", 0.0, ">0: this peak instead of --peak")
_BUDGET = flags.DEFINE_float("budget_s", 420.0, "skip programs once this many seconds passed")
_RTOL = flags.DEFINE_float("rtol", 1e-4, "device vs CPU tolerance of the tiny run's losses")
_OUT = flags.DEFINE_string("out", None, "write the results here as JSON")


def concrete(tree, key, num_classes: int):
  """Arrays of ``tree``'s shapes: floats ~ N(0, 0.01^2), integers in ``[0, num_classes)``."""
  import jax
  import jax.numpy as jnp
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  def make(k, x):
    if jnp.issubdtype(x.dtype, jnp.integer):
      return jax.random.randint(k, x.shape, 0, num_classes, x.dtype)
    return (0.01 * jax.random.normal(k, x.shape)).astype(x.dtype)
  return treedef.unflatten([make(k, x) for k, x in zip(keys, leaves)])


def time_step(step, num_steps: int) -> float:
  """Seconds per quiet step of one member, compile and warm-up excluded."""
  import jax
  classes = min(x.num_classes for x in jax.tree.leaves(
      step.data, is_leaf=lambda x: hasattr(x, "num_classes")) if hasattr(x, "num_classes"))
  data = concrete(step.data, jax.random.key(1), classes)
  params = concrete(step.params, jax.random.key(2), classes)
  key = jax.random.key(3) if step.train.needs_key or step.train.stateful else None
  state = jax.jit(lambda p, d: step.train.init(p, d, 1e-3, key))(params, data)
  fn = jax.jit(lambda s, d: step.train.step(s, d)[0])
  state = jax.block_until_ready(fn(state, data))
  start = time.perf_counter()
  for _ in range(num_steps):
    state = fn(state, data)
  jax.block_until_ready(state)
  return (time.perf_counter() - start) / num_steps


def presets(experiment) -> list[str]:
  return list(experiment.cpu_runs)[:1] if _TINY.value else list(experiment.paper_runs)


def check_program(binary, preset, step, peak, start) -> dict:
  """One program's row: measured seconds per step and MFU against the projection."""
  from imbalance_jax.experiment import plan
  row = {"binary": binary, "preset": preset, "program": step.name}
  if time.perf_counter() - start > _BUDGET.value:
    return {**row, "skipped": f"over --budget_s={_BUDGET.value:g}"}
  try:
    flops = plan.measure(step, memory=False).step_flops
    seconds = time_step(step, _STEPS.value)
  except Exception as error:  # noqa: BLE001 (an OOM on one preset must not end the check)
    return {**row, "error": f"{type(error).__name__}: {str(error)[:200]}"}
  row.update(flops_per_step=flops, seconds_per_step=seconds)
  if peak:
    row.update(mfu=flops / seconds / peak, projected_seconds=flops / (_MFU.value * peak))
  return row


def format_row(row) -> str:
  head = f"{row['binary']}/{row['preset']} [{row['program']}]"
  if "skipped" in row or "error" in row:
    return f"{head}: {row.get('skipped') or row.get('error')}"
  fmt = lambda k, f: f.format(row[k]) if k in row else "–"  # noqa: E731
  return (f"{head}: {row['seconds_per_step'] * 1e3:.2f} ms/step, {row['flops_per_step']:.3g} "
          f"FLOPs/step, MFU {fmt('mfu', '{:.1%}')}, projected "
          f"{fmt('projected_seconds', '{:.4f}')} s/step")


def tiny_device_vs_cpu() -> dict:
  """The tiny run's recorded histories (loss and metrics) on the default device and on the
  CPU (float32, highest matmul precision): ``{"device", "max_rel_diff", "agree"}``."""
  import jax
  import numpy as np
  from imbalance_jax import data, experiment as ex, models, optim
  ds = data.heavy_tailed_labels(jax.random.key(0), 4)
  model = models.LinearSoftmax(ds.num_classes)
  params = model.init(jax.random.key(1), ds.x[:1])
  build = ex.train_builder(model.apply, num_steps=20, log_every=5)
  out = {}
  for device in (jax.devices()[0], jax.devices("cpu")[0]):
    with jax.default_matmul_precision("highest"), jax.default_device(device):
      histories = [jax.jit(build(spec))(params, ds, 0.1).history
                   for spec in optim.parse_runs("gd,adam")]
    out[device.platform] = np.concatenate([np.ravel(x) for x in jax.tree.leaves(histories)])
  first, cpu = out[jax.devices()[0].platform], out["cpu"]
  diff = float(np.max(np.abs(first - cpu) / np.maximum(np.abs(cpu), 1e-30)))
  return {"device": jax.devices()[0].platform, "max_rel_diff": diff,
          "agree": bool(diff <= _RTOL.value)}


def main(argv):
  del argv
  if _PLATFORM.value:
    os.environ["JAX_PLATFORMS"] = _PLATFORM.value
  import jax
  from experiments import claims
  from imbalance_jax.experiment import plan
  device = jax.devices()[0]
  peak = _PEAK_TFLOPS.value * 1e12 or (plan.PEAK_FLOPS[_PEAK.value]
                                       if device.platform == "gpu" else 0.0)
  print(f"device: {device.device_kind} ({device.platform}); peak "
        f"{peak / 1e12:.1f} TFLOP/s" if peak else f"device: {device.device_kind}; no peak",
        flush=True)
  start, rows = time.perf_counter(), []
  for e in claims.load_all():
    module = claims.binary_module(e.binary)
    if not hasattr(module, "plan_steps") or (_ONLY.value and e.binary not in _ONLY.value):
      continue
    for preset in presets(e):
      for step in module.plan_steps(plan.preset_values(module.CONFIG, preset)):
        rows.append(check_program(e.binary, preset, step, peak, start))
        print(format_row(rows[-1]), flush=True)
  tiny = tiny_device_vs_cpu()
  print(f"tiny run {tiny['device']} vs cpu: max relative difference {tiny['max_rel_diff']:.2e} "
        f"({'agree' if tiny['agree'] else 'DISAGREE'} at rtol {_RTOL.value:g}); "
        f"{time.perf_counter() - start:.0f} s in all", flush=True)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump({"device": str(device.device_kind), "peak_flops": peak, "mfu": _MFU.value,
                 "rows": rows, "tiny": tiny}, f, indent=1)
  if not tiny["agree"] or any("error" in r for r in rows):
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
