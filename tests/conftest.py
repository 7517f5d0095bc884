"""Shared fixtures: small heavy-tailed problems that compile in well under a second."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import data, metrics, models, optim, train


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


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


# Whole binaries in subprocesses (end to end, kill/resume, several devices): CI runs them
# once, in the default 32-bit mode; the float64 pass (JAX_ENABLE_X64=1) runs the rest.
_BINARY_TEST_FILES = ("test_experiment_", "test_resume", "test_multidevice", "test_docs")


def pytest_collection_modifyitems(config, items):
  del config
  for item in items:
    if item.fspath.basename.startswith(_BINARY_TEST_FILES):
      item.add_marker(pytest.mark.binary)
