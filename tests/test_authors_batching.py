"""Paper H's authors' mini-batch details as options: fixed strided batches
(MiniBatch(order="strided")) and class weights divided by their sum in each batch
(ex.train_builder(weight_normalization="batch")), against numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import experiment as ex, models, optim, train
from imbalance_jax.types import make_dataset

N, D, C = 7, 3, 4


def problem():
  x = np.asarray(jax.random.normal(jax.random.key(0), (N, D)), np.float64)
  y = np.array([0, 0, 0, 1, 1, 2, 3])
  model = models.LinearSoftmax(C, param_dtype=jnp.float64)
  params = model.init(jax.random.key(1), jnp.asarray(x[:1]))
  return model, params, make_dataset(jnp.asarray(x), jnp.asarray(y), C)


def softmax_grad(W, b, x, y, w=None):
  """Gradient of sum_i w_i CE_i / sum_i w_i (plain mean when w is None), numpy."""
  w = np.ones(len(y)) if w is None else w
  z = x @ W + b
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  p[np.arange(len(y)), y] -= 1
  g = p * (w / w.sum())[:, None]
  return x.T @ g, g.sum(0)


def test_strided_batches_repeat_every_epoch(x64):
  model, params, ds = problem()
  run = ex.train_builder(model.apply, num_steps=5, log_every=5,
                         batching=train.MiniBatch(batch_size=2, order="strided"))(
                             optim.parse_run("gd"))
  final = jax.jit(run)(params, ds, 0.3, jax.random.key(2)).params["params"]["head"]
  W, b = (np.asarray(params["params"]["head"][k]) for k in ("kernel", "bias"))
  x, y = np.asarray(ds.x), np.asarray(ds.y)
  for step in range(5):  # K = 7 // 2 = 3 steps per epoch: {0, 3}, {1, 4}, {2, 5}, {0, 3}, ...
    index = step % 3 + 3 * np.arange(2)
    gW, gb = softmax_grad(W, b, x[index], y[index])
    W, b = W - 0.3 * gW, b - 0.3 * gb
  np.testing.assert_allclose(final["kernel"], W, rtol=1e-12)
  np.testing.assert_allclose(final["bias"], b, rtol=1e-12)
  with pytest.raises(ValueError, match="batching.order"):
    train.MiniBatch(batch_size=2, order="sorted")


def test_batch_normalized_class_weights(x64):
  model, params, ds = problem()
  counts = np.bincount(np.asarray(ds.y), minlength=C)
  weights = (1 / counts) / np.sum((counts / N) * (1 / counts))  # inverse, sum_k pi_k w_k = 1
  index = np.array([0, 1, 5])
  batch = ds.replace(x=ds.x[index], y=ds.y[index])
  x, y = np.asarray(batch.x), np.asarray(batch.y)
  W, b = (np.asarray(params["params"]["head"][k]) for k in ("kernel", "bias"))
  z = x @ W + b
  ce = np.log(np.exp(z).sum(1)) - z[np.arange(3), y]
  for normalization, expected in (("set", np.mean(weights[y] * ce)),
                                  ("batch", np.sum(weights[y] * ce) / np.sum(weights[y]))):
    run = ex.train_builder(model.apply, num_steps=1, log_every=1,
                           weight_normalization=normalization)(optim.parse_run("gd@inverse"))
    value, aux = run.objective_fn(params, batch)
    assert float(value) == pytest.approx(expected, rel=1e-12)
    assert float(aux["loss"]) == pytest.approx(np.mean(ce), rel=1e-12)  # tracked: unweighted
  grads = jax.grad(lambda p: run.objective_fn(p, batch)[0])(params)["params"]["head"]
  gW, _ = softmax_grad(W, b, x, y, weights[y])
  np.testing.assert_allclose(grads["kernel"], gW, rtol=1e-12)
  # Full batch: the two normalisations agree (sum_i w_{y_i} = N).
  values = [ex.train_builder(model.apply, num_steps=1, log_every=1, weight_normalization=n)(
      optim.parse_run("gd@inverse")).objective_fn(params, ds)[0] for n in ("set", "batch")]
  assert float(values[0]) == pytest.approx(float(values[1]), rel=1e-12)
  with pytest.raises(ValueError, match="weight_normalization"):
    ex.train_builder(model.apply, num_steps=1, log_every=1, weight_normalization="class")
