"""Per-class and per-group metrics, and the block gradient norms of a Dense layer.

Against a Python loop over examples and a hand-computed example in which the
grouping changes every group value; then tiny hand-computed arrays (no training,
no compiled model) for the per-token ``label_N``/``prediction_N`` entries of the
aux dict, the defaults, the exact error messages, dtypes under x64 and the block
norms.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import metrics
from imbalance_jax.metrics import blocks


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


# --- aux entries, defaults, messages, dtypes and block norms on hand-computed arrays ------
# Pinned by mutation testing (docs/testing.md); in 32 bits only (`no_float64`), as written.


class _Data:
  """The two fields `classification_metrics` reads from a data object."""

  def __init__(self, y, num_classes):
    self.y, self.num_classes = y, num_classes


@pytest.mark.no_float64
def test_metrics_use_aux_labels_and_predictions_over_data_and_logits():
  # Sequence data: data.y is [N, T] while the objective's aux holds the flat tokens.
  data = _Data(jnp.array([[0, 1], [1, 1]]), num_classes=2)
  aux = {"loss_N": jnp.array([1.0, 2.0, 3.0, 4.0]),
         "label_N": jnp.array([0, 1, 1, 1]),
         "prediction_N": jnp.array([0, 0, 1, 1])}  # correct: 1, 0, 1, 1; no logits at all
  out = metrics.classification_metrics(np.array([0, 1]), per_class=True)(None, None, aux, data)
  np.testing.assert_allclose(out["loss"], 2.5, rtol=1e-6)
  np.testing.assert_allclose(out["accuracy"], 0.75, rtol=1e-6)
  np.testing.assert_allclose(out["class_loss"], [1.0, 3.0], rtol=1e-6)
  np.testing.assert_allclose(out["class_accuracy"], [1.0, 2 / 3], rtol=1e-6)
  np.testing.assert_allclose(out["group_loss"], [1.0, 3.0], rtol=1e-6)
  np.testing.assert_allclose(out["class_prob"],
                             [np.exp(-1.0), np.mean(np.exp(-np.array([2.0, 3.0, 4.0])))],
                             rtol=1e-6)


@pytest.mark.no_float64
def test_prediction_n_wins_over_logits_and_label_n_over_data_y():
  data = _Data(jnp.array([1, 1, 0]), num_classes=2)  # label_N below disagrees with data.y
  aux = {"loss_N": jnp.array([1.0, 1.0, 1.0]), "label_N": jnp.array([0, 0, 1]),
         "prediction_N": jnp.array([0, 0, 1]),
         "logits": jnp.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])}  # argmax: 1, 0, 0
  out = metrics.classification_metrics(np.array([0, 1]))(None, None, aux, data)
  np.testing.assert_allclose(out["accuracy"], 1.0)  # label_N == prediction_N
  np.testing.assert_allclose(out["group_accuracy"], [1.0, 1.0])
  # Without the aux entries, data.y and argmax(logits) are used: 2 correct of 3.
  del aux["label_N"], aux["prediction_N"]
  out = metrics.classification_metrics(np.array([0, 1]))(None, None, aux, data)
  np.testing.assert_allclose(out["accuracy"], 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(out["group_accuracy"], [1.0, 0.5], rtol=1e-6)


@pytest.mark.no_float64
def test_per_class_is_off_by_default_and_keys_are_exact():
  data = _Data(jnp.array([0, 1]), num_classes=2)
  aux = {"loss_N": jnp.array([1.0, 2.0]), "prediction_N": jnp.array([0, 1])}
  out = metrics.classification_metrics(np.array([0, 0]))(None, None, aux, data)
  assert sorted(out) == ["accuracy", "group_accuracy", "group_loss", "group_prob", "loss"]
  assert out["group_loss"].shape == (1,)  # one group: max id + 1
  out = metrics.classification_metrics(np.array([0, 0]), per_class=True)(None, None, aux, data)
  assert sorted(out) == ["accuracy", "class_accuracy", "class_loss", "class_prob",
                         "group_accuracy", "group_loss", "group_prob", "loss"]


@pytest.mark.no_float64
def test_group_ids_may_skip_numbers_and_accept_any_integer_dtype():
  # Group 1 is empty (NaN) and there are max id + 1 = 3 groups.
  data = _Data(jnp.array([0, 1, 1]), num_classes=2)
  aux = {"loss_N": jnp.array([1.0, 2.0, 4.0]), "prediction_N": jnp.array([0, 1, 0])}
  out = metrics.classification_metrics(np.array([0, 2], np.uint8))(None, None, aux, data)
  np.testing.assert_allclose(out["group_loss"], [1.0, np.nan, 3.0], rtol=1e-6)
  np.testing.assert_allclose(out["group_accuracy"], [1.0, np.nan, 0.5], rtol=1e-6)


@pytest.mark.no_float64
@pytest.mark.parametrize("class_to_group", [
    np.array([[0, 1]]),          # 2-d
    np.array([], np.int32),      # empty
    np.array([0.0, 1.0]),        # not integer
    np.array([0, -1]),           # negative
])
def test_bad_class_to_group_message(class_to_group):
  with pytest.raises(ValueError, match=r"^class_to_group must be a non-empty 1-d array of "
                                       r"non-negative group indices, got "):
    metrics.classification_metrics(class_to_group)


@pytest.mark.no_float64
def test_good_class_to_group_edge_cases_are_accepted():
  metrics.classification_metrics(np.array([0]))        # one class, group 0 (min == 0)
  metrics.classification_metrics(np.array([1, 1]))     # min > 0


@pytest.mark.no_float64
def test_class_count_mismatch_message():
  fn = metrics.classification_metrics(np.array([0, 0, 1]))
  aux = {"loss_N": jnp.array([1.0]), "prediction_N": jnp.array([0])}
  with pytest.raises(ValueError, match=r"^class_to_group has 3 entries but the data have "
                                       r"num_classes=2$"):
    fn(None, None, aux, _Data(jnp.array([0]), num_classes=2))


@pytest.mark.no_float64
def test_per_class_mean_of_a_single_example_class_and_integer_counts():
  # A class with one example is its value (count 1 is neither NaN nor halved).
  got = metrics.per_class_mean(jnp.array([4.0, 2.0, 6.0]), jnp.array([1, 0, 0]), 2)
  np.testing.assert_allclose(got, [4.0, 4.0], rtol=1e-6)


@pytest.mark.no_float64
def test_layer_params_accepts_every_nesting_and_names_a_missing_layer():
  head = {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)}
  assert blocks.layer_params({"params": {"head": head}}) is head
  assert blocks.layer_params({"head": head}) is head
  assert blocks.layer_params(head) is head
  other = {"kernel": jnp.zeros((2, 2))}
  assert blocks.layer_params({"params": {"head": head, "out": other}}, "out") is other
  # A layer holding a "params" entry next to its kernel is the layer itself.
  odd = {"kernel": jnp.zeros((1, 1)), "params": {}}
  assert blocks.layer_params(odd) is odd
  with pytest.raises(ValueError, match=r"^layer must name a Dense layer with a 'kernel', got "
                                       r"layer='tail' for a tree with keys \['params'\]$"):
    blocks.layer_params({"params": {"head": head}}, "tail")
  with pytest.raises(ValueError, match=r"for a tree with keys \['bias'\]$"):
    blocks.layer_params({"bias": jnp.zeros(3)})
  with pytest.raises(ValueError, match=r"got layer='head' for a tree with keys 3$"):
    blocks.layer_params(3)


@pytest.mark.no_float64
def test_block_grad_norms_by_hand():
  grads = {"params": {"head": {"kernel": jnp.array([[3.0, 0.0], [4.0, 1.0]]),
                               "bias": jnp.array([12.0, 0.0])},
                      "out": {"kernel": jnp.array([[[1.0, 2.0]], [[2.0, 2.0]]])}}}
  np.testing.assert_allclose(blocks.block_grad_norms(grads), [5.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(blocks.block_grad_norms(grads, include_bias=True), [13.0, 1.0],
                             rtol=1e-6)
  # A kernel with more than two axes: every axis but the last is summed over.
  np.testing.assert_allclose(blocks.block_grad_norms(grads, layer="out"), [np.sqrt(5), np.sqrt(8)],
                             rtol=1e-6)
  with pytest.raises(ValueError, match=r"^include_bias=True but layer 'out' has no bias$"):
    blocks.block_grad_norms(grads, layer="out", include_bias=True)


def test_metrics_keep_the_loss_dtype_under_x64():
  # Accuracies are cast to the loss dtype, not to the default float (float64 under x64).
  with jax.enable_x64(True):
    data = _Data(jnp.array([0, 1]), num_classes=2)
    aux = {"loss_N": jnp.array([1.0, 2.0], jnp.float32), "prediction_N": jnp.array([0, 0])}
    out = metrics.classification_metrics(np.array([0, 1]), per_class=True)(None, None, aux, data)
    assert {k: v.dtype for k, v in out.items()} == {k: jnp.float32 for k in out}
    np.testing.assert_allclose(out["class_accuracy"], [1.0, 0.0])
