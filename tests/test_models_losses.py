import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import losses
from imbalance_jax.models import LinearSoftmax, SmallCNN


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
  with pytest.raises(ValueError, match="^weighting must be one of "):
    losses.class_weights(jnp.ones(3), "balanced")


def test_class_weights_none_default_dtype_and_rows():
  counts = jnp.array([64, 16, 4, 1])
  for w in (losses.class_weights(counts), losses.class_weights(counts, "none")):
    np.testing.assert_array_equal(w, 1.0)
  # Counts of any dtype give weights in the default float dtype.
  default = jnp.result_type(float)  # float32, or float64 under x64
  assert losses.class_weights(counts.astype(jnp.float16), "inverse").dtype == default
  # A leading axis holds independent count vectors (each row normalised on its own).
  rows = jnp.array([[3, 1, 0], [1, 1, 2]])
  for weighting in ("inverse", "inverse_sqrt"):
    np.testing.assert_allclose(losses.class_weights(rows, weighting),
                               [losses.class_weights(r, weighting) for r in rows], rtol=1e-6)


def test_weighted_mean_loss_uses_the_weight_of_each_label():
  labels = jnp.array([0, 0, 1, 2])
  loss = jnp.array([1.0, 3.0, 2.0, 4.0])
  weights = jnp.array([0.5, 2.0, 0.25])
  # (0.5 * 1 + 0.5 * 3 + 2 * 2 + 0.25 * 4) / 4 = 7 / 4; the plain mean is 10 / 4.
  np.testing.assert_allclose(losses.weighted_mean_loss(loss, labels, weights), 1.75, rtol=1e-6)
  np.testing.assert_allclose(losses.weighted_mean_loss(loss, labels), 2.5, rtol=1e-6)
  # The reweighted objective's gradient: rare classes pull harder.
  counts = jnp.array([2, 1, 1])
  w = losses.class_weights(counts, "inverse")  # pi = (1/2, 1/4, 1/4): w = (2, 4, 4) / 3
  np.testing.assert_allclose(w, [2 / 3, 4 / 3, 4 / 3], rtol=1e-6)
  grad = jax.grad(losses.weighted_mean_loss)(loss, labels, w)
  np.testing.assert_allclose(grad, np.array([2, 2, 4, 4]) / 3 / 4, rtol=1e-6)


def _conv_same(x_NHWC, kernel_HWIO, bias):
  """Stride-1 convolution with zero padding k // 2 (cross-correlation, as in Flax)."""
  k = kernel_HWIO.shape[0]
  pad = k // 2
  xp = np.pad(x_NHWC, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  n, h, w, _ = x_NHWC.shape
  out = np.zeros((n, h, w, kernel_HWIO.shape[-1]))
  for i in range(h):
    for j in range(w):
      patch = xp[:, i:i + k, j:j + k, :]  # [N, k, k, I]
      out[:, i, j, :] = np.einsum("nabi,abio->no", patch, kernel_HWIO)
  return out + bias


def _max_pool_2x2(x_NHWC):
  n, h, w, c = x_NHWC.shape
  return x_NHWC[:, :h - h % 2, :w - w % 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def test_small_cnn_equals_a_float64_numpy_reference():
  with jax.enable_x64(True):
    model = SmallCNN(num_classes=3, features=(2, 4), kernel_size=3, param_dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8), jnp.float64)  # [N, H, W]: channel added
    variables = jax.jit(model.init)(jax.random.key(1), x)
    logits, features = jax.jit(model.apply, static_argnames="return_features")(
        variables, x, return_features=True)
  p = jax.tree.map(np.asarray, variables["params"])
  h = np.asarray(x)[..., None]
  for i, fan_in in enumerate((3 * 3 * 1, 3 * 3 * 2)):
    conv = p[f"conv_{i}"]
    bound = 1 / np.sqrt(fan_in)  # PyTorch's default init
    assert np.abs(conv["kernel"]).max() <= bound and np.abs(conv["bias"]).max() <= bound
    h = _max_pool_2x2(np.maximum(_conv_same(h, conv["kernel"], conv["bias"]), 0))
  assert h.shape == (2, 2, 2, 4)
  h = h.reshape(2, -1)
  np.testing.assert_allclose(features, h, rtol=1e-12, atol=1e-14)
  head = p["head"]
  assert head["kernel"].shape == (16, 3) and np.abs(head["kernel"]).max() <= 1 / 4
  np.testing.assert_allclose(logits, h @ head["kernel"] + head["bias"], rtol=1e-12, atol=1e-14)
