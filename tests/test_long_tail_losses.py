"""Long-tail losses and weightings against float64 NumPy references, and their identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import data, losses, metrics, models, optim, train
from imbalance_jax.losses import long_tail
from imbalance_jax.types import make_dataset

# Counts with an empty class (2); labels only of the non-empty classes.
COUNTS = np.array([50, 10, 0, 3, 1])
LABELS = np.array([0, 1, 3, 4, 0, 1, 4])


def _log_softmax(z):
  z_max = np.max(np.where(np.isfinite(z), z, -np.inf), -1, keepdims=True)
  return z - z_max - np.log(np.sum(np.exp(z - z_max), -1, keepdims=True))


def _ce(z, y):
  return -_log_softmax(z)[np.arange(len(y)), y]


def _log_pi(counts):
  pi = counts / counts.sum()
  with np.errstate(divide="ignore"):
    return np.log(pi)


def ref_logit_adjust(z, y, counts, tau):
  return _ce(z + tau * _log_pi(counts), y)


def ref_balanced_softmax(z, y, counts):
  pi = counts / counts.sum()  # -log(pi_y e^{z_y} / sum_j pi_j e^{z_j}), written out
  e = np.exp(z - z.max(-1, keepdims=True))
  return -np.log(pi[y] * e[np.arange(len(y)), y] / (e * pi).sum(-1))


def ref_ldam(z, y, counts, max_margin, scale):
  raw = np.array([n ** -0.25 if n > 0 else 0.0 for n in counts])
  margins = max_margin * raw / raw.max()
  shifted = z.copy()
  shifted[np.arange(len(y)), y] -= margins[y]
  return _ce(scale * shifted, y)


def ref_focal(z, y, gamma):
  p = np.exp(-_ce(z, y))
  return -(1 - p) ** gamma * np.log(p)


def ref_vs(z, y, counts, gamma, tau):
  delta = (counts / counts.max()) ** gamma
  return _ce(z * delta + tau * _log_pi(counts), y)


def ref_class_balanced(counts, beta):
  raw = np.array([(1 - beta) / (1 - beta ** n) if n > 0 else 0.0 for n in counts])
  pi = counts / counts.sum()
  return raw / np.sum(pi * raw)


def _numeric_grad(f, z, h=1e-6):
  """Central differences of sum(f(z)) in float64."""
  g = np.zeros_like(z)
  for idx in np.ndindex(z.shape):
    zp, zm = z.copy(), z.copy()
    zp[idx] += h
    zm[idx] -= h
    g[idx] = (f(zp).sum() - f(zm).sum()) / (2 * h)
  return g


CASES = [
    ("logit_adjust", lambda z, y, c: long_tail.logit_adjusted_loss(z, y, c, 0.7),
     lambda z, y, c: ref_logit_adjust(z, y, c, 0.7)),
    ("balanced_softmax", long_tail.balanced_softmax_loss, ref_balanced_softmax),
    ("ldam", lambda z, y, c: long_tail.ldam_loss(z, y, c, 0.5, 2.0),
     lambda z, y, c: ref_ldam(z, y, c, 0.5, 2.0)),
    ("focal", lambda z, y, c: long_tail.focal_loss(z, y, 2.0), lambda z, y, c: ref_focal(z, y, 2.0)),
    ("vs", lambda z, y, c: long_tail.vs_loss(z, y, c, 0.3, 0.5),
     lambda z, y, c: ref_vs(z, y, c, 0.3, 0.5)),
]


@pytest.mark.parametrize("name,fn,ref", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("counts,labels", [(COUNTS, LABELS), (np.array([7]), np.zeros(3, int))],
                         ids=["empty_class", "single_class"])
def test_loss_values_and_gradients_match_numpy(x64, name, fn, ref, counts, labels):
  del name
  z = np.random.default_rng(0).normal(size=(len(labels), len(counts))) * 2.0
  value = fn(jnp.asarray(z), jnp.asarray(labels), jnp.asarray(counts))
  np.testing.assert_allclose(value, ref(z, labels, counts), rtol=1e-10, atol=1e-12)
  grad = jax.grad(lambda zz: fn(zz, jnp.asarray(labels), jnp.asarray(counts)).sum())(
      jnp.asarray(z))
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad, _numeric_grad(lambda zz: ref(zz, labels, counts), z),
                             atol=1e-7)


def test_identities(x64):
  z = jnp.asarray(np.random.default_rng(1).normal(size=(len(LABELS), len(COUNTS))))
  y, c = jnp.asarray(LABELS), jnp.asarray(COUNTS)
  ce = losses.cross_entropy(z, y)
  np.testing.assert_allclose(long_tail.balanced_softmax_loss(z, y, c),
                             long_tail.logit_adjusted_loss(z, y, c, 1.0), rtol=1e-12)
  np.testing.assert_allclose(long_tail.logit_adjusted_loss(z, y, c, 0.0), ce, rtol=1e-12)
  np.testing.assert_allclose(long_tail.ldam_loss(z, y, c, 0.0), ce, rtol=1e-12)
  np.testing.assert_allclose(long_tail.focal_loss(z, y, 0.0), ce, rtol=1e-12)
  np.testing.assert_allclose(long_tail.vs_loss(z, y, c, 0.0, 0.6),
                             long_tail.logit_adjusted_loss(z, y, c, 0.6), rtol=1e-12)
  # Post hoc: argmax of logits - tau log pi, and the empty class is never predicted.
  adjusted = long_tail.post_hoc_adjusted_logits(z, c, 1.0)
  expected = np.asarray(z) - np.where(COUNTS > 0, _log_pi(COUNTS), 0.0)
  np.testing.assert_allclose(np.asarray(adjusted)[:, COUNTS > 0], expected[:, COUNTS > 0])
  assert np.all(np.isneginf(np.asarray(adjusted)[:, 2]))
  np.testing.assert_array_equal(long_tail.post_hoc_adjusted_logits(z, c, 0.0), z)


def test_class_balanced_weights_and_limits(x64):
  for beta in (0.0, 0.5, 0.99, 0.9999):
    np.testing.assert_allclose(losses.class_weights(jnp.asarray(COUNTS), "class_balanced",
                                                    beta=beta),
                               ref_class_balanced(COUNTS, beta), rtol=1e-9)
  near_one = losses.class_weights(jnp.asarray(COUNTS), "class_balanced", beta=1 - 1e-9)
  np.testing.assert_allclose(near_one, losses.class_weights(jnp.asarray(COUNTS), "inverse"),
                             rtol=1e-6)
  at_zero = losses.class_weights(jnp.asarray(COUNTS), "class_balanced", beta=0.0)
  np.testing.assert_allclose(at_zero, np.where(COUNTS > 0, 1.0, 0.0), rtol=1e-12)
  with pytest.raises(ValueError, match="^beta must lie in"):
    losses.class_weights(jnp.asarray(COUNTS), "class_balanced", beta=1.0)


def test_ldam_drw_switches_at_the_step_under_jit(x64):
  z = jnp.asarray(np.random.default_rng(2).normal(size=(len(LABELS), len(COUNTS))))
  y, c = jnp.asarray(LABELS), jnp.asarray(COUNTS)
  fn = jax.jit(lambda step: long_tail.training_loss("ldam_drw", z, y, c, step, drw_step=5))
  ldam = ref_ldam(np.asarray(z), LABELS, COUNTS, 0.5, 1.0)
  np.testing.assert_allclose(fn(4), ldam, rtol=1e-10)
  np.testing.assert_allclose(fn(jnp.int32(5)), ref_class_balanced(COUNTS, 0.9999)[LABELS] * ldam,
                             rtol=1e-9)
  with pytest.raises(ValueError, match="^loss must be one of"):
    long_tail.training_loss("nope", z, y, c)
  with pytest.raises(ValueError, match="unknown loss hyperparameters"):
    long_tail.training_loss("ldam", z, y, c, gamma=1.0)


def test_run_names_and_objective_train_with_a_long_tail_loss():
  assert optim.parse_run("adam+m@balanced_softmax").weighting == "balanced_softmax"
  assert optim.parse_run("gd@ldam_drw").weighting == "ldam_drw"  # built with its drw_step
  with pytest.raises(ValueError, match="drw_step must be given"):
    train.classification_objective(lambda p, x: x, "ldam_drw")
  with pytest.raises(ValueError, match="^weighting must be one of"):
    train.classification_objective(lambda p, x: x, "nope")
  x = np.random.default_rng(3).normal(size=(7, 4)).astype(np.float32)
  ds = make_dataset(x, LABELS, len(COUNTS))
  model = models.LinearSoftmax(ds.num_classes)
  params = model.init(jax.random.key(0), ds.x[:1])
  value, aux = train.classification_objective(model.apply, "logit_adjust")(params, ds)
  logits = model.apply(params, ds.x)
  np.testing.assert_allclose(value, jnp.mean(long_tail.logit_adjusted_loss(
      logits, ds.y, ds.class_counts)), rtol=1e-6)
  np.testing.assert_allclose(aux["loss"], jnp.mean(losses.cross_entropy(logits, ds.y)), rtol=1e-6)
  groups = data.frequency_groups(np.asarray(ds.class_counts), num_groups=2)
  del groups
  run = train.make_train(train.classification_objective(model.apply, "ldam"),
                         optim.injectable("gd", 0.9), num_steps=4, log_every=2)
  result = run(params, ds, 0.1)
  assert bool(result.finite)


def _reference_exp_counts(num_classes, img_max, imb_factor):
  """Cao et al.'s LDAM-DRW code, IMBALANCECIFAR10.get_img_num_per_cls(imb_type='exp')."""
  img_num_per_cls = []
  for cls_idx in range(num_classes):
    num = img_max * (imb_factor**(cls_idx / (num_classes - 1.0)))
    img_num_per_cls.append(int(num))
  return img_num_per_cls


