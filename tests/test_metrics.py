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


def _hand_example():
  """Six examples, three classes; group 1 = classes {0, 2}, group 0 = class {1}."""
  class_to_group = np.array([1, 0, 1])
  labels = jnp.array([0, 0, 1, 2, 2, 2])
  loss_N = jnp.array([1.0, 3.0, 2.0, 4.0, 6.0, 5.0])
  predictions = jnp.array([0, 1, 1, 2, 0, 2])  # correct: 1, 0, 1, 1, 0, 1
  logits = 2.0 * jax.nn.one_hot(predictions, 3) + jnp.array([0.3, -0.2, 0.1])
  aux = {"logits": logits, "loss_N": loss_N, "loss": jnp.mean(loss_N)}
  data = type("D", (), {"y": labels, "num_classes": 3})()
  return class_to_group, aux, data


def test_group_and_class_metrics_on_a_hand_computed_example():
  class_to_group, aux, data = _hand_example()
  fn = metrics.classification_metrics(class_to_group, per_class=True)
  out = jax.jit(lambda a: fn(None, None, a, data))(aux)
  np.testing.assert_allclose(out["loss"], 21 / 6, rtol=1e-6)
  np.testing.assert_allclose(out["accuracy"], 4 / 6, rtol=1e-6)
  # Group 0 = class 1 (one example); group 1 = classes 0 and 2 (five examples).
  np.testing.assert_allclose(out["group_loss"], [2.0, 19 / 5], rtol=1e-6)
  np.testing.assert_allclose(out["group_accuracy"], [1.0, 3 / 5], rtol=1e-6)
  np.testing.assert_allclose(out["group_prob"],
                             [np.exp(-2.0), np.mean(np.exp(-np.array([1.0, 3, 4, 6, 5])))],
                             rtol=1e-6)
  np.testing.assert_allclose(out["class_loss"], [2.0, 2.0, 5.0], rtol=1e-6)
  np.testing.assert_allclose(out["class_accuracy"], [0.5, 1.0, 2 / 3], rtol=1e-6)
  # A different grouping gives different numbers (the grouping is really used).
  swapped = metrics.classification_metrics(np.array([0, 1, 0]))(None, None, aux, data)
  np.testing.assert_allclose(swapped["group_loss"], [19 / 5, 2.0], rtol=1e-6)
  by_class = metrics.classification_metrics(np.array([0, 1, 2]))(None, None, aux, data)
  np.testing.assert_allclose(by_class["group_loss"], [2.0, 2.0, 5.0], rtol=1e-6)


def test_per_class_mean_hand_computed():
  got = metrics.per_class_mean(jnp.array([1.0, 3.0, 5.0, 7.0]), jnp.array([2, 0, 2, 2]), 4)
  np.testing.assert_allclose(got, [3.0, np.nan, 13 / 3, np.nan], rtol=1e-6)  # NaN: empty class
