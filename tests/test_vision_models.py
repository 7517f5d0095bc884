"""Vision models: shapes, parameter counts, BatchNorm state, attention and positions vs loops."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import models


def _count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _init_shapes(model, shape):
  return jax.eval_shape(model.init, jax.random.key(0), jnp.ones(shape))


TINY_RESNET = dict(width=4, stage_sizes=(1, 1, 1, 1))


def _random_variables(model, x, seed=0, dtype=np.float32):
  """Variables of ``model`` with random values, built from ``eval_shape`` (no init compile)."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path[-1:])
    if "var" in name or "scale" in name:
      return jnp.asarray(1 + 0.1 * rng.random(leaf.shape), dtype)
    return jnp.asarray(0.3 * rng.standard_normal(leaf.shape), dtype)
  return jax.tree_util.tree_map_with_path(fill, _init_shapes(model, x.shape))


@pytest.mark.parametrize("norm", models.NORMS)
def test_resnet18_parameter_count_matches_torchvision(norm):
  variables = _init_shapes(models.ResNet18(1000, norm=norm), (1, 224, 224, 3))
  assert _count(variables["params"]) == 11_689_512              # torchvision.models.resnet18()
  if norm == "batch":
    # Running mean and variance of 4,800 channels: 64 + 4*64 + 5*128 + 5*256 + 5*512.
    assert _count(variables["batch_stats"]) == 2 * 4_800
  else:
    assert set(variables) == {"params"}


def test_vit_s16_parameter_count():
  variables = _init_shapes(models.SimpleViT(1000), (1, 224, 224, 3))
  width, mlp, patch_dim, depth = 384, 1536, 16 * 16 * 3, 12
  block = (2 * width + 3 * width * width + width * width              # LN, qkv, out (no bias)
           + 2 * width + width * mlp + mlp + mlp * width + width)     # LN, MLP
  expected = (2 * patch_dim + patch_dim * width + width + 2 * width   # patch LN, Dense, LN
              + depth * block + 2 * width + width * 1000 + 1000)      # final LN, head
  assert _count(variables["params"]) == expected == 21_958_504


def test_three_layer_cnn_parameter_count_and_shapes():
  model = models.ThreeLayerCNN(num_classes=4)
  params = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 8, 8, 1)))
  expected = (9 * 1 * 32 + 32) + 2 * (9 * 32 * 32 + 32) + 32 * 4 + 4
  assert _count(params) == expected
  bound = 1 / np.sqrt(9 * 32)                                     # PyTorch default init
  kernel = np.asarray(params["params"]["conv_1"]["kernel"])
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
  logits, features = jax.eval_shape(
      lambda p, x: model.apply(p, x, return_features=True), params, jnp.ones((3, 28, 28)))
  assert logits.shape == (3, 4) and features.shape == (3, 32)


@pytest.mark.parametrize("stem,size,channels", [("small", 28, 1), ("imagenet", 32, 3),
                                                ("imagenet", 224, 3)])
def test_resnet_shapes(stem, size, channels):
  model = models.ResNet18(num_classes=7, stem=stem, **TINY_RESNET)
  x = jnp.ones((2, size, size, channels))
  variables = _init_shapes(model, x.shape)
  logits, features = jax.eval_shape(
      lambda v, x: model.apply(v, x, return_features=True), variables, x)
  assert logits.shape == (2, 7) and features.shape == (2, 32)


@pytest.fixture(scope="module")
def tiny_batchnorm_resnet():
  model = models.ResNet18(num_classes=3, stem="small", **TINY_RESNET)
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1), jnp.float32) * 3 + 2
  variables = _random_variables(model, x)
  variables["batch_stats"] = jax.tree.map(jnp.zeros_like, variables["batch_stats"])
  variables["batch_stats"] = jax.tree_util.tree_map_with_path(
      lambda path, v: v + ("var" in jax.tree_util.keystr(path[-1:])), variables["batch_stats"])
  apply_train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
  return model, x, variables, jax.jit(model.apply), apply_train


