r"""Runs every experiment binary's CPU (or paper) presets and writes a report of what held.

Each preset run goes to ``--workdir/<binary>/<preset>`` as a separate process
(``python -m experiments.<binary> --config.preset=<preset>``, its output in
``log.txt`` there). A run that finished (``reproduce.json`` says so and its
``summary.json`` exists) is not rerun; an interrupted one is restarted with the
same arguments and resumes from its own checkpoints. ``--jobs`` runs go at a
time (default 2: most runs keep about one core busy). One progress line per
run gives its time, the elapsed time and an estimate of what remains. At the end,
and whatever failed, ``report.md`` and ``report.html`` (figures embedded) are
written from the runs' own files and `experiments.claims`.

  python -m experiments.reproduce --workdir runs/all
  python -m experiments.reproduce --workdir runs/all --only=theory_figures,heavy_tailed_linear
  python -m experiments.reproduce --workdir runs/all --skip=imagenet_resnet
  python -m experiments.reproduce --workdir runs/gpu --scale=paper      # GPU-scale
  python -m experiments.reproduce --workdir runs/plan --scale=paper --plan  # cost, no run

``--plan`` runs nothing: it lowers each preset's training step on abstract shapes
(`imbalance_jax.experiment.plan`, through the binary's ``plan_steps(config)``) and
prints, and writes to ``plan.json``, FLOPs per step, memory per member, sweep members,
rounds and hours on one H100 at ``--peak`` and ``--mfu`` (docs/paper_scale.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent import futures

from absl import app, flags, logging

from experiments import claims, report
from imbalance_jax import results
from imbalance_jax.experiment import plan
from imbalance_jax.train.checkpoint import set_aside

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for every run and the report.")
_SCALE = flags.DEFINE_enum("scale", "cpu", ["cpu", "paper"],
                           "cpu: the quick presets (their measured times add up to about 75 min; "
                           "about 40 min with --jobs=2 on 2 cores); paper: the "
                           "papers' scale (GPU).")
_ONLY = flags.DEFINE_list("only", [], "Run only these binaries (default: all).")
_SKIP = flags.DEFINE_list("skip", [], "Binaries not to run.")
_JOBS = flags.DEFINE_integer("jobs", 2, "Runs at a time. Most runs keep about one core busy, "
                             "so 2 fills a 2-core machine; 1 gives each run's own time.",
                             lower_bound=1)
_PLAN = flags.DEFINE_bool("plan", False, "Run nothing: print and write plan.json, each "
                          "preset's step cost on abstract shapes and its hours on one H100.")
_PEAK = flags.DEFINE_enum("peak", "tf32", ["tf32", "bf16", "fp32"],
                          "--plan: the H100 peak assumed (tf32: float32 dots at JAX's default "
                          "precision on tensor cores).")
_MFU = flags.DEFINE_float("mfu", 0.3, "--plan: the fraction of --peak assumed reached.",
                          lower_bound=0.01, upper_bound=1.0)
_PRECISION = flags.DEFINE_enum(
    "matmul_precision", None, ["BF16_BF16_F32", "TF32_TF32_F32", "F32_F32_F32"],
    "Runs: JAX_DEFAULT_MATMUL_PRECISION of every run (BF16_BF16_F32: bfloat16 tensor-core "
    "dots and convolutions, float32 accumulation and storage; plan with --peak=bf16). "
    "Default: JAX's (TF32 on NVIDIA GPUs).")
_PUBLISH = flags.DEFINE_string("publish", None,
                               "Also copy report.md and its figures to this directory.")
flags.mark_flag_as_required("workdir")

PLAN_FILE = "plan.json"  # --plan: the rows and the assumptions
STATE_FILE = "reproduce.json"  # per run: status, wall seconds, exit code
SESSIONS_FILE = "sessions.json"  # per invocation: the runs it made and its wall seconds


def select(binaries: list[str], only: list[str], skip: list[str]) -> list[str]:
  """The binaries to run, in registry order; raises ValueError naming an unknown one."""
  for flag, names in (("--only", only), ("--skip", skip)):
    unknown = [n for n in names if n not in binaries]
    if unknown:
      raise ValueError(f"{flag}: unknown binaries {unknown}; known: {', '.join(binaries)}")
  return [b for b in binaries if (not only or b in only) and b not in skip]


def run_dir(workdir: str, binary: str, preset: str) -> str:
  return os.path.join(workdir, binary, preset)


def is_done(state: dict, workdir: str, binary: str, preset: str) -> bool:
  """Recorded done and its summary.json readable; a damaged one is set aside (renamed to
  ``summary.json.damaged``) so the run is redone, resuming from its own checkpoints."""
  entry = state.get(f"{binary}/{preset}", {})
  path = os.path.join(run_dir(workdir, binary, preset), "summary.json")
  if entry.get("status") != "done" or not os.path.exists(path):
    return False
  try:
    with open(path) as f:
      json.load(f)
  except (OSError, ValueError) as error:
    set_aside(path, error, f"the summary of {binary}/{preset}")
    return False
  return True


def run_one(workdir: str, binary: str, preset: str) -> tuple[int, float]:
  """Runs one preset in its own process; returns (exit code, wall seconds)."""
  path = run_dir(workdir, binary, preset)
  os.makedirs(path, exist_ok=True)
  command = [sys.executable, "-m", f"experiments.{binary}", f"--workdir={path}",
             f"--config.preset={preset}"]
  start = time.perf_counter()
  with open(os.path.join(path, "log.txt"), "a") as log:
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    precision = {"JAX_DEFAULT_MATMUL_PRECISION": _PRECISION.value} if _PRECISION.value else {}
    code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT,
                           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           env={**os.environ, **precision})
  return code, time.perf_counter() - start


def minutes(seconds: float) -> str:
  return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def read_json(path: str, default, what: str):
  """The JSON file at ``path`` (``default`` when absent); a damaged one is a clear error."""
  if not os.path.exists(path):
    return default
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, ValueError) as error:
    raise ValueError(f"cannot read {path} ({what}): {error}; remove it to rerun every preset "
                     "(finished runs then resume from their own checkpoints)") from error
  if not isinstance(value, type(default)):
    raise ValueError(f"{path} ({what}) holds a {type(value).__name__}, expected a "
                     f"{type(default).__name__}; remove it to start over")
  return value


def pending_runs(experiments, selected, state, workdir) -> list[tuple[str, str, float | None]]:
  """``(binary, preset, typical seconds)`` of the runs not done yet, longest first (so that
  with --jobs=2 the last runs to finish are short ones)."""
  pending = []
  for e in experiments:
    for preset, expected in e.runs(_SCALE.value).items() if e.binary in selected else ():
      key = f"{e.binary}/{preset}"
      if is_done(state, workdir, e.binary, preset):
        print(f"{key}: already done ({minutes(state[key]['seconds'])})", flush=True)
      else:
        pending.append((e.binary, preset, expected))
  return sorted(pending, key=lambda t: -(t[2] or 0))


def run_pending(workdir: str, pending, state: dict) -> tuple[list[str], list[str], float]:
  """Runs ``pending`` ``--jobs`` at a time, recording each in ``state`` as it ends; returns
  (finished keys, failed keys, wall seconds)."""
  state_path = os.path.join(workdir, STATE_FILE)
  start = time.perf_counter()
  failures, finished, lock = [], [], threading.Lock()

  def run_and_record(binary, preset, expected):
    key = f"{binary}/{preset}"
    log = os.path.join(run_dir(workdir, binary, preset), "log.txt")
    typical = f", typically {minutes(expected)}" if expected else ""
    print(f"{key}: running (log: {log}{typical})", flush=True)
    code, seconds = run_one(workdir, binary, preset)
    with lock:
      status = "done" if code == 0 else "failed"
      state[key] = {"status": status, "seconds": seconds, "exit_code": code,
                    "scale": _SCALE.value, "jobs": _JOBS.value,
                    "matmul_precision": _PRECISION.value}
      results.write_json(state_path, state)
      finished.append(key)
      line = f"{status} in {minutes(seconds)}"
      if code:
        failures.append(key)
        line += f" (exit code {code}; see {log})"
      left = [e for b, p, e in pending if f"{b}/{p}" not in finished]
      eta = (f"about {minutes(sum(left) / _JOBS.value)} left"
             if all(e is not None for e in left) else f"{len(left)} runs left")
      print(f"[{len(finished)}/{len(pending)}] {key}: {line} | elapsed "
            f"{minutes(time.perf_counter() - start)} | {eta}", flush=True)

  with futures.ThreadPoolExecutor(_JOBS.value) as pool:
    for job in [pool.submit(run_and_record, *t) for t in pending]:
      job.result()
  return finished, failures, time.perf_counter() - start


def preset_rows(binary: str, preset: str, peak_flops: float, mfu: float) -> list[dict]:
  """The plan's rows of one preset: one per compiled program, or one with a ``note``: the
  binary's ``plan_note(config)`` where it trains no network (simulations, tokenizers)."""
  module = claims.binary_module(binary)
  if not hasattr(module, "plan_steps"):
    note = (f"not lowered: {module.plan_note(plan.preset_values(module.CONFIG, preset))}"
            if hasattr(module, "plan_note") else "not lowered: the binary has no plan_steps")
    return [{"binary": binary, "preset": preset, "note": note}]
  config = plan.preset_values(module.CONFIG, preset)
  return [{"binary": binary, "preset": preset,
           **plan.describe(step, peak_flops=peak_flops, mfu=mfu)}
          for step in module.plan_steps(config)]


