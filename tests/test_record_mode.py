"""train.make_train(record_train_mode=True): losses recorded with dropout active (paper H's
authors' loop never switches to evaluation mode), against direct applications of the model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import losses, optim, train
from imbalance_jax.data import TokenWindows
from imbalance_jax.models import transformer as tr

V, T, N = 7, 4, 6


def setup():
  model = tr.Transformer(vocab_size=V, d_model=4, num_heads=1, mlp_dim=4, dropout_rate=0.5,
                         param_dtype=jnp.float64)
  x = jax.random.randint(jax.random.key(0), (N, T), 0, V)
  y = jnp.roll(x, -1, axis=1)
  windows = TokenWindows(x=x, y=y, class_counts=jnp.bincount(y.reshape(-1), length=V),
                         num_classes=V)
  return model, jax.jit(model.init)(jax.random.key(1), x), windows


def _loss(model, params, windows, key=None):
  rngs = {} if key is None else {"dropout": key}
  logits = model.apply(params, windows.x, train=key is not None, rngs=rngs)
  return jnp.mean(losses.cross_entropy(logits, windows.y))


def loss(model, params, windows, keys=None):
  """The full-set loss in evaluation mode (``keys=None``) or with each of ``keys [K]``."""
  if keys is None:
    return jax.jit(_loss, static_argnums=0)(model, params, windows)
  return jax.jit(jax.vmap(_loss, (None, None, None, 0)), static_argnums=0)(model, params,
                                                                           windows, keys)


def run(model, params, windows, batching, record_train_mode, key):
  t = train.make_train(train.classification_objective(model.apply, stateful=True),
                       optim.injectable("gd", 0.0), num_steps=2, log_every=1, stateful=True,
                       batching=batching, record_train_mode=record_train_mode)
  return jax.jit(t)(params, windows, 0.0, key).history["loss"]  # lr 0: params stay put


def test_full_batch_records_the_steps_dropout_loss(x64):
  model, params, windows = setup()
  key = jax.random.key(5)
  step_keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(key, s), 0)  # chunk 0
                         for s in range(3)])
  recorded = run(model, params, windows, train.FullBatch(), True, key)
  expected = loss(model, params, windows, step_keys)
  np.testing.assert_allclose(recorded, expected, rtol=1e-12)
  # Fresh masks at every step, none of them the model's own (evaluation-mode) loss; the
  # evaluation-mode recording itself is compared in the mini-batch test below.
  assert np.ptp(recorded) > 1e-3
  assert np.all(np.abs(recorded - loss(model, params, windows)) > 1e-4)


@pytest.mark.slow
def test_minibatch_records_fresh_dropout_distinct_from_steps(x64):
  model, params, windows = setup()
  key = jax.random.key(6)
  record = jax.random.fold_in(key, 2**31 - 2)
  # step s's record key, split 0 (train), chunk 0
  expected = loss(model, params, windows, jnp.stack([
      jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(record, s), 0), 0)
      for s in range(3)]))
  recorded = run(model, params, windows, train.MiniBatch(batch_size=2), True, key)
  np.testing.assert_allclose(recorded, expected, rtol=1e-12)
  evaluated = run(model, params, windows, train.MiniBatch(batch_size=2), False, key)
  np.testing.assert_allclose(evaluated, [loss(model, params, windows)] * 3, rtol=1e-12)


def test_needs_stateful():
  model = tr.Transformer(vocab_size=V, dropout_rate=0.5)
  with pytest.raises(ValueError, match="record_train_mode=True needs stateful=True"):
    train.make_train(train.classification_objective(model.apply), optim.injectable("gd", 0.0),
                     num_steps=1, record_train_mode=True)
