"""`train.distributed`: the multi-process flags and what reaches `initialize`.

`initialize` itself (arguments, environment, a faked `jax.distributed`) is checked in
`test_multidevice.py`, beside the sweeps on several devices and processes.
"""

import jax


# Pinned by mutation testing (docs/testing.md); in mutmut's fast selection.
def test_distributed_flags_reach_initialize(monkeypatch):
  from absl import flags

  from imbalance_jax.train import distributed
  distributed.define_flags()
  distributed.define_flags()  # idempotent: a second call defines nothing twice
  helps = {
      "coordinator_address": "host:port of process 0 for jax.distributed.initialize "
                             "(env JAX_COORDINATOR_ADDRESS).",
      "num_processes": "Number of processes of a multi-host run (env JAX_NUM_PROCESSES).",
      "process_id": "This process's index in [0, num_processes) (env JAX_PROCESS_ID).",
      "distributed": "Initialise multi-process JAX, detecting the cluster (Slurm, Open MPI, "
                     "TPU, Kubernetes) when the other flags are not given "
                     "(env JAX_DISTRIBUTED=1).",
  }
  for name, text in helps.items():
    assert flags.FLAGS[name].help == text
    assert flags.FLAGS[name].default == (False if name == "distributed" else None)
  assert flags.FLAGS["distributed"].flag_type() == "bool"
  assert flags.FLAGS["num_processes"].flag_type() == "int"
  assert flags.FLAGS["process_id"].flag_type() == "int"

  calls = []
  monkeypatch.setattr(distributed, "initialize",
                      lambda *args, **kw: calls.append((args, kw)) or True)
  assert distributed.initialize_from_flags() is True
  assert calls.pop() == ((None, None, None), {"auto": False})
  for name, value in (("coordinator_address", "h:1"), ("num_processes", 2), ("process_id", 1),
                      ("distributed", True)):
    monkeypatch.setattr(flags.FLAGS[name], "value", value)
  distributed.initialize_from_flags()
  assert calls.pop() == (("h:1", 2, 1), {"auto": True})
  assert distributed.is_main_process() is True  # one process here: process 0
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  assert distributed.is_main_process() is False
