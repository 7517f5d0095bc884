"""Shared fixtures: small heavy-tailed problems that compile in well under a second."""

import inspect
import os

# The suite is compile-bound (thousands of tiny programs): LLVM's lowest optimisation level
# cuts its CPU time by ~30% and changes no HLO (the XLA passes, fusion and the programs' numbers
# checks see the same graphs); set before any backend starts, inherited by the binaries the
# tests run in subprocesses. Benchmarks and experiments run at XLA's default level.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from imbalance_jax import data, metrics, models, optim, train  # noqa: E402
from imbalance_jax.types import make_dataset  # noqa: E402


def small_problem(num_seeds=2, m=3, dtype=jnp.float64):
  """Datasets (one per seed), the linear model and per-seed initial params."""
  keys = jax.random.split(jax.random.key(0), num_seeds)
  ds = jax.vmap(lambda k: data.heavy_tailed_labels(k, m, dtype=dtype))(keys)
  model = models.LinearSoftmax(ds.num_classes, param_dtype=dtype)
  params = jax.vmap(lambda k: model.init(k, ds.x[0, :1]))(jax.random.split(jax.random.key(1),
                                                                           num_seeds))
  return ds, model, params


def make_linear_train(model, class_counts, name="gd", momentum=0.0, num_steps=12, log_every=3,
                      weighting="none"):
  groups = data.frequency_groups(np.asarray(class_counts), num_groups=3)
  return train.make_train(train.classification_objective(model.apply, weighting),
                          optim.injectable(name, momentum), num_steps=num_steps,
                          log_every=log_every, metrics_fn=metrics.classification_metrics(groups))


def tiny_data(n=7, num_classes=3):
  """n examples of 2 features 0, 1, ..., 2n - 1 in order; labels 0, 1, ..., C - 1, 0, ..."""
  x = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
  return make_dataset(x, np.arange(n) % num_classes, num_classes)


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


# Whole binaries in subprocesses (end to end, kill/resume, several devices).
_BINARY_TEST_FILES = ("test_experiment_", "test_resume", "test_multidevice", "test_docs")
# The core, rerun by CI under JAX_ENABLE_X64=1 (`-m float64`): training loop, batching,
# sweeps, selection, metrics, losses, optimizers, data, results and input checks (those
# of their tests that do not already switch to float64 themselves, nor are marked
# `no_float64`: the tests pinned by mutation testing, which CI runs in 32 bits only).
_FLOAT64_TEST_FILES = ("test_batching", "test_train", "test_selection", "test_sweep",
                       "test_metrics", "test_models_losses", "test_optim", "test_results",
                       "test_data", "test_config", "test_confusion",
                       "test_curvature_exact", "test_theory_quadratic", "test_text")


def _runs_in_float64_already(item) -> bool:
  """A test that switches to 64 bits itself would run the same code again under X64."""
  function = getattr(item, "function", None)
  return "x64" in getattr(item, "fixturenames", ()) or (
      function is not None and "enable_x64(True)" in inspect.getsource(function))


def pytest_collection_modifyitems(config, items):
  del config
  for item in items:
    name = item.fspath.basename
    if name.startswith(_BINARY_TEST_FILES):
      item.add_marker(pytest.mark.binary)
    if (name.startswith(_FLOAT64_TEST_FILES) and not _runs_in_float64_already(item)
        and item.get_closest_marker("no_float64") is None):
      item.add_marker(pytest.mark.float64)
