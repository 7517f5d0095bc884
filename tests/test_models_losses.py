import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import losses
from imbalance_jax.models import LinearSoftmax


def test_linear_pytorch_init_bounds_and_logits():
  model = LinearSoftmax(num_classes=7)
  x = jax.random.uniform(jax.random.key(0), (5, 100))
  params = model.init(jax.random.key(1), x)
  kernel, bias = params["params"]["head"]["kernel"], params["params"]["head"]["bias"]
  assert kernel.shape == (100, 7) and bias.shape == (7,)
  bound = 1 / np.sqrt(100)
  assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
  assert np.abs(kernel).max() > 0.8 * bound  # really uniform on the full range
  np.testing.assert_allclose(model.apply(params, x), x @ kernel + bias, rtol=1e-6)


def test_linear_zero_init_and_no_bias():
  model = LinearSoftmax(num_classes=3, init_scheme="zeros", use_bias=False)
  params = model.init(jax.random.key(0), jnp.ones((2, 4)))
  assert set(params["params"]["head"]) == {"kernel"}
  assert not np.any(params["params"]["head"]["kernel"])


def test_linear_bad_init_scheme():
  with pytest.raises(ValueError, match="init_scheme"):
    LinearSoftmax(3, init_scheme="xavier").init(jax.random.key(0), jnp.ones((1, 2)))


def test_cross_entropy_matches_numpy():
  logits = np.random.default_rng(0).normal(size=(6, 4))
  labels = np.array([0, 1, 2, 3, 0, 1])
  expected = -(logits - np.log(np.exp(logits).sum(1, keepdims=True)))[np.arange(6), labels]
  np.testing.assert_allclose(losses.cross_entropy(logits, labels), expected, rtol=1e-5)


@pytest.mark.parametrize("weighting,gamma", [("inverse", 1.0), ("inverse_sqrt", 0.5)])
def test_class_weights(weighting, gamma):
  counts = np.array([64, 16, 4, 1, 0])
  w = np.asarray(losses.class_weights(counts, weighting))
  pi = counts / counts.sum()
  np.testing.assert_allclose(np.sum(pi * w), 1.0, rtol=1e-6)  # the normalisation
  np.testing.assert_allclose(w[1:4] / w[0], (pi[1:4] / pi[0])**-gamma, rtol=1e-5)
  assert w[4] == 0.0


def test_weighted_mean_loss_equals_plain_when_losses_equal():
  counts = jnp.array([10, 3, 1])
  labels = jnp.repeat(jnp.arange(3), counts)
  loss = jnp.full(labels.shape, 2.5)
  w = losses.class_weights(counts, "inverse")
  np.testing.assert_allclose(losses.weighted_mean_loss(loss, labels, w), 2.5, rtol=1e-6)


def test_bad_weighting():
  with pytest.raises(ValueError, match="weighting"):
    losses.class_weights(jnp.ones(3), "balanced")