def test_exponential_counts_match_the_reference_code():
  assert data.exponential_counts(10, 5000, 100).tolist() == [
      5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # CIFAR-10-LT, rho = 100
  for c, n_max, rho in [(10, 5000, 10), (10, 5000, 50), (100, 500, 100), (100, 500, 10),
                        (7, 1300, 256), (2, 30, 3), (1000, 1280, 10)]:
    assert data.exponential_counts(c, n_max, rho).tolist() == _reference_exp_counts(
        c, n_max, 1 / rho), (c, n_max, rho)
  assert data.exponential_counts(1, 9, 5).tolist() == [9]
  for bad, match in [(dict(ratio=0.5), "^ratio must be >= 1"),
                     (dict(max_per_class=0), "^max_per_class must be"),
                     (dict(ratio=1000), "leaves the last class no examples")]:
    with pytest.raises(ValueError, match=match):
      data.exponential_counts(4, bad.get("max_per_class", 10), bad.get("ratio", 2))


def test_exponential_subsample_keeps_the_profile_per_class_id():
  y = np.repeat(np.arange(5), [20, 30, 20, 25, 40])
  ds = make_dataset(np.arange(len(y), dtype=np.float32)[:, None], y, 5)
  sub = data.exponential_subsample(jax.random.key(0), ds, ratio=10)
  assert sub.class_counts.tolist() == _reference_exp_counts(5, 20, 0.1)
  assert np.all(np.diff(np.asarray(sub.x[:, 0])) > 0)  # original order kept
  with pytest.raises(ValueError, match="asks class 0 for 25 examples but it has 20"):
    data.exponential_subsample(jax.random.key(0), ds, ratio=10, max_per_class=25)


def _ref_ece(conf, correct, bins):
  """Guo et al.'s ECE with equal-width bins (0, 1/B], (1/B, 2/B], ..., in float64."""
  edges = np.linspace(0, 1, bins + 1)
  total = 0.0
  for lo, hi in zip(edges[:-1], edges[1:]):
    sel = (conf > lo) & (conf <= hi) if lo > 0 else (conf <= hi)
    if sel.any():
      total += sel.sum() / len(conf) * abs(correct[sel].mean() - conf[sel].mean())
  return total


def test_long_tail_metrics_against_sklearn_and_a_numpy_ece(x64):
  from sklearn.metrics import balanced_accuracy_score
  from imbalance_jax.metrics.long_tail import long_tail_metrics
  rng = np.random.default_rng(4)
  train_counts = np.array([300, 150, 60, 25, 10, 3, 0])
  groups = np.array([0, 0, 1, 1, 2, 2, 2])
  y = rng.choice(6, size=200)  # class 6 absent from the split, class 5 few-shot
  pred = np.where(rng.random(200) < 0.6, y, rng.choice(7, size=200))
  conf = rng.uniform(0.2, 1.0, size=200)
  aux = {"label_N": jnp.asarray(y), "prediction_N": jnp.asarray(pred),
         "confidence_N": jnp.asarray(conf)}
  out = jax.jit(lambda a: long_tail_metrics(train_counts, groups, num_bins=10)(None, None, a,
                                                                                None))(aux)
  np.testing.assert_allclose(out["balanced_accuracy"], balanced_accuracy_score(y, pred),
                             rtol=1e-12)
  correct = (pred == y).astype(float)
  shot = np.where(train_counts > 100, 0, np.where(train_counts >= 20, 1, 2))[y]
  np.testing.assert_allclose(out["shot_accuracy"], [correct[shot == s].mean() for s in range(3)])
  np.testing.assert_allclose(out["group_accuracy"],
                             [correct[groups[y] == g].mean() for g in range(3)])
  np.testing.assert_allclose(out["worst_group_accuracy"],
                             min(correct[groups[y] == g].mean() for g in range(3)))
  np.testing.assert_allclose(out["worst_class_accuracy"],
                             min(correct[y == k].mean() for k in range(6)))
  np.testing.assert_allclose(out["ece"], _ref_ece(conf, correct, 10), rtol=1e-10)
  np.testing.assert_allclose(out["group_ece"], [
      _ref_ece(conf[groups[y] == g], correct[groups[y] == g], 10) for g in range(3)], rtol=1e-10)
  np.testing.assert_allclose(out["shot_ece"], [
      _ref_ece(conf[shot == s], correct[shot == s], 10) for s in range(3)], rtol=1e-10)
  with pytest.raises(ValueError, match="^class_to_group must be"):
    long_tail_metrics(train_counts, groups[:3])


def test_long_tail_metrics_recorded_for_a_held_out_split_in_the_scan():
  from imbalance_jax import metrics
  from imbalance_jax.metrics.long_tail import long_tail_metrics
  rng = np.random.default_rng(5)
  y = np.repeat(np.arange(3), [120, 30, 6])
  x = (rng.normal(size=(len(y), 3)) + np.eye(3)[y]).astype(np.float32)
  ds = make_dataset(x, y, 3)
  test = make_dataset(x[::2], y[::2], 3)
  groups = data.frequency_groups(np.asarray(ds.class_counts), num_groups=2)
  plain, tail = metrics.classification_metrics(groups), long_tail_metrics(ds.class_counts, groups)
  model = models.LinearSoftmax(3)
  params = model.init(jax.random.key(0), ds.x[:1])
  run = train.make_train(train.classification_objective(model.apply, "balanced_softmax"),
                         optim.injectable("gd", 0.9), num_steps=6, log_every=3,
                         metrics_fn=lambda *a: {**plain(*a), **tail(*a)})
  history = run(params, {"train": ds, "test": test}, 0.5).history
  assert history["test/shot_accuracy"].shape == (3, 3)
  assert history["balanced_accuracy"].shape == (3,)
  logits = model.apply(params, test.x)  # step 0 is the initial iterate
  from sklearn.metrics import balanced_accuracy_score
  np.testing.assert_allclose(history["test/balanced_accuracy"][0], balanced_accuracy_score(
      np.asarray(test.y), np.asarray(logits.argmax(-1))), rtol=1e-6)


def test_ldam_drw_in_make_train_gets_the_step(x64):
  """make_train passes the step to an objective marked takes_step: the run equals GD on
  LDAM for steps < drw_step and on DRW-weighted LDAM after (a Python loop, float64)."""
  rng = np.random.default_rng(6)
  y = np.repeat(np.arange(3), [12, 5, 2])
  x = rng.normal(size=(len(y), 3))
  ds = make_dataset(x, y, 3)
  model = models.LinearSoftmax(3, param_dtype=jnp.float64)
  params = model.init(jax.random.key(0), ds.x[:1])
  with pytest.raises(ValueError, match="^drw_step must be given exactly"):
    train.classification_objective(model.apply, "ldam_drw")
  objective = train.classification_objective(model.apply, "ldam_drw", drw_step=3)
  run = train.make_train(objective, optim.injectable("gd", 0.0), num_steps=6, log_every=3)
  result = run(params, ds, 0.3)
  p = params
  for t in range(6):
    grad = jax.grad(lambda q: jnp.mean(long_tail.training_loss(
        "ldam_drw", model.apply(q, ds.x), ds.y, ds.class_counts, t, drw_step=3)))(p)
    p = jax.tree.map(lambda a, g: a - 0.3 * g, p, grad)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10), result.params, p)
  never = train.make_train(train.classification_objective(model.apply, "ldam"),
                           optim.injectable("gd", 0.0), num_steps=6, log_every=3)(params, ds, 0.3)
  assert not np.allclose(jax.tree.leaves(never.params)[0], jax.tree.leaves(p)[0])


