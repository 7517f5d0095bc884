"""mutmut's fast selection stays runnable: no selected test starts JAX when imported.

mutmut forks its workers from a server that has imported the test modules. If an
import runs a JAX computation (a module-level ``jnp.array``), XLA's thread pools
exist before the fork and a forked worker hangs in its first compile, using no CPU,
so mutmut's CPU-time limit never ends it (see docs/testing.md).
"""

import os
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # ~18 s; guards mutation testing (docs/testing.md), not the library
def test_selected_test_modules_do_not_start_jax_on_import():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    selection = tomllib.load(f)["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
  modules = sorted({os.path.basename(entry.split("::")[0])[:-3] for entry in selection})
  assert "test_metrics" in modules and len(modules) > 10
  script = ("import sys; sys.path.insert(0, 'tests')\n"
            "import importlib\n"
            "from jax._src import xla_bridge\n"
            "started = []\n"
            f"for name in {['conftest', *modules]!r}:\n"
            "  importlib.import_module(name)\n"
            "  if xla_bridge._backends and not started: started.append(name)\n"
            "print(started)\n")
  out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                       check=True, timeout=300)
  assert out.stdout.strip() == "[]", f"importing these started a JAX backend: {out.stdout}"
