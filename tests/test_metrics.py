import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import metrics


def test_per_class_and_group_metrics_equal_python_loop():
  rng = np.random.default_rng(0)
  num_classes, n = 6, 40
  labels = rng.integers(0, num_classes - 1, n)  # class 5 has no examples
  logits = rng.normal(size=(n, num_classes))
  class_to_group = np.array([0, 0, 1, 1, 2, 2])
  log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  loss = -log_probs[np.arange(n), labels]
  aux = {"logits": jnp.asarray(logits), "loss_N": jnp.asarray(loss)}
  data = type("D", (), {"y": jnp.asarray(labels), "num_classes": num_classes})()
  got = metrics.classification_metrics(class_to_group, per_class=True)(None, None, aux, data)

  pred = logits.argmax(1)
  for k in range(num_classes):
    mask = labels == k
    if not mask.any():
      assert np.isnan(got["class_loss"][k])
      continue
    np.testing.assert_allclose(got["class_loss"][k], loss[mask].mean(), rtol=1e-6)
    np.testing.assert_allclose(got["class_accuracy"][k], (pred[mask] == k).mean(), rtol=1e-6)
    np.testing.assert_allclose(got["class_prob"][k], np.exp(-loss[mask]).mean(), rtol=1e-6)
  for g in range(3):
    mask = class_to_group[labels] == g
    # A group's value is the count-weighted mean of its classes' values.
    np.testing.assert_allclose(got["group_loss"][g], loss[mask].mean(), rtol=1e-6)
    np.testing.assert_allclose(got["group_accuracy"][g], (pred[mask] == labels[mask]).mean(),
                               rtol=1e-6)
  np.testing.assert_allclose(got["loss"], loss.mean(), rtol=1e-6)
  np.testing.assert_allclose(got["accuracy"], (pred == labels).mean(), rtol=1e-6)


def test_metrics_are_jittable():
  fn = metrics.classification_metrics(np.array([0, 1, 1]))
  aux = {"logits": jnp.zeros((4, 3)), "loss_N": jnp.full(4, jnp.log(3.0))}
  data = type("D", (), {"y": jnp.array([0, 1, 2, 2]), "num_classes": 3})()
  out = jax.jit(lambda a: fn(None, None, a, data))(aux)
  np.testing.assert_allclose(out["group_prob"], [1 / 3, 1 / 3], rtol=1e-6)