def test_loss_params_reach_the_objective(x64):
  """``loss_params`` override the defaults: the objective is the float64 NumPy reference at
  the given tau / gamma / class-balanced beta."""
  rng = np.random.default_rng(5)
  x = rng.normal(size=(7, 4))
  ds = make_dataset(x, LABELS, len(COUNTS))
  model = models.LinearSoftmax(ds.num_classes)
  params = model.init(jax.random.key(0), ds.x[:1])
  z = np.asarray(model.apply(params, ds.x), np.float64)
  counts = np.asarray(ds.class_counts, np.float64)  # of the labels: [2, 2, 0, 1, 2]
  cases = [("logit_adjust", {"tau": 2.0}, ref_logit_adjust(z, LABELS, counts, 2.0)),
           ("focal", {"focal_gamma": 3.0}, ref_focal(z, LABELS, 3.0)),
           ("class_balanced", {"class_balanced_beta": 0.5},
            ref_class_balanced(counts, 0.5)[LABELS] * _ce(z, LABELS))]
  for name, params_, ref in cases:
    value, _ = train.classification_objective(model.apply, name, loss_params=params_)(params, ds)
    np.testing.assert_allclose(float(value), np.mean(ref), rtol=1e-10, err_msg=name)
  with pytest.raises(ValueError, match="loss_params has unknown entries"):
    train.classification_objective(model.apply, "focal", loss_params={"gamma": 1.0})


