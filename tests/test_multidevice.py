"""Sweeps on 8 (forced host) devices give the one-device numbers for every member.

One subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
runs `cases` and writes every field of every result to an npz; this process
(one device) runs the same cases and compares. Cases: a 10-member grid
(padded to 16 slots), seeds sharded (3 seeds padded to 4, 1 rate to 2), a seed's data
sharded over examples (2 and 8 shards), data shared by all seeds with its
examples sharded, and a segmented sweep that drops diverged members while
sharded. A second test runs three of the cases on 2 processes x 4 devices
joined by `imbalance_jax.train.distributed.initialize` (CPU collectives over
gloo), as on two hosts.
"""

import contextlib
import dataclasses
import functools
import logging
import os
import socket
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pytest

from conftest import small_problem
from imbalance_jax import optim, train
from imbalance_jax.train import driver

RATES_5 = np.array([1e-3, 1e-2, 1e-1, 1.0, 1e2])  # 1e2 diverges under sign descent
# name: (seeds, rates, example shards on 8 devices, data per seed, drop, mesh on 8 devices)
CASES = {
    "grid_10": (2, RATES_5, None, True, False, (2, 4, 1)),
    "seeds_3": (3, RATES_5[:1], None, True, False, (4, 2, 1)),
    "examples_2": (2, RATES_5, 2, True, False, (2, 2, 2)),
    "examples_8": (1, RATES_5[:3], 8, True, False, (1, 1, 8)),
    "shared_data": (2, RATES_5, 2, False, False, (2, 2, 2)),
    "dropping": (2, RATES_5, None, True, True, (2, 4, 1)),
}


def cases(names=tuple(CASES)) -> dict[str, np.ndarray]:
  """Every field of every case's result, flattened to ``{case|path: array}`` (float64)."""
  out = {}
  with jax.enable_x64(True):
    ds, model, params_S = small_problem(num_seeds=3)  # n = 24 examples
    run = train.make_train(train.classification_objective(model.apply),
                           optim.injectable("sign_descent", 0.9), num_steps=6, log_every=3)
    computed = {}  # one device: grid_10 and examples_2 are the same sweep, run once
    for name in names:
      num_seeds, rates, shards, per_seed, drop, mesh = CASES[name]
      seeds = lambda tree: jax.tree.map(lambda a: a[:num_seeds], tree)  # noqa: B023
      data = seeds(ds) if per_seed else jax.tree.map(lambda a: a[0], ds)
      shards = shards if jax.device_count() > 1 else None
      sweep = train.Sweep(run, data_per_seed=per_seed, example_shards=shards)
      assert sweep.layout(num_seeds, len(rates), data).mesh_shape == (
          mesh if jax.device_count() == 8 else (1, 1, 1))
      same = (num_seeds, tuple(rates), shards, per_seed, drop)
      if same in computed:
        out.update({name + "|" + key: value for key, value in computed[same].items()})
        continue
      before = set(out)
      if drop:
        with _recording_gathers() as gathers:
          result = train.run_sweep(sweep, seeds(params_S), data, rates, segment_steps=3,
                                   drop_decided=True)
        out[f"{name}|dropped_at"] = result.dropped_at
        # The compacted state stays spread over every device (one device: no placement).
        layout = sweep.layout(num_seeds, len(rates), data)
        expected = train.Sweep.member_sharding(layout) if jax.device_count() > 1 else None
        assert gathers and all(g == (expected, {jax.device_count()}) for g in gathers), gathers
        # Resumed from its last checkpoint, the restored state is put back on every device
        # (one process: the processes of a multi-host run would need one shared directory).
        if jax.process_count() == 1:
          with tempfile.TemporaryDirectory() as directory:
            kwargs = dict(segment_steps=3, drop_decided=True, checkpoint_dir=directory)
            train.run_sweep(sweep, seeds(params_S), data, rates, **kwargs)
            finishing = _FinishRecorder(run, per_seed, sweep.example_shards)
            resumed = train.run_sweep(finishing, seeds(params_S), data, rates, **kwargs)
          np.testing.assert_array_equal(resumed.final_loss, result.final_loss)
          assert finishing.devices == [{jax.device_count()}], finishing.devices
      else:
        result = sweep(seeds(params_S), data, rates)
        devices = result.final_loss.sharding.device_set
        assert len(devices) == jax.device_count(), (name, result.final_loss.sharding)
      assert result.final_loss.shape == (num_seeds, len(rates))
      for path, leaf in jax.tree_util.tree_leaves_with_path(train.sweep.to_host(result)):
        out[name + "|" + jax.tree_util.keystr(path)] = np.asarray(leaf)
      computed[same] = {k.split("|", 1)[1]: out[k] for k in set(out) - before}
  return out


