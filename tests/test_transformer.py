"""Causal transformer LM: masking, dropout keys, head-only training, FLOPs, references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from imbalance_jax import losses, metrics
from imbalance_jax.models import transformer as tr

V, T = 23, 6


def small(dtype=jnp.float32, **overrides):
  fields = dict(vocab_size=V, num_layers=2, d_model=8, num_heads=2, mlp_dim=12,
                dropout_rate=0.0, param_dtype=dtype)
  return tr.Transformer(**{**fields, **overrides})


def tokens(seed=0, n=3):
  return jax.random.randint(jax.random.key(seed), (n, T), 0, V)


@functools.cache
def shared_params(dtype_name="float32"):
  """Parameters of `small` (initialised once per dtype: init compiles are the slow part)."""
  with jax.enable_x64(dtype_name == "float64"):
    params = jax.jit(small(jnp.dtype(dtype_name)).init)(jax.random.key(0), tokens())
    return jax.tree.map(np.asarray, params)


def test_named_configs():
  assert tr.TRANSFORMER_CONFIGS["one_layer"] == dict(num_layers=1, d_model=1200, num_heads=1,
                                                     mlp_dim=1200, dropout_rate=0.2)
  assert tr.TRANSFORMER_CONFIGS["two_layer"] == dict(num_layers=2, d_model=1000, num_heads=4,
                                                     mlp_dim=1000, dropout_rate=0.2)
  gpt2 = tr.make_transformer("gpt2_small", 50_000)
  assert (gpt2.num_layers, gpt2.d_model, gpt2.num_heads, gpt2.mlp_dim) == (12, 768, 12, 3072)
  simple = tr.make_transformer("simplified", V, d_model=8)
  params = jax.eval_shape(simple.init, jax.random.key(0), tokens())["params"]
  assert set(params) == {"embed", "attn_0", "head"}  # no MLP, no LayerNorm
  with pytest.raises(ValueError, match="name must be one of"):
    tr.make_transformer("gpt3", V)


def test_init_statistics_and_shapes():
  model = tr.Transformer(vocab_size=400, d_model=64, num_heads=4, mlp_dim=256)
  params = jax.jit(model.init)(jax.random.key(0), tokens())["params"]
  assert jax.eval_shape(model.apply, {"params": params}, tokens()).shape == (3, T, 400)
  for name in ("embed", "head", "mlp_in_0"):
    kernel = params[name]["embedding" if name == "embed" else "kernel"]
    assert np.std(kernel) == pytest.approx(0.02, rel=0.1)
  for name in ("head", "mlp_in_0", "mlp_out_0"):
    assert not np.any(params[name]["bias"])
  assert not np.any(params["attn_0"]["qkv"]["bias"])
  # PyTorch's MultiheadAttention: Xavier-uniform in-projection, bound sqrt(6 / (d + 3d)).
  assert np.abs(params["attn_0"]["qkv"]["kernel"]).max() <= np.sqrt(6 / (64 * 4))


def test_sinusoidal_positions_match_reference(x64):
  pe = np.asarray(tr.sinusoidal_positions(7, 6, jnp.float64))
  for pos in range(7):
    for i in range(3):
      angle = pos / 10000 ** (2 * i / 6)
      assert pe[pos, 2 * i] == pytest.approx(np.sin(angle), abs=1e-12)
      assert pe[pos, 2 * i + 1] == pytest.approx(np.cos(angle), abs=1e-12)


def test_forward_matches_loop_reference(x64):
  """Both blocks written out position by position in numpy (post-LN, causal softmax, ReLU MLP)."""
  model = small(jnp.float64)
  x = np.asarray(tokens())
  p = shared_params("float64")["params"]
  d, heads, dh = 8, 2, 4

  def layer_norm(v, q):
    return (v - v.mean()) / np.sqrt(v.var() + 1e-5) * q["scale"] + q["bias"]

  expected = np.zeros((3, T, V))
  for n in range(3):
    positions = np.asarray(tr.sinusoidal_positions(T, d, jnp.float64))
    h = p["embed"]["embedding"][x[n]] * np.sqrt(d) + positions
    for i in range(2):
      a = p[f"attn_{i}"]
      qkv = (h @ a["qkv"]["kernel"] + a["qkv"]["bias"]).reshape(T, 3, heads, dh)
      attn = np.zeros((T, d))
      for t in range(T):
        for k in range(heads):
          scores = np.array([qkv[t, 0, k] @ qkv[s, 1, k] / np.sqrt(dh) for s in range(t + 1)])
          w = np.exp(scores - scores.max())
          w /= w.sum()
          attn[t, k * dh:(k + 1) * dh] = sum(w[s] * qkv[s, 2, k] for s in range(t + 1))
      attn = attn @ a["out"]["kernel"] + a["out"]["bias"]
      new_h = np.zeros_like(h)
      for t in range(T):
        u = layer_norm(h[t] + attn[t], p[f"ln_attn_{i}"])
        m = np.maximum(u @ p[f"mlp_in_{i}"]["kernel"] + p[f"mlp_in_{i}"]["bias"], 0)
        m = m @ p[f"mlp_out_{i}"]["kernel"] + p[f"mlp_out_{i}"]["bias"]
        new_h[t] = layer_norm(u + m, p[f"ln_mlp_{i}"])
      h = new_h
    expected[n] = h @ p["head"]["kernel"] + p["head"]["bias"]
  got = jax.jit(model.apply)({"params": p}, x)  # jitted: eager Flax ops compile one by one
  np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


_APPLY_TWO_BATCHES = jax.jit(jax.vmap(small(jnp.float64).apply, (None, 0)))  # one compile


@pytest.mark.parametrize("position", [0, 3, T - 1])
def test_attention_is_causal(x64, position):
  x = tokens(4)
  params = shared_params("float64")
  changed = x.at[:, position].set((x[:, position] + 1) % V)
  before, after = _APPLY_TWO_BATCHES(params, jnp.stack([x, changed]))
  np.testing.assert_array_equal(before[:, :position], after[:, :position])
  assert np.all(np.abs(before[:, position:] - after[:, position:]).max(axis=-1) > 1e-6)


def test_dropout_differs_across_keys_and_is_reproducible():
  model = small(dropout_rate=0.3)
  x = tokens()
  params = shared_params()
  run = jax.jit(lambda key: model.apply(params, x, train=True, rngs={"dropout": key}))
  # "rbg" keys: the module treats every key type alike, and their bit generator compiles
  # in a third of threefry's time on CPU.
  key = functools.partial(jax.random.key, impl="rbg")
  a, b = run(key(1)), run(key(2))
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(a, run(key(1)))
  # Per-step keys as the training loop makes them: fold_in(member key, step).
  step0, step1 = (run(jax.random.fold_in(key(7), s)) for s in (0, 1))
  assert not np.allclose(step0, step1)
  # eval: off (both models in one compiled call)
  np.testing.assert_array_equal(*jax.jit(lambda: (model.apply(params, x),
                                                  small().apply(params, x)))())
  with pytest.raises(Exception, match="dropout"):
    model.apply(params, x, train=True)  # no key, no dropout


def test_init_vmaps_over_seeds():
  model = small()
  x = tokens()
  init_and_apply = jax.jit(lambda keys: jax.vmap(model.apply, (0, None))(
      jax.vmap(lambda k: model.init(k, x))(keys), x))  # one program: eager Flax is slow
  # "rbg" keys as in the dropout test: the module treats every key type alike.
  logits_S = init_and_apply(jax.random.split(jax.random.key(0, impl="rbg"), 3))
  assert logits_S.shape == (3, 3, T, V)
  assert not np.allclose(logits_S[0], logits_S[1])


def loss_fn(model):
  def loss(params, x):
    logits = model.apply(params, x[:, :-1])
    return jnp.mean(losses.cross_entropy(logits, x[:, 1:]))
  return loss


_GRAD_FN = jax.jit(jax.value_and_grad(loss_fn(small())))


def frozen_and_head(tree):
  mask = tr.head_mask(tree)
  frozen = [leaf for leaf, m in zip(jax.tree.leaves(tree), jax.tree.leaves(mask)) if not m]
  head = [leaf for leaf, m in zip(jax.tree.leaves(tree), jax.tree.leaves(mask)) if m]
  return frozen, head


def test_train_only_head_gives_exactly_zero_frozen_gradients():
  model = small(train_only_head=True)
  x = jax.random.randint(jax.random.key(5), (3, T + 1), 0, V)
  params = shared_params()
  grads = jax.jit(jax.grad(loss_fn(model)))(params, x)
  frozen, head = frozen_and_head(grads)
  assert len(frozen) > 10 and len(head) == 2
  assert all(not np.any(g) for g in frozen)
  assert all(np.any(g) for g in head)
  _, full = _GRAD_FN(params, x)  # same params, all layers trained
  np.testing.assert_allclose(full["params"]["head"]["kernel"], grads["params"]["head"]["kernel"],
                             rtol=1e-5, atol=1e-7)
  assert any(np.any(g) for g in frozen_and_head(full)[0])


@pytest.mark.parametrize("optimizer", [optax.sgd(0.5), optax.sgd(0.5, momentum=0.9),
                                       optax.adam(1e-2), optax.adamw(1e-2, weight_decay=0.1)],
                         ids=["gd", "gd+m", "adam", "adamw"])
def test_head_only_optimizer_never_moves_frozen_params(optimizer):
  # Full gradients (no stop_gradient): the optimizer wrapper alone must freeze.
  x = jax.random.randint(jax.random.key(5), (3, T + 1), 0, V)
  params = shared_params()
  opt = tr.head_only(optimizer)
  final, state, losses_T = params, opt.init(params), []
  for _ in range(5):  # a few eager optimizer steps; one compiled gradient for all optimizers
    loss, grads = _GRAD_FN(final, x)
    updates, state = opt.update(grads, state, final)
    final = optax.apply_updates(final, updates)
    losses_T.append(loss)
  before_frozen, before_head = frozen_and_head(params)
  after_frozen, after_head = frozen_and_head(final)
  for a, b in zip(before_frozen, after_frozen):
    np.testing.assert_array_equal(a, b)
  assert all(not np.array_equal(a, b) for a, b in zip(before_head, after_head))
  assert losses_T[-1] < losses_T[0]


def test_head_mask_errors_and_variables_dict():
  params = shared_params()
  mask = tr.head_mask(params)
  assert mask["params"]["head"]["kernel"] and not mask["params"]["embed"]["embedding"]
  with pytest.raises(ValueError, match="no module named 'classifier'"):
    tr.head_mask(params, "classifier")


def test_bad_inputs():
  x = tokens()
  with pytest.raises(ValueError, match="tokens must be integer ids"):
    small().init(jax.random.key(0), x.astype(jnp.float32))
  with pytest.raises(ValueError, match="tokens must be integer ids"):
    small().init(jax.random.key(0), x[0])
  with pytest.raises(ValueError, match="divisible by num_heads=3"):
    small(num_heads=3).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="dropout_rate must lie in"):
    small(dropout_rate=1.0).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="vocab_size must be >= 1"):
    small(vocab_size=0).init(jax.random.key(0), x)


def test_per_class_token_loss_equals_loop(x64):
  model = small(jnp.float64)
  x = jax.random.randint(jax.random.key(9), (3, T + 1), 0, V)
  params = shared_params("float64")
  logits = jax.jit(model.apply)(params, x[:, :-1])
  targets = x[:, 1:]
  loss_N = losses.cross_entropy(logits, targets).reshape(-1)
  fast = metrics.per_class_mean(loss_N, targets.reshape(-1), V)
  logp = np.asarray(jax.nn.log_softmax(logits))
  for k in range(V):
    values = [-logp[i, t, k] for i in range(3) for t in range(T) if targets[i, t] == k]
    if values:
      assert fast[k] == pytest.approx(np.mean(values), rel=1e-12)
    else:
      assert np.isnan(fast[k])


@pytest.mark.parametrize("training", [False, True])
def test_flops_per_token_matches_xla_cost_analysis(training):
  fields = dict(num_layers=2, d_model=64, mlp_dim=128)
  model = tr.Transformer(vocab_size=256, num_heads=4, **fields)
  x = jnp.zeros((4, 32), jnp.int32)
  params = jax.eval_shape(model.init, jax.random.key(0), x)  # shapes suffice to lower
  if training:
    fn = jax.grad(lambda p: jnp.sum(model.apply(p, x)))
  else:
    fn = lambda p: model.apply(p, x)
  cost = jax.jit(fn).lower(params).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  ours = tr.flops_per_token(256, 32, training=training, **fields) * x.size
  assert ours == pytest.approx(cost["flops"], rel=0.1)
  gpt2 = tr.flops_per_token(50_608, 1024, **tr.TRANSFORMER_CONFIGS["gpt2_small"])
  params_gpt2 = 12 * (4 * 768**2 + 2 * 768 * 3072) + 768 * 50_608  # non-embedding matmul params
  assert gpt2 == pytest.approx(6 * params_gpt2 + 3 * 12 * 4 * 1024 * 768, rel=1e-12)
