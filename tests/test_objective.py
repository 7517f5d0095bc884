"""`classification_objective` on tiny arrays: its aux entries by hand, class weighting
(the reported loss stays unweighted, float32 stays float32 under x64), sequence labels,
and what a stateful objective passes to the model's ``apply``.

Pinned by mutation testing (docs/testing.md); a direct call, no model, no optimizer.
The weighted objective inside a training run: `test_train.py`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import losses
from imbalance_jax.train import objective
from imbalance_jax.types import make_dataset


def _linear_apply(params, x):
  return x @ params


def _objective_data():
  x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]], np.float32)
  return make_dataset(x, np.array([0, 0, 0, 1]), 2)


def test_objective_outputs_by_hand():
  ds = _objective_data()
  params = jnp.array([[1.0, -1.0], [0.5, 2.0]])
  value, aux = objective.classification_objective(_linear_apply)(params, ds)
  logits = np.asarray(ds.x) @ np.asarray(params)
  log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  loss_N = -log_probs[np.arange(4), np.asarray(ds.y)]
  assert sorted(aux) == ["confidence_N", "label_N", "logits", "loss", "loss_N", "prediction_N"]
  np.testing.assert_allclose(value, loss_N.mean(), rtol=1e-6)
  np.testing.assert_allclose(aux["loss"], loss_N.mean(), rtol=1e-6)
  np.testing.assert_allclose(aux["loss_N"], loss_N, rtol=1e-6)
  np.testing.assert_allclose(aux["logits"], logits, rtol=1e-6)
  np.testing.assert_array_equal(aux["label_N"], ds.y)
  np.testing.assert_array_equal(aux["prediction_N"], logits.argmax(1))
  np.testing.assert_allclose(aux["confidence_N"], np.exp(log_probs).max(1), rtol=1e-6)


@pytest.mark.parametrize("weighting", ["inverse", "inverse_sqrt"])
def test_weighted_objective_reports_the_unweighted_loss(weighting):
  ds = _objective_data()
  params = jnp.array([[1.0, -1.0], [0.5, 2.0]])
  value, aux = objective.classification_objective(_linear_apply, weighting)(params, ds)
  _, plain = objective.classification_objective(_linear_apply)(params, ds)
  weights = losses.class_weights(ds.class_counts, weighting)
  expected = losses.weighted_mean_loss(plain["loss_N"], ds.y, weights)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  assert abs(float(value) - float(plain["loss"])) > 1e-3  # the weighting matters here
  np.testing.assert_allclose(aux["loss"], plain["loss"], rtol=1e-6)  # unweighted
  assert value.dtype == aux["loss_N"].dtype


def test_objective_rejects_an_unknown_weighting_eagerly():
  with pytest.raises(ValueError, match="weighting"):
    objective.classification_objective(_linear_apply, "squared")
  with pytest.raises(ValueError, match="weighting"):
    objective.classification_objective(_linear_apply, "squared", stateful=True)


def test_objective_flattens_sequence_labels():
  ds = _objective_data()
  seq = ds.replace(x=jnp.stack([ds.x, 2 * ds.x], axis=1), y=jnp.stack([ds.y, 1 - ds.y], axis=1))
  params = jnp.array([[1.0, -1.0], [0.5, 2.0]])
  value, aux = objective.classification_objective(_linear_apply)(params, seq)  # logits [4, 2, 2]
  assert aux["loss_N"].shape == aux["label_N"].shape == aux["prediction_N"].shape == (8,)
  np.testing.assert_array_equal(aux["label_N"], np.asarray(seq.y).reshape(-1))
  np.testing.assert_array_equal(aux["prediction_N"],
                                np.asarray(aux["logits"]).argmax(-1).reshape(-1))
  np.testing.assert_allclose(value, np.mean(np.asarray(aux["loss_N"])), rtol=1e-6)


class _RecordingApply:
  """A stand-in for Flax's ``Module.apply`` that records how it was called."""

  def __init__(self):
    self.calls = []

  def __call__(self, variables, x, *, train, rngs, mutable=None):
    self.calls.append({"keys": sorted(variables), "train": train, "rngs": sorted(rngs),
                       "mutable": mutable})
    logits = x @ variables["params"]
    if mutable is not None:
      return logits, {"batch_stats": {"mean": variables["batch_stats"]["mean"] + 1.0}}
    return logits


def test_stateful_objective_passes_train_mutable_and_rngs():
  ds = _objective_data()
  params = jnp.array([[1.0, -1.0], [0.5, 2.0]])
  state = {"batch_stats": {"mean": jnp.zeros(2)}}
  key = jax.random.key(0)
  apply = _RecordingApply()
  fn = objective.classification_objective(apply, stateful=True)
  value, aux = fn(params, ds, state, key, True)  # training with state: mutable, dropout rng
  assert apply.calls[-1] == {"keys": ["batch_stats", "params"], "train": True,
                             "rngs": ["dropout"], "mutable": ["batch_stats"]}
  assert isinstance(aux["model_state"], dict)
  np.testing.assert_array_equal(aux["model_state"]["batch_stats"]["mean"], [1.0, 1.0])
  _, plain = objective.classification_objective(_linear_apply)(params, ds)
  np.testing.assert_allclose(value, plain["loss"], rtol=1e-6)
  np.testing.assert_allclose(aux["loss_N"], plain["loss_N"], rtol=1e-6)

  _, aux = fn(params, ds, state, key, False)  # evaluation: no rng, state unchanged
  assert apply.calls[-1] == {"keys": ["batch_stats", "params"], "train": False, "rngs": [],
                             "mutable": None}
  assert aux["model_state"] is state
  _, aux = fn(params, ds, state, None, True)  # training without a key: no dropout rng
  assert apply.calls[-1]["rngs"] == [] and apply.calls[-1]["mutable"] == ["batch_stats"]
  _, aux = fn(params, ds, {}, key, True)  # training without state (dropout only)
  assert apply.calls[-1] == {"keys": ["params"], "train": True, "rngs": ["dropout"],
                             "mutable": None}
  assert aux["model_state"] == {}


def test_weighted_objective_keeps_float32_under_x64():
  # Class weights come out in the default float dtype (float64 under x64); the objective
  # keeps the dtype of the per-example losses, so float32 runs stay float32.
  with jax.enable_x64(True):
    ds = _objective_data()
    params = jnp.array([[1.0, -1.0], [0.5, 2.0]], jnp.float32)
    value, aux = objective.classification_objective(_linear_apply, "inverse")(params, ds)
    assert aux["loss_N"].dtype == jnp.float32 and value.dtype == jnp.float32