@dataclasses.dataclass(frozen=True)
class _FinishRecorder(train.Sweep):
  """A `Sweep` that records on how many devices the state given to `finish` lives."""

  devices: list = dataclasses.field(default_factory=list)

  def finish(self, state, data):
    self.devices.append({len(leaf.sharding.device_set) for leaf in jax.tree.leaves(state)})
    return super().finish(state, data)


@contextlib.contextmanager
def _recording_gathers():
  """Records ``(sharding, device counts of the result)`` of each `gather_members` in run_sweep."""
  calls, real = [], driver.gather_members

  def gather(state, index_SW, sharding=None):
    out = real(state, index_SW, sharding)
    calls.append((sharding, {len(leaf.sharding.device_set) for leaf in jax.tree.leaves(out)}))
    return out

  driver.gather_members = gather
  try:
    yield calls
  finally:
    driver.gather_members = real


@functools.lru_cache(maxsize=1)
def one_device() -> dict[str, np.ndarray]:
  return cases()


def start(script: str, devices: int, **env):
  # cwd is tests/ (the script imports test_multidevice); the repo root on the path imports the
  # working tree's package even where the installed one points elsewhere.
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu", PYTHONPATH=path, **env)
  return subprocess.Popen([sys.executable, "-c", script], env=env, cwd=os.path.dirname(__file__),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_match(path, names=tuple(CASES)):
  got = dict(np.load(path))
  one = {k: v for k, v in one_device().items() if k.split("|")[0] in names}
  assert sorted(got) == sorted(one)
  for key, expected in one.items():
    np.testing.assert_allclose(got[key], expected, rtol=1e-10, atol=1e-13, err_msg=key)


def test_eight_devices_match_one_device(tmp_path):
  path = tmp_path / "eight.npz"
  proc = start("import jax, numpy as np, test_multidevice as t\n"
               "assert jax.device_count() == 8, jax.devices()\n"
               f"np.savez({str(path)!r}, **t.cases())\n", devices=8)
  one = one_device()  # one device, while the subprocess runs
  assert np.all(one["dropping|dropped_at"][:, -1] > 0)  # the 1e2 members were dropped
  _, stderr = proc.communicate(timeout=600)
  assert proc.returncode == 0, stderr[-3000:]
  assert_match(path)


@pytest.mark.slow  # ~30 s: two processes each compiling three cases; -m slow runs it
def test_two_processes_match_one_device(tmp_path):
  names = ("grid_10", "examples_2", "dropping")
  with socket.socket() as sock:
    sock.bind(("localhost", 0))
    port = sock.getsockname()[1]
  path = tmp_path / "two.npz"
  script = ("import jax, numpy as np\n"
            "jax.config.update('jax_cpu_collectives_implementation', 'gloo')\n"
            "from imbalance_jax.train import distributed\n"
            "assert distributed.initialize()\n"
            "import test_multidevice as t\n"
            "assert (jax.process_count(), jax.device_count()) == (2, 8)\n"
            f"out = t.cases({names!r})\n"
            f"if distributed.is_main_process(): np.savez({str(path)!r}, **out)\n")
  procs = [start(script, devices=4, JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                 JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)) for i in range(2)]
  one_device()
  for proc in procs:
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
  assert_match(path, names)