def test_post_hoc_metrics_match_sklearn_on_adjusted_argmax(x64):
  from sklearn.metrics import balanced_accuracy_score
  rng = np.random.default_rng(6)
  counts = np.array([300, 60, 8, 2])
  groups = np.array([0, 0, 1, 1])
  logits = rng.normal(size=(40, 4))
  labels = rng.integers(0, 4, size=40)
  aux = {"logits": jnp.asarray(logits), "label_N": jnp.asarray(labels),
         "prediction_N": jnp.argmax(logits, -1),
         "confidence_N": jnp.asarray(rng.uniform(0.3, 1.0, size=40))}
  for tau in (0.0, 1.0, 2.5):
    out = jax.jit(lambda a, t=tau: metrics.long_tail_metrics(counts, groups, post_hoc_tau=t)(
        None, None, a, None))(aux)
    pred = np.argmax(logits - tau * np.log(counts / counts.sum()), -1)
    np.testing.assert_allclose(float(out["posthoc_balanced_accuracy"]),
                               balanced_accuracy_score(labels, pred), rtol=1e-12)
    hit = pred == labels
    want = [hit[np.isin(labels, np.flatnonzero(groups == g))].mean() for g in (0, 1)]
    np.testing.assert_allclose(np.asarray(out["posthoc_group_accuracy"]), want, rtol=1e-12)
    assert float(out["posthoc_worst_group_accuracy"]) == min(want)
  with pytest.raises(ValueError, match="post_hoc_tau needs aux"):
    metrics.long_tail_metrics(counts, post_hoc_tau=1.0)(
        None, None, {k: v for k, v in aux.items() if k != "logits"}, None)