def write_plan(workdir: str, experiments, selected) -> dict:
  """--plan: every selected preset's rows, printed as a table and written to plan.json."""
  peak, start, rows = plan.PEAK_FLOPS[_PEAK.value], time.perf_counter(), []
  for e in experiments:
    for preset in e.runs(_SCALE.value) if e.binary in selected else ():
      rows += preset_rows(e.binary, preset, peak, _MFU.value)
      print(f"{e.binary}/{preset}: planned ({minutes(time.perf_counter() - start)})", flush=True)
  gpt2 = {("transformer_ptb", "gpt2_wikitext103")}
  out = {"peak": _PEAK.value, "peak_flops": peak, "mfu": _MFU.value,
         "memory_bytes": plan.H100_BYTES, "total_hours": plan.total_hours(rows),
         "total_hours_without_gpt2": plan.total_hours(rows, gpt2), "rows": rows}
  print(plan.format_table(rows))
  print(f"Total: {out['total_hours']:.1f} h on one H100 at {_MFU.value:.0%} of {peak / 1e12:.1f} "
        f"TFLOP/s ({_PEAK.value}); without GPT2/WikiText-103: "
        f"{out['total_hours_without_gpt2']:.1f} h", flush=True)
  results.write_json(os.path.join(workdir, PLAN_FILE), out)
  return out


def main(argv):
  del argv
  workdir = os.path.abspath(_WORKDIR.value)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir={_WORKDIR.value} names a file; it must name a directory")
  selected = select(list(claims.BINARIES), _ONLY.value, _SKIP.value)
  experiments = claims.load_all()
  os.makedirs(workdir, exist_ok=True)
  if _PLAN.value:
    write_plan(workdir, experiments, selected)
    return
  state = read_json(os.path.join(workdir, STATE_FILE), {}, "the status of every run")
  sessions_path = os.path.join(workdir, SESSIONS_FILE)
  sessions = read_json(sessions_path, [], "the wall time of every invocation")
  pending = pending_runs(experiments, selected, state, workdir)
  finished, failures, seconds = run_pending(workdir, pending, state)
  if pending:
    sessions.append({"runs": finished, "jobs": _JOBS.value, "scale": _SCALE.value,
                     "seconds": seconds})
    results.write_json(sessions_path, sessions)
  paths = report.write(workdir, experiments, state, sessions, publish=_PUBLISH.value)
  print(f"Wrote {', '.join(paths)}", flush=True)
  if failures:
    logging.error("failed runs: %s", ", ".join(failures))
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