def test_initialize_is_opt_in_and_validates(monkeypatch, caplog):
  from imbalance_jax.train import distributed
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
               "JAX_DISTRIBUTED"):
    monkeypatch.delenv(name, raising=False)
  assert distributed.initialize() is False
  assert distributed.initialize("localhost:1", num_processes=1, process_id=0) is False
  with pytest.raises(ValueError, match="num_processes"):
    distributed.initialize("localhost:1")
  with pytest.raises(ValueError, match="process_id"):
    distributed.initialize("localhost:1", num_processes=2, process_id=2)
  monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
  with pytest.raises(ValueError, match=r"^environment variable JAX_NUM_PROCESSES must be an "
                     r"integer, got 'two'$"):
    distributed.initialize()
  monkeypatch.setenv("JAX_NUM_PROCESSES", "")  # empty: unset
  assert distributed.initialize() is False

  # What reaches jax.distributed.initialize (faked: nothing is started here).
  calls = []
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  for name, value in (("process_index", 1), ("process_count", 2), ("local_device_count", 3),
                      ("device_count", 6)):
    monkeypatch.setattr(jax, name, lambda value=value: value)
  with caplog.at_level(logging.INFO, logger="absl"):
    assert distributed.initialize("h:1", num_processes=2, process_id=1) is True
  assert calls.pop() == {"coordinator_address": "h:1", "num_processes": 2, "process_id": 1}
  assert [r.getMessage() for r in caplog.records if r.name == "absl"] == [
      "jax.distributed: process 1 of 2, 3 local / 6 global devices"]
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "e:2")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "3")
  monkeypatch.setenv("JAX_PROCESS_ID", "0")  # 0 is a process id, not "unset"
  assert distributed.initialize() is True
  assert calls.pop() == {"coordinator_address": "e:2", "num_processes": 3, "process_id": 0}
  assert distributed.initialize("", num_processes=4, process_id=3) is True  # "" -> env
  assert calls.pop() == {"coordinator_address": "e:2", "num_processes": 4, "process_id": 3}
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    monkeypatch.delenv(name)
  with pytest.raises(ValueError, match=r"^a multi-process run needs coordinator_address, "
                     r"num_processes and process_id \(flags or JAX_\* environment variables\); "
                     r"missing \['coordinator_address', 'process_id'\]; or pass --distributed"):
    distributed.initialize(num_processes=2)
  with pytest.raises(ValueError, match=r"; missing \['num_processes'\]; "):
    distributed.initialize("h:1", process_id=0)
  with pytest.raises(ValueError, match=r"^process_id must lie in \[0, num_processes=2\), got 2$"):
    distributed.initialize("h:1", num_processes=2, process_id=2)
  with pytest.raises(ValueError, match=r"^process_id must be >= 0"):
    distributed.initialize("h:1", num_processes=2, process_id=-1)
  with pytest.raises(ValueError, match=r"^num_processes must be >= 1"):
    distributed.initialize("h:1", num_processes=0, process_id=0)
  assert calls == []
  for value in ("1", "true", "YES"):  # auto: JAX detects the cluster
    monkeypatch.setenv("JAX_DISTRIBUTED", value)
    assert distributed.initialize() is True
    assert calls.pop() == {"coordinator_address": None, "num_processes": None,
                           "process_id": None}
  monkeypatch.setenv("JAX_DISTRIBUTED", "0")
  assert distributed.initialize() is False
  assert distributed.initialize(auto=True) is True and calls.pop()["num_processes"] is None
  assert distributed.initialize(num_processes=1, auto=True) is False  # one process: nothing
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: True)
  assert distributed.initialize("h:1", num_processes=2, process_id=0) is True
  assert calls == []  # already initialised: not again
