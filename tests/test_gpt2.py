"""The authors' GPT2 network (models.gpt2): their PyTorch outputs, a numpy reference, init."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import losses, models
from imbalance_jax.models import gpt2, transformer as tr

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "gpt2_reference.npz")
V, L, D, H, M = 23, 2, 8, 2, 32  # peer/check_authors.py MODELS["gpt2_small"]


def tiny(**overrides):
  fields = dict(num_layers=L, d_model=D, num_heads=H, mlp_dim=M, dropout_rate=0.0,
                param_dtype=jnp.float64)
  return tr.make_transformer("gpt2_small", V, **{**fields, **overrides})


def unflatten(flat: dict) -> dict:
  params = {}
  for key, value in flat.items():
    *modules, leaf = key.split("/")
    node = params
    for m in modules:
      node = node.setdefault(m, {})
    node[leaf] = jnp.asarray(value)
  return {"params": params}


def reference():
  with np.load(REFERENCE) as f:
    ref = dict(f)
  strip = lambda prefix: {k[len(prefix):]: v for k, v in ref.items()  # noqa: E731
                          if k.startswith(prefix)}
  return ref, unflatten(strip("param/")), unflatten(strip("grad/"))


def test_logits_and_gradients_match_the_authors_module(x64):
  """At weights loaded into their `_GPTModifiable` (torch 2.13, float64, peer/check_authors.py)."""
  ref, params, their_grads = reference()
  assert str(ref["config"]) == repr(("gpt2_small", dict(num_layers=L, d_model=D, num_heads=H,
                                                        mlp_dim=M, dropout_rate=0.0)))
  model, tokens = tiny(), jnp.asarray(ref["tokens"])
  assert jax.tree.structure(params) == jax.tree.structure(
      jax.eval_shape(model.init, jax.random.key(0), tokens))
  loss = lambda p: jnp.mean(losses.cross_entropy(model.apply(p, tokens), tokens))  # noqa: E731
  logits, grads = jax.jit(lambda p: (model.apply(p, tokens), jax.grad(loss)(p)))(params)
  np.testing.assert_allclose(logits, ref["logits"], rtol=0, atol=1e-12)
  assert jax.tree.structure(grads) == jax.tree.structure(their_grads)
  for (path, ours), theirs in zip(jax.tree_util.tree_flatten_with_path(grads)[0],
                                  jax.tree.leaves(their_grads)):
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12, err_msg=str(path))


def test_forward_matches_numpy_loop(x64):
  """Written out per position: stream LayerNorms, causal attention, tanh-GELU MLP, final LN."""
  _, params, _ = reference()
  p = jax.tree.map(np.asarray, params)["params"]
  x = np.asarray(jax.random.randint(jax.random.key(1), (2, 5), 0, V))
  ln = lambda v, q: (v - v.mean(-1, keepdims=True)) / np.sqrt(  # noqa: E731
      v.var(-1, keepdims=True) + 1e-5) * q["scale"] + q["bias"]
  gelu = lambda u: 0.5 * u * (1 + np.tanh(np.sqrt(2 / np.pi) * (u + 0.044715 * u**3)))  # noqa
  dh, t = D // H, x.shape[1]
  expected = []
  for n in range(x.shape[0]):
    h = p["embed"]["embedding"][x[n]] * np.sqrt(D) + np.asarray(
        tr.sinusoidal_positions(t, D, jnp.float64))
    for i in range(L):
      h = ln(h, p[f"ln_attn_{i}"])
      a = p[f"attn_{i}"]
      qkv = (h @ a["qkv"]["kernel"] + a["qkv"]["bias"]).reshape(t, 3, H, dh)
      att = np.zeros((t, D))
      for q in range(t):
        for k in range(H):
          s = np.array([qkv[q, 0, k] @ qkv[j, 1, k] / np.sqrt(dh) for j in range(q + 1)])
          w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
          att[q, k * dh:(k + 1) * dh] = w @ qkv[:q + 1, 2, k]
      h = ln(h + att @ a["out"]["kernel"] + a["out"]["bias"], p[f"ln_mlp_{i}"])
      m = gelu(h @ p[f"mlp_in_{i}"]["kernel"] + p[f"mlp_in_{i}"]["bias"])
      h = h + m @ p[f"mlp_out_{i}"]["kernel"] + p[f"mlp_out_{i}"]["bias"]
    expected.append(ln(h, p["ln_final"]) @ p["head"]["kernel"] + p["head"]["bias"])
  np.testing.assert_allclose(tiny().apply(params, jnp.asarray(x)), np.stack(expected),
                             rtol=0, atol=1e-12)


def test_initialisation_is_the_authors():
  """std 0.0283 (embedding, first MLP layer, head), /sqrt(2 L) for the second MLP layer,
  PyTorch's attention defaults (their out-projection setting is never applied), LN 1/0."""
  model = gpt2.GPT2(vocab_size=3000, num_layers=3, d_model=96, num_heads=4, mlp_dim=384)
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 2), jnp.int32))["params"]
  std = math.sqrt(2) * 0.02
  assert gpt2.GPT2_INIT_STD == pytest.approx(0.0283, abs=5e-5)
  for name in ("embed", "head", "mlp_in_1"):
    kernel = params[name]["embedding" if name == "embed" else "kernel"]
    assert np.std(kernel) == pytest.approx(std, rel=0.05)
  assert np.std(params["mlp_out_1"]["kernel"]) == pytest.approx(std / math.sqrt(6), rel=0.05)
  out = params["attn_2"]["out"]["kernel"]
  assert np.abs(out).max() <= 1 / math.sqrt(96)
  assert np.std(out) == pytest.approx(1 / math.sqrt(3 * 96), rel=0.05)  # U(+-1/sqrt(d))
  assert np.abs(params["attn_0"]["qkv"]["kernel"]).max() <= math.sqrt(6 / (96 * 4))
  for name in ("ln_attn_0", "ln_mlp_2", "ln_final"):
    assert np.all(params[name]["scale"] == 1) and not np.any(params[name]["bias"])
  biases = [params[n]["bias"] for n in ("head", "mlp_in_0", "mlp_out_2")]
  assert not any(np.any(b) for b in biases + [params["attn_1"]["qkv"]["bias"]])


