"""Every experiment binary, SIGKILLed part-way and rerun, ends with an uninterrupted run's results.

Every registered binary (`experiments.claims.BINARIES`: a new one is covered as
soon as its claims module exists) runs three times on the tiny config its
`Experiment` declares (``test_flags``): uninterrupted; started again in a fresh
workdir and killed at a fixed point; rerun in that workdir to the end. The kill
is deterministic: the killed run goes through a small harness that counts every
saved unit of work (a `train.ResultStore` save, a sweep-segment checkpoint, an
`experiment.Progress` entry) and freezes the process (SIGSTOP) right after the
``kill_after``-th. The test then SIGKILLs it, so nothing after that point is
flushed, and checks that the run was indeed interrupted (no summary.json). The
rerun must write ``summary.json`` and ``metrics.jsonl`` equal to the
uninterrupted run's, line for line (no duplicated or truncated lines), and the
same ``.npz`` arrays; and it must save only the units the killed run had not
saved (the harness counts them in every run), so it really resumed.

Timing fields differ between any two runs and are excluded explicitly:
``seconds``, ``total_seconds`` and ``wall_seconds`` (at any depth).

To keep the file fast, the runs of all binaries are started concurrently
(uninterrupted runs first, then the killed runs, then the reruns) and share a
persistent JAX compilation cache in a temporary directory: the killed runs and
reruns load the programs the uninterrupted runs compiled (the same
executables, so the same numbers). Binaries whose `Experiment` says
``slow_test`` run only with ``-m slow``.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import claims

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_FIELDS = {"seconds", "total_seconds", "wall_seconds"}
EXPERIMENTS = {name: claims.load(name) for name in claims.BINARIES}
# One test per speed class (not one per binary), so that a single xdist worker runs the
# fixtures below: they start every binary's three runs at once.
CLASSES = ["fast", pytest.param("slow", marks=pytest.mark.slow)]

# Runs a binary and counts its saved units of work in a report file; with pause_after > 0
# it freezes itself right after that many units are saved.
HARNESS = r"""
import os, runpy, signal, sys
from imbalance_jax import experiment, results, train
from imbalance_jax.train.driver import SegmentCheckpoints as SEGMENT_CHECKPOINTS
module, pause_after, report = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.argv = [module] + sys.argv[4:]
saved = 0
results.write_json(report, saved)

def counted(cls, name):
  original = getattr(cls, name)
  def patched(self, *args, **kwargs):
    global saved
    out = original(self, *args, **kwargs)
    saved += 1
    results.write_json(report, saved)
    if saved == pause_after:
      os.kill(os.getpid(), signal.SIGSTOP)  # frozen here until the test SIGKILLs it
    return out
  setattr(cls, name, patched)

counted(train.ResultStore, "save")
counted(SEGMENT_CHECKPOINTS, "save")
counted(experiment.Progress, "put")
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def selected(request) -> list[str]:
  """The binaries of this test's speed class (``slow_test`` binaries only with ``-m slow``)."""
  slow = request.node.callspec.params["speed"] == "slow"
  return [name for name, e in EXPERIMENTS.items() if e.slow_test == slow]


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
  """The subprocesses' environment: a compilation cache shared by all runs of this file."""
  return dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


def start(name, workdir, env, pause_after=0):
  """Starts the binary ``name`` under the harness; returns (process, report path)."""
  report = f"{workdir}.units.json"
  args = [sys.executable, "-c", HARNESS, f"experiments.{name}", str(pause_after), report,
          f"--workdir={workdir}", *EXPERIMENTS[name].test_flags]
  process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  return process, report


def units_saved(report):
  with open(report) as f:
    return json.load(f)


def finish(process, timeout=600):
  _, stderr = process.communicate(timeout=timeout)
  assert process.returncode == 0, stderr[-3000:]