def test_batchnorm_running_averages_update_in_train_mode_and_serve_in_eval_mode(
    tiny_batchnorm_resnet):
  model, x, variables, apply_eval, apply_train = tiny_batchnorm_resnet
  _, updates = apply_train(variables, x)
  # Brute force: the stem norm's new mean is 0.1 * batch mean of the stem conv output
  # (PyTorch momentum 0.1; running mean starts at 0, variance at 1).
  kernel = variables["params"]["stem_conv"]["kernel"]
  conv = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  stats = updates["batch_stats"]["stem_norm"]
  np.testing.assert_allclose(stats["mean"], 0.1 * conv.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
  # Flax keeps the biased batch variance (PyTorch the unbiased one: a factor n/(n-1)).
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * conv.var((0, 1, 2)), rtol=1e-4)
  # Eval mode: each example is normalised by the running averages, so it does not
  # depend on the rest of the batch; train mode uses batch statistics, so it does.
  new = {**variables, **updates}
  other = x.at[1:].set(-x[1:])
  eval_a, eval_b = apply_eval(new, x), apply_eval(new, other)
  np.testing.assert_allclose(eval_a[0], eval_b[0], rtol=1e-5)
  train_a, _ = apply_train(new, x)
  train_b, _ = apply_train(new, other)
  assert not np.allclose(train_a[0], train_b[0], rtol=1e-3)
  assert not np.allclose(apply_eval(variables, x)[0], eval_a[0], rtol=1e-3)


