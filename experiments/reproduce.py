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

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for every run and the report.")
_SCALE = flags.DEFINE_enum("scale", "cpu", ["cpu", "paper"],
                           "cpu: the quick presets (about 30 min on 2 cores); paper: the "
                           "papers' scale (GPU).")
_ONLY = flags.DEFINE_list("only", [], "Run only these binaries (default: all).")
_SKIP = flags.DEFINE_list("skip", [], "Binaries not to run.")
_JOBS = flags.DEFINE_integer("jobs", 2, "Runs at a time. Most runs keep about one core busy, "
                             "so 2 fills a 2-core machine; 1 gives each run's own time.",
                             lower_bound=1)
_PUBLISH = flags.DEFINE_string("publish", None,
                               "Also copy report.md and its figures to this directory.")
flags.mark_flag_as_required("workdir")

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
  entry = state.get(f"{binary}/{preset}", {})
  return (entry.get("status") == "done"
          and os.path.exists(os.path.join(run_dir(workdir, binary, preset), "summary.json")))


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
    code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT,
                           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return code, time.perf_counter() - start


def minutes(seconds: float) -> str:
  return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def main(argv):
  del argv
  workdir = os.path.abspath(_WORKDIR.value)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir={_WORKDIR.value} names a file; it must name a directory")
  selected = select(list(claims.BINARIES), _ONLY.value, _SKIP.value)
  experiments = claims.load_all()
  os.makedirs(workdir, exist_ok=True)
  state_path = os.path.join(workdir, STATE_FILE)
  state = {}
  if os.path.exists(state_path):
    with open(state_path) as f:
      state = json.load(f)

  todo = [(e.binary, preset, expected) for e in experiments if e.binary in selected
          for preset, expected in e.runs(_SCALE.value).items()]
  pending = []
  for binary, preset, expected in todo:
    if is_done(state, workdir, binary, preset):
      print(f"{binary}/{preset}: already done "
            f"({minutes(state[f'{binary}/{preset}']['seconds'])})", flush=True)
    else:
      pending.append((binary, preset, expected))
  # Longest first, so that with --jobs=2 the last runs to finish are short ones.
  pending.sort(key=lambda t: -(t[2] or 0))
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
                    "scale": _SCALE.value, "jobs": _JOBS.value}
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
  sessions_path = os.path.join(workdir, SESSIONS_FILE)
  sessions = []
  if os.path.exists(sessions_path):
    with open(sessions_path) as f:
      sessions = json.load(f)
  if pending:
    sessions.append({"runs": finished, "jobs": _JOBS.value, "scale": _SCALE.value,
                     "seconds": time.perf_counter() - start})
    results.write_json(sessions_path, sessions)

  paths = report.write(workdir, experiments, state, sessions, publish=_PUBLISH.value)
  print(f"Wrote {', '.join(paths)}", flush=True)
  if failures:
    logging.error("failed runs: %s", ", ".join(failures))
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