def without_timing(value):
  if isinstance(value, dict):
    return {k: without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
  if isinstance(value, list):
    return [without_timing(v) for v in value]
  return value


def outputs(workdir):
  """summary.json and metrics.jsonl (each line parsed on its own), timing fields removed."""
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  lines = []
  if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      lines = [json.loads(line) for line in f.read().split("\n") if line]
  return without_timing(summary), [without_timing(line) for line in lines]


@pytest.fixture
def uninterrupted(request, tmp_path_factory, environment):
  """``{binary: (workdir, units saved)}`` of an uninterrupted run of every selected binary."""
  root = tmp_path_factory.mktemp("uninterrupted")
  runs = {name: start(name, root / name, environment) for name in selected(request)}
  for process, _ in runs.values():
    finish(process)
  return {name: (root / name, units_saved(report)) for name, (_, report) in runs.items()}


@pytest.fixture
def resumed(request, tmp_path_factory, environment, uninterrupted):
  """``{binary: (workdir, paths right after the kill, units saved by the rerun)}``."""
  del uninterrupted  # runs first, so that its compiled programs are in the cache
  root = tmp_path_factory.mktemp("resumed")
  killed = {name: start(name, root / name, environment,
                        pause_after=EXPERIMENTS[name].kill_after)
            for name in selected(request)}
  after_kill = {}
  for name, (process, report) in killed.items():
    kill_after = EXPERIMENTS[name].kill_after
    deadline = time.monotonic() + 600
    while not (os.path.exists(report) and units_saved(report) == kill_after):
      assert process.poll() is None, f"{name} ended before its kill point: {process.stderr.read()}"
      assert time.monotonic() < deadline, f"{name} never reached its kill point"
      time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    after_kill[name] = {os.path.relpath(os.path.join(parent, entry), root / name)
                        for parent, dirs, files in os.walk(root / name)
                        for entry in dirs + files}
  reruns = {name: start(name, root / name, environment) for name in killed}
  for process, _ in reruns.values():
    finish(process)
  return {name: (root / name, after_kill[name], units_saved(report))
          for name, (_, report) in reruns.items()}


def check_equal_outputs(name, expected_dir, workdir, after_kill):
  assert "summary.json" not in after_kill, f"{name}: the kill came after the run had finished"
  summary, lines = outputs(workdir)
  expected_summary, expected_lines = outputs(expected_dir)
  assert summary == expected_summary, name
  assert len(lines) == len(expected_lines), name
  assert lines == expected_lines, name
  arrays = sorted(os.path.basename(p) for p in glob.glob(str(expected_dir / "*.npz")))
  assert arrays == sorted(os.path.basename(p) for p in glob.glob(str(workdir / "*.npz"))), name
  for name_npz in arrays:
    with np.load(workdir / name_npz) as got, np.load(expected_dir / name_npz) as want:
      assert sorted(got.files) == sorted(want.files), name
      for key in want.files:
        np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name}: {name_npz}: {key}")


def check_redoes_only_unsaved_work(name, total, rerun):
  """Units saved before the kill are loaded, not recomputed (equal outputs alone would not
  tell a resumed run from one that started over)."""
  kill_after = EXPERIMENTS[name].kill_after
  assert total > kill_after, f"{name}: kill_after={kill_after} but the run saves {total} units"
  assert rerun == total - kill_after, f"{name}: the rerun saved {rerun} of {total} units"


@pytest.mark.parametrize("speed", CLASSES)
def test_killed_and_rerun_equals_uninterrupted_and_redoes_only_unsaved_work(
    speed, uninterrupted, resumed):
  assert resumed, f"no registered binary is {speed}"
  failures = {}
  for name, (workdir, after_kill, rerun) in resumed.items():
    expected_dir, total = uninterrupted[name]
    try:
      check_equal_outputs(name, expected_dir, workdir, after_kill)
      check_redoes_only_unsaved_work(name, total, rerun)
    except AssertionError as error:
      failures[name] = str(error)[:1500]
  assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


def test_progress_keeps_finished_units_in_order_as_json(tmp_path):
  from imbalance_jax import experiment
  progress = experiment.Progress(str(tmp_path))
  assert "a" not in progress and progress.values() == []
  stored = progress.put("a", {"x": np.float32(0.5), "shape": (2, 3), "bad": float("nan")})
  assert stored == {"x": 0.5, "shape": [2, 3], "bad": None}  # what a resumed run will see
  progress.put("b", [1, 2])
  progress.put("a", {"x": 1.0})  # replacing keeps the original order
  again = experiment.Progress(str(tmp_path))
  assert "a" in again and again["a"] == {"x": 1.0} and again.values() == [{"x": 1.0}, [1, 2]]
  assert sorted(os.listdir(tmp_path)) == ["progress.json"]  # no temporary files left


def test_damaged_progress_file_is_set_aside_and_recomputed(tmp_path, caplog):
  from imbalance_jax import experiment
  (tmp_path / "progress.json").write_text('{"quadratic": {"loss": 0.')  # a partial copy
  with caplog.at_level("WARNING"):
    progress = experiment.Progress(str(tmp_path))
  assert progress.values() == [] and "progress file at" in caplog.text
  assert (tmp_path / "progress.json.damaged").read_text().startswith('{"quadratic"')
  progress.put("quadratic", {"loss": 0.5})
  assert experiment.Progress(str(tmp_path))["quadratic"] == {"loss": 0.5}