def test_batchnorm_resnet_vmaps_over_seeds(tiny_batchnorm_resnet):
  model, x, variables, _, apply_train = tiny_batchnorm_resnet
  shapes = jax.eval_shape(jax.vmap(lambda k: model.init(k, x)),
                          jax.random.split(jax.random.key(0), 3))
  assert shapes["params"]["head"]["kernel"].shape == (3, 32, 3)
  members = [_random_variables(model, x, seed) for seed in range(3)]
  for member in members:
    member["batch_stats"] = variables["batch_stats"]
  stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
  logits, updates = jax.jit(jax.vmap(apply_train, (0, None)))(stacked, x)
  assert logits.shape == (3, 4, 3)
  for i, member in enumerate(members):                         # each member on its own
    alone, alone_updates = apply_train(member, x)
    np.testing.assert_allclose(logits[i], alone, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(updates["batch_stats"]["stem_norm"]["mean"][i],
                               alone_updates["batch_stats"]["stem_norm"]["mean"], rtol=1e-4)


def test_layernorm_resnet_is_stateless_and_per_example():
  model = models.ResNet18(num_classes=3, norm="layer", stem="small", **TINY_RESNET)
  x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
  variables = _random_variables(model, x)
  assert set(variables) == {"params"}
  apply = jax.jit(lambda v, x: model.apply(v, x, train=True))
  a, b = apply(variables, x), apply(variables, x.at[1:].multiply(5.0))
  np.testing.assert_allclose(a[0], b[0], rtol=1e-5)
  # LayerNorm normalises each example over (H, W, C): scaling one example changes nothing.
  np.testing.assert_allclose(a[1], b[1], rtol=1e-3, atol=1e-4)


def test_posemb_sincos_matches_formula(x64):
  height, width, dim = 3, 4, 8
  got = np.asarray(models.posemb_sincos_2d(height, width, dim, dtype=jnp.float64))
  quarter = dim // 4
  for row in range(height):
    for col in range(width):
      for i in range(quarter):
        omega = 10_000.0**(-i / (quarter - 1))
        p = row * width + col
        assert np.allclose(got[p, [i, quarter + i, 2 * quarter + i, 3 * quarter + i]],
                           [np.sin(col * omega), np.cos(col * omega), np.sin(row * omega),
                            np.cos(row * omega)], rtol=1e-12)
  with pytest.raises(ValueError, match="dim"):
    models.posemb_sincos_2d(2, 2, 6)


def test_self_attention_matches_per_head_loop(x64):
  heads, head_dim, width = 3, 2, 5
  layer = models.SelfAttention(heads, head_dim, param_dtype=jnp.float64)
  x = jax.random.normal(jax.random.key(0), (2, 4, width), jnp.float64)
  params = _random_variables(layer, x, dtype=np.float64)
  got = np.asarray(jax.jit(layer.apply)(params, x))
  p = jax.tree.map(np.asarray, params["params"])
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  h = np.asarray((x - mean) / np.sqrt(var + 1e-5)) * p["LayerNorm_0"]["scale"] + p[
      "LayerNorm_0"]["bias"]
  qkv = h @ p["qkv"]["kernel"]
  inner = heads * head_dim
  out = np.zeros((2, 4, inner))
  for n in range(2):
    for head in range(heads):
      cols = slice(head * head_dim, (head + 1) * head_dim)
      q = qkv[n, :, :inner][:, cols]
      k = qkv[n, :, inner:2 * inner][:, cols]
      v = qkv[n, :, 2 * inner:][:, cols]
      scores = q @ k.T / np.sqrt(head_dim)
      weights = np.exp(scores - scores.max(-1, keepdims=True))
      out[n, :, cols] = (weights / weights.sum(-1, keepdims=True)) @ v
  np.testing.assert_allclose(got, out @ p["out"]["kernel"], rtol=1e-10)


def test_vit_shapes_and_patch_order():
  model = models.SimpleViT(num_classes=5, **models.VIT_CONFIGS["micro"])
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
  params = _random_variables(model, x)

  @jax.jit
  def run(x):
    (logits, features), state = model.apply(
        params, x, train=True, return_features=True, mutable=["intermediates"],
        capture_intermediates=lambda m, _: m.name == "patch_embed")
    return logits, features, state["intermediates"]["patch_embed"]["__call__"][0]

  logits, features, tokens = run(x)
  assert logits.shape == (2, 5) and features.shape == (2, 32) and tokens.shape == (2, 16, 32)
  # Row-major 7x7 patches: pixel (row 8, col 15) lies in patch (1, 2) = token 6 only.
  _, _, changed = run(x.at[0, 8, 15, 0].add(1.0))
  diff = np.abs(np.asarray(changed - tokens)).sum(-1)
  assert np.flatnonzero(diff[0]).tolist() == [1 * 4 + 2] and not diff[1].any()


def test_bad_inputs_and_settings():
  with pytest.raises(ValueError, match="patch_size"):
    models.SimpleViT(3, patch_size=5, width=8, depth=1, num_heads=1, mlp_dim=8).init(
        jax.random.key(0), jnp.ones((1, 28, 28, 1)))
  with pytest.raises(ValueError, match="norm"):
    models.ResNet18(3, norm="group").init(jax.random.key(0), jnp.ones((1, 8, 8, 1)))
  with pytest.raises(ValueError, match="stem"):
    models.ResNet18(3, stem="cifar").init(jax.random.key(0), jnp.ones((1, 8, 8, 1)))
  with pytest.raises(ValueError, match="x must"):
    models.ResNet18(3).init(jax.random.key(0), jnp.ones((8, 8, 1)))
  with pytest.raises(ValueError, match="x must"):
    models.ThreeLayerCNN(3).init(jax.random.key(0), jnp.ones((8, 8)))
  assert isinstance(models.ResNet18(3), nn.Module)


def test_batchnorm_resnet_on_barcoded_digits_sweeps_over_seeds_and_step_sizes():
  """Library pieces end to end: Barcoded digits -> BN ResNet -> make_train -> Sweep."""
  from imbalance_jax import data, metrics, optim, train
  rng = np.random.default_rng(0)
  digits = rng.integers(0, 256, (40, 6, 6, 1), dtype=np.uint8)
  labels = np.repeat(np.arange(10), 4).astype(np.int32)
  raw = data.barcoded(jax.random.key(0), digits, labels, num_bits=1, copies=2)
  ds = data.normalize(raw, data.fit_normalizer(raw.x))
  model = models.ResNet18(ds.num_classes, stem="small", width=2, stage_sizes=(1, 1))
  groups = data.frequency_groups(np.asarray(ds.class_counts), num_groups=2)
  run = train.make_train(train.classification_objective(model.apply, stateful=True),
                         optim.injectable("adam", 0.0), num_steps=3, log_every=3,
                         metrics_fn=metrics.classification_metrics(groups), stateful=True)
  members = [_random_variables(model, ds.x[:2], seed) for seed in range(2)]
  for member in members:
    member["batch_stats"] = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.full_like(v, "var" in jax.tree_util.keystr(path[-1:])),
        member["batch_stats"])
  variables = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
  result = train.Sweep(run, data_per_seed=False)(variables, ds, jnp.array([1e-3, 1e-1]))
  assert result.final_loss.shape == (2, 2) and np.all(np.isfinite(result.final_loss))
  # Running means after a ReLU moved off their initial 0, differently per step size.
  means = result.params["batch_stats"]["stage2_block0"]["BatchNorm_0"]["mean"]
  assert means.shape == (2, 2, 4) and not np.allclose(means, 0.0)
  assert not np.allclose(means[:, 0], means[:, 1])


@pytest.mark.parametrize("shape", [(2, 28, 28, 3), (3, 7, 7, 2), (1, 5, 6, 1)])
def test_max_pool_2x2_equals_flax_max_pool_and_its_gradient(shape, x64):
  from imbalance_jax.models.cnn import max_pool_2x2
  x = jax.random.normal(jax.random.key(0), shape, dtype=jnp.float64)
  reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  np.testing.assert_array_equal(max_pool_2x2(x), reference(x))
  weights = jax.random.normal(jax.random.key(1), reference(x).shape, dtype=jnp.float64)
  grad = lambda pool: jax.grad(lambda x: (weights * pool(x)).sum())(x)
  np.testing.assert_array_equal(grad(max_pool_2x2), grad(reference))