def test_dropout_train_mode_and_head_only():
  model = gpt2.GPT2(vocab_size=V, num_layers=1, d_model=D, num_heads=H, mlp_dim=M,
                    dropout_rate=0.5)
  x = jnp.zeros((2, 4), jnp.int32)
  params = jax.jit(model.init)(jax.random.key(0), x)
  apply = jax.jit(lambda k: (model.apply(params, x),
                             model.apply(params, x, train=True, rngs={"dropout": k})))
  evaluate, trained = apply(jax.random.key(3))
  again, other = apply(jax.random.key(4))
  np.testing.assert_array_equal(evaluate, again)
  assert not np.allclose(trained, other) and not np.allclose(trained, evaluate)
  frozen = gpt2.GPT2(vocab_size=V, num_layers=1, d_model=D, num_heads=H, mlp_dim=M,
                     dropout_rate=0.0, train_only_head=True)
  grads = jax.jit(jax.grad(lambda p: frozen.apply(p, x).sum()))(params)["params"]
  assert all(not np.any(g) for name, sub in grads.items() if name != "head"
             for g in jax.tree.leaves(sub))
  assert np.any(grads["head"]["kernel"])


def test_make_transformer_and_bad_fields():
  model = models.make_transformer("gpt2_small", 50_608)
  assert isinstance(model, gpt2.GPT2)
  assert (model.num_layers, model.d_model, model.num_heads, model.mlp_dim,
          model.dropout_rate) == (12, 768, 12, 3072, 0.1)
  x = jnp.zeros((1, 3), jnp.int32)
  for field, value, match in (("num_heads", 3, "divisible"), ("dropout_rate", 1.0, "dropout"),
                              ("init_std", 0.0, "init_std"), ("mlp_dim", 0, "mlp_dim")):
    with pytest.raises(ValueError, match=match):
      jax.eval_shape(tiny(**{field: value}).init, jax.random.key(0), x)
  with pytest.raises(ValueError, match="tokens"):
    jax.eval_shape(tiny().init, jax.random.key(0), jnp.zeros((3,), jnp.int32))


def test_layer_norm_scale_option():
  """``layer_norm_scale_std=0.02``: scales from N(1, 0.02) (the authors' default() init)."""
  base = dict(vocab_size=V, num_layers=2, d_model=256, num_heads=1, mlp_dim=1)
  x = jnp.zeros((1, 2), jnp.int32)
  drawn = jax.jit(tr.Transformer(**base, layer_norm_scale_std=0.02).init)(jax.random.key(0),
                                                                          x)["params"]
  assert tr.Transformer(**base).layer_norm_scale_std == 0  # default: scales exactly 1
  scales = np.concatenate([drawn[f"{n}_{i}"]["scale"] for n in ("ln_attn", "ln_mlp")
                           for i in range(2)])
  assert np.mean(scales) == pytest.approx(1, abs=0.004)
  assert np.std(scales) == pytest.approx(0.02, rel=0.1)
  assert not np.array_equal(drawn["ln_attn_0"]["scale"], drawn["ln_mlp_0"]["scale"])
  assert not np.any(drawn["ln_attn_1"]["bias"])
  with pytest.raises(ValueError, match="layer_norm_scale_std"):
    jax.eval_shape(tr.Transformer(**base, layer_norm_scale_std=-1.0).init, jax.random.key(0),
                   x)
