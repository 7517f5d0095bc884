"""Several hosts: an opt-in call to `jax.distributed.initialize`.

A `Sweep` shards its grid over ``jax.devices()``, which after
``jax.distributed.initialize()`` lists the devices of every process, so the
same binary runs on one host or many. Each process builds the same inputs
(seeded); results are gathered to every process (`sweep.to_host`), and only
process 0 should write files.

Multi-process mode is opt-in: `initialize` does nothing unless asked, by
arguments, by the binaries' flags (`define_flags`: ``--coordinator_address``,
``--num_processes``, ``--process_id``, ``--distributed``) or by the
environment:

* ``JAX_COORDINATOR_ADDRESS`` (read by JAX itself), ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID`` (read here) for a manual launch;
* ``--distributed`` alone (or ``JAX_DISTRIBUTED=1``) for clusters JAX detects
  by itself (Slurm, Open MPI, Cloud TPU, Kubernetes), where all arguments are
  found automatically.

Example (two hosts, the same command on each, ``process_id`` 0 and 1)::

  python -m experiments.heavy_tailed_linear --workdir /shared/htl \\
      --coordinator_address=10.0.0.1:1234 --num_processes=2 --process_id=0
"""

from __future__ import annotations

import os

import jax
from absl import flags, logging

from imbalance_jax import _checks

_FLAG_NAMES = ("coordinator_address", "num_processes", "process_id", "distributed")


def define_flags() -> None:
  """Defines the multi-process flags (idempotent); defaults come from the environment."""
  if "coordinator_address" in flags.FLAGS:
    return
  flags.DEFINE_string("coordinator_address", None,
                      "host:port of process 0 for jax.distributed.initialize "
                      "(env JAX_COORDINATOR_ADDRESS).")
  flags.DEFINE_integer("num_processes", None,
                       "Number of processes of a multi-host run (env JAX_NUM_PROCESSES).")
  flags.DEFINE_integer("process_id", None,
                       "This process's index in [0, num_processes) (env JAX_PROCESS_ID).")
  flags.DEFINE_bool("distributed", False,
                    "Initialise multi-process JAX, detecting the cluster (Slurm, Open MPI, "
                    "TPU, Kubernetes) when the other flags are not given (env JAX_DISTRIBUTED=1).")


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, auto: bool = False) -> bool:
  """Calls `jax.distributed.initialize` when multi-process mode is asked for.

  Args:
    coordinator_address: ``host:port`` of process 0 (default: env
      ``JAX_COORDINATOR_ADDRESS``).
    num_processes: number of processes (default: env ``JAX_NUM_PROCESSES``).
    process_id: this process's index (default: env ``JAX_PROCESS_ID``).
    auto: initialise even without the above, letting JAX detect the cluster
      (also turned on by env ``JAX_DISTRIBUTED=1``).

  Returns:
    True if JAX was initialised for several processes (now, or before), False
    for a single-process run (nothing asked, or ``num_processes == 1``).

  Raises:
    ValueError: naming the argument, for a partial manual setup (e.g. an
      address without ``num_processes``) or an out-of-range ``process_id``.

  Example:
    >>> initialize()          # nothing set: a single-process run
    False
  """
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
  num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
  process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
  auto = auto or os.environ.get("JAX_DISTRIBUTED", "").lower() in ("1", "true", "yes")
  manual = (coordinator_address, num_processes, process_id)
  if not auto and all(v is None for v in manual):
    return False
  if num_processes is not None:
    num_processes = _checks.check_int("num_processes", num_processes, minimum=1)
    if num_processes == 1:
      return False
  if process_id is not None:
    process_id = _checks.check_int("process_id", process_id, minimum=0)
    if num_processes is not None and process_id >= num_processes:
      raise ValueError(f"process_id must lie in [0, num_processes={num_processes}), got "
                       f"{process_id}")
  if not auto and None in manual:
    missing = [n for n, v in zip(("coordinator_address", "num_processes", "process_id"), manual)
               if v is None]
    raise ValueError(f"a multi-process run needs coordinator_address, num_processes and "
                     f"process_id (flags or JAX_* environment variables); missing {missing}; "
                     "or pass --distributed on a cluster JAX detects")
  if jax.distributed.is_initialized():
    return True
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True


def initialize_from_flags() -> bool:
  """`initialize` with the values of the flags of `define_flags` (if defined)."""
  values = {}
  for name in _FLAG_NAMES:
    if name in flags.FLAGS:
      values[name] = flags.FLAGS[name].value
  return initialize(values.get("coordinator_address"), values.get("num_processes"),
                    values.get("process_id"), auto=bool(values.get("distributed")))


def is_main_process() -> bool:
  """True on the process that should write result files (process 0)."""
  return jax.process_index() == 0