def test_tinyptb_task_counts_groups_and_validation_group_loss(x64):
  """The TinyPTB task of `experiments.long_tail_losses`: more validation than training
  windows (the first of each split), groups and remedy counts from the training targets
  (one compacted type occurs only as an input: count 0; its 1/pi weight is 0 and logit
  adjustment trains without NaN), and the scan's ``valid/group_loss`` at step 0 is the
  float64 NumPy mean cross-entropy of the validation tokens per training-count group."""
  from experiments import language_data, long_tail_losses as ltl
  config = ltl.CONFIG.resolve({"tasks": "tinyptb", "ptb_num_windows": 6, "ptb_seq_len": 8,
                               "ptb_valid_windows": 10, "ptb_num_steps": 2,
                               "ptb_log_every": 1, "ptb_runs": "adam+m@logit_adjust"})
  sub = ltl.ptb_config(config)
  assert sub.valid and sub.corpus == "tinyptb" and (sub.num_steps, sub.seq_len) == (2, 8)
  windows, _ = ltl.load_ptb(sub, config.ptb_valid_windows)
  tr, va = windows["train"], windows["valid"]
  assert tr.x.shape == (6, 8) and va.x.shape == (10, 8) and va.num_classes == tr.num_classes
  raw = language_data.load_windows("tinyptb", "", 8, num_windows=6, splits=("train", "valid"),
                                   split_windows={"valid": 10})
  first = language_data.load_windows("tinyptb", "", 8, num_windows=10,
                                     splits=("train", "valid"))
  np.testing.assert_array_equal(raw[0]["valid"].y, first[0]["valid"].y)
  counts = np.asarray(tr.class_counts)
  np.testing.assert_array_equal(counts, np.bincount(np.asarray(tr.y).ravel(),
                                                    minlength=tr.num_classes))
  assert (counts == 0).sum() >= 1
  weights = np.asarray(losses.class_weights(counts, "inverse"))
  assert np.all(np.isfinite(weights)) and np.all(weights[counts == 0] == 0)
  groups = data.frequency_groups(counts, sub.num_groups)
  c = tr.num_classes
  w0 = np.random.default_rng(0).normal(size=(c, c))
  apply = lambda params, x: params["w"][x]  # noqa: E731  (a bigram model: logits [N, T, C])
  build = ltl.builder(apply, config, metrics.classification_metrics(groups),
                      num_steps=sub.num_steps, log_every=sub.log_every)
  z = w0[np.asarray(va.x)].reshape(-1, c)
  y = np.asarray(va.y).ravel()
  token_ce, token_group = _ce(z, y), groups[y]
  for spec in config.ptb_runs:
    run = build(spec)
    result = jax.jit(lambda p, d: run(p, d, 0.1))({"w": jnp.asarray(w0)},  # noqa: B023
                                                   {"train": tr, "valid": va})
    assert np.all(np.isfinite(np.asarray(result.params["w"]))), spec.name
    assert np.all(np.isfinite(np.asarray(result.history["loss"]))), spec.name
    group_loss = np.asarray(result.history["valid/group_loss"][0])
    for g in range(int(groups.max()) + 1):
      if (token_group == g).any():
        np.testing.assert_allclose(group_loss[g], token_ce[token_group == g].mean(),
                                   rtol=1e-10, err_msg=f"{spec.name} group {g}")
