"""Causal language-model transformers of paper H (App. A.3), one configurable class.

`Transformer` maps token ids ``[N, T]`` to next-token logits ``[N, T, V]``::

  tokens -> Embed * sqrt(d) + sinusoidal positions -> dropout
         -> num_layers x [h = LN(h + drop(CausalAttention(h)));
                          h = LN(h + drop(Dense(ReLU(drop(Dense(h))))))]   (post-LN)
         -> head (untied Dense)

as in PyTorch's ``TransformerEncoderLayer`` (the authors' 2-layer model) with a
causal mask. ``"gpt2_small"`` is a different network, the authors' GPT2
(`imbalance_jax.models.gpt2.GPT2`). ``layer_norm=False`` and ``mlp_dim=0`` remove LayerNorm and the
MLP; with ``dropout_rate=0`` this is the simplified transformer of Fig 5
(embedding -> attention -> classifier, residual kept). Named configurations:
`TRANSFORMER_CONFIGS` / `make_transformer`.

Initialisation: N(0, 0.02) for the embedding, MLP and head kernels, zero biases;
the attention projections follow PyTorch's ``nn.MultiheadAttention``
(Xavier-uniform fused q/k/v kernel, ``U(±1/sqrt(d))`` output kernel, zero biases).
LayerNorm scales start at 1; ``layer_norm_scale_std=0.02`` draws them from
``N(1, 0.02)`` as the authors' ``TransformerEncoderInitializer.default()`` does.

Training only the head (Fig 5): `head_only` wraps any optax optimizer so every
parameter outside ``head`` gets an exactly-zero update (Adam included), and
``Transformer(..., train_only_head=True)`` stops gradients at the head's input,
so the gradients of the frozen parameters are exactly zero and cost nothing.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from imbalance_jax import _checks
from imbalance_jax.models.linear import pytorch_uniform

HEAD = "head"

TRANSFORMER_CONFIGS: dict[str, dict[str, Any]] = {
    # Fig 5: embedding -> attention -> classifier (no MLP, LayerNorm or dropout).
    "simplified": dict(num_layers=1, d_model=1200, num_heads=1, mlp_dim=0, dropout_rate=0.0,
                       layer_norm=False),
    # Figs 18, 20: TinyPTB, full batch.
    "one_layer": dict(num_layers=1, d_model=1200, num_heads=1, mlp_dim=1200, dropout_rate=0.2),
    # Figs 17, 22, 26: PTB, batch 512.
    "two_layer": dict(num_layers=2, d_model=1000, num_heads=4, mlp_dim=1000, dropout_rate=0.2),
    # Figs 1, 10: WikiText-103, 1024-token windows: the authors' GPT2 network
    # (`models.gpt2.GPT2`: pre-LN, GELU, final LayerNorm; dropout 0.1 as in their code).
    "gpt2_small": dict(architecture="gpt2", num_layers=12, d_model=768, num_heads=12,
                       mlp_dim=3072, dropout_rate=0.1),
}

_normal = nn.initializers.normal(stddev=0.02)


def sinusoidal_positions(seq_len: int, d_model: int, dtype=jnp.float32) -> jax.Array:
  """Vaswani et al.'s encoding ``[T, d]``: sin on even, cos on odd features.

  Example:
    >>> sinusoidal_positions(3, 4)[0].tolist()
    [0.0, 1.0, 0.0, 1.0]
  """
  position = jnp.arange(seq_len, dtype=dtype)[:, None]
  rate = jnp.exp(jnp.arange(0, d_model, 2, dtype=dtype) * (-math.log(10000.0) / d_model))
  angles = position * rate
  pe = jnp.zeros((seq_len, d_model), dtype)
  pe = pe.at[:, 0::2].set(jnp.sin(angles))
  return pe.at[:, 1::2].set(jnp.cos(angles[:, :d_model // 2]))


def check_heads_and_dropout(d_model: int, num_heads: int, dropout_rate: float) -> None:
  """``d_model`` split evenly over ``num_heads``; ``dropout_rate`` in ``[0, 1)``."""
  if d_model % num_heads:
    raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
  if not 0.0 <= dropout_rate < 1.0:
    raise ValueError(f"dropout_rate must lie in [0, 1), got {dropout_rate}")


def check_token_ids(tokens) -> None:
  """Token ids must be integers ``[N, T]``."""
  if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
    raise ValueError(f"tokens must be integer ids of shape [N, T], got {tokens.dtype} "
                     f"{tokens.shape}")


def optional_dropout(h, rate: float, train: bool):
  """``nn.Dropout(rate)(h)`` (rng collection ``"dropout"``; call inside ``@nn.compact``),
  or ``h`` itself when ``rate == 0``."""
  if rate == 0:
    return h
  return nn.Dropout(rate, deterministic=not train)(h)


class CausalSelfAttention(nn.Module):
  """Multi-head self-attention where position ``t`` attends to positions ``<= t``.

  Attributes:
    num_heads: heads; ``d_model`` must be divisible by it.
    dropout_rate: dropout on the attention weights (rng collection ``"dropout"``).
    param_dtype: parameter dtype.
  """

  num_heads: int
  dropout_rate: float = 0.0
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h_NTD, train: bool = False):
    t, d = h_NTD.shape[-2:]
    if d % self.num_heads:
      raise ValueError(f"d_model={d} must be divisible by num_heads={self.num_heads}")
    head_dim = d // self.num_heads
    qkv = nn.Dense(3 * d, kernel_init=nn.initializers.xavier_uniform(),
                   bias_init=nn.initializers.zeros, param_dtype=self.param_dtype,
                   name="qkv")(h_NTD)
    q, k, v = jnp.split(qkv.reshape(h_NTD.shape[:-1] + (3, self.num_heads, head_dim)), 3,
                        axis=-3)
    q, k, v = (a.squeeze(-3) for a in (q, k, v))  # [N, T, H, Dh]
    scores = jnp.einsum("...qhd,...khd->...hqk", q, k) / jnp.sqrt(head_dim).astype(q.dtype)
    causal = jnp.tril(jnp.ones((t, t), bool))
    scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    if self.dropout_rate > 0:
      weights = nn.Dropout(self.dropout_rate, deterministic=not train)(weights)
    out = jnp.einsum("...hqk,...khd->...qhd", weights, v).reshape(h_NTD.shape)
    return nn.Dense(d, kernel_init=pytorch_uniform(d), bias_init=nn.initializers.zeros,
                    param_dtype=self.param_dtype, name="out")(out)


class Transformer(nn.Module):
  """Causal transformer language model (post-LN, ReLU MLP, sinusoidal positions).

  Attributes:
    vocab_size: V (embedding rows and head outputs).
    num_layers: number of blocks.
    d_model: width d.
    num_heads: attention heads.
    mlp_dim: hidden width of the block MLP; 0 removes the MLP sub-block.
    dropout_rate: dropout after the embedding, on attention weights, inside and
      after the MLP and after attention (PyTorch ``TransformerEncoderLayer``
      placement); active only with ``train=True`` (rng collection ``"dropout"``).
    layer_norm: post-LN after each residual sum (``False``: no LayerNorm).
    train_only_head: ``jax.lax.stop_gradient`` on the head's input, so only the
      head receives gradients (exactly zero elsewhere).
    layer_norm_scale_std: 0: LayerNorm scales start at 1 (ours); > 0: drawn from
      ``N(1, layer_norm_scale_std)`` (the authors' 0.02).
    param_dtype: parameter (and computation) dtype.

  ``__call__(tokens [N, T] int, train=False, return_features=False)`` returns
  logits ``[N, T, V]`` (and the head's inputs ``[N, T, d]``).

  Example:
    >>> model = Transformer(vocab_size=50, d_model=16, num_heads=2, mlp_dim=32)
    >>> params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((2, 8), jnp.int32))
    >>> jax.jit(model.apply)(params, jnp.zeros((2, 8), jnp.int32)).shape
    (2, 8, 50)
  """

  vocab_size: int
  num_layers: int = 1
  d_model: int = 64
  num_heads: int = 1
  mlp_dim: int = 64
  dropout_rate: float = 0.0
  layer_norm: bool = True
  train_only_head: bool = False
  layer_norm_scale_std: float = 0.0
  param_dtype: Any = jnp.float32

  def _check_fields(self):
    _checks.check_int("vocab_size", self.vocab_size, minimum=1)
    _checks.check_int("num_layers", self.num_layers, minimum=0)
    if not self.layer_norm_scale_std >= 0:
      raise ValueError(f"layer_norm_scale_std must be >= 0, got {self.layer_norm_scale_std}")
    _checks.check_int("d_model", self.d_model, minimum=2)
    _checks.check_int("num_heads", self.num_heads, minimum=1)
    _checks.check_int("mlp_dim", self.mlp_dim, minimum=0)
    check_heads_and_dropout(self.d_model, self.num_heads, self.dropout_rate)

  def _dropout(self, h, train):
    return optional_dropout(h, self.dropout_rate, train)

  def _norm(self, h, name):
    if not self.layer_norm:
      return h
    scale_init = nn.initializers.ones
    if self.layer_norm_scale_std:
      normal = nn.initializers.normal(self.layer_norm_scale_std)
      scale_init = lambda key, shape, dtype: 1 + normal(key, shape, dtype)  # noqa: E731
    return nn.LayerNorm(epsilon=1e-5, scale_init=scale_init, param_dtype=self.param_dtype,
                        name=name)(h)

  @nn.compact
  def __call__(self, tokens, train: bool = False, return_features: bool = False):
    self._check_fields()
    check_token_ids(tokens)
    dense = lambda width, name: nn.Dense(width, kernel_init=_normal,
                                         bias_init=nn.initializers.zeros,
                                         param_dtype=self.param_dtype, name=name)
    embed = nn.Embed(self.vocab_size, self.d_model, embedding_init=_normal,
                     param_dtype=self.param_dtype, name="embed")
    h = embed(tokens) * jnp.sqrt(self.d_model).astype(self.param_dtype)
    h = h + sinusoidal_positions(tokens.shape[-1], self.d_model, h.dtype)
    h = self._dropout(h, train)
    for i in range(self.num_layers):
      attn = CausalSelfAttention(self.num_heads, self.dropout_rate, self.param_dtype,
                                 name=f"attn_{i}")(h, train)
      h = self._norm(h + self._dropout(attn, train), f"ln_attn_{i}")
      if self.mlp_dim:
        m = nn.relu(dense(self.mlp_dim, f"mlp_in_{i}")(h))
        m = dense(self.d_model, f"mlp_out_{i}")(self._dropout(m, train))
        h = self._norm(h + self._dropout(m, train), f"ln_mlp_{i}")
    features = jax.lax.stop_gradient(h) if self.train_only_head else h
    logits = dense(self.vocab_size, HEAD)(features)
    return (logits, features) if return_features else logits


def make_transformer(name: str, vocab_size: int, **overrides) -> nn.Module:
  """The model of `TRANSFORMER_CONFIGS` ``name`` (``"simplified"``, ``"one_layer"``,
  ``"two_layer"``: a `Transformer`; ``"gpt2_small"``: the authors' `models.gpt2.GPT2`),
  with fields overridden by keyword.

  Example:
    >>> make_transformer("two_layer", 9922).d_model
    1000
    >>> make_transformer("simplified", 100, d_model=32, train_only_head=True).mlp_dim
    0
    >>> type(make_transformer("gpt2_small", 100)).__name__
    'GPT2'
  """
  _checks.check_choice("name", name, TRANSFORMER_CONFIGS)
  fields = {**TRANSFORMER_CONFIGS[name], **overrides}
  if fields.pop("architecture", "post_ln") == "gpt2":
    from imbalance_jax.models.gpt2 import GPT2  # gpt2 builds on this module's attention
    return GPT2(vocab_size=vocab_size, **fields)
  return Transformer(vocab_size=vocab_size, **fields)


def head_mask(params, head_name: str = HEAD):
  """Pytree of bools like ``params``: True for leaves under a module named ``head_name``.

  Works on bare params and on a variables dict (``{"params": ...}``), with any
  leading (e.g. per-seed) axes.
  """
  def is_head(path, _):
    return any(getattr(entry, "key", None) == head_name for entry in path)
  mask = jax.tree_util.tree_map_with_path(is_head, params)
  if not any(jax.tree.leaves(mask)):
    raise ValueError(f"params have no module named {head_name!r}")
  return mask


def head_only(optimizer: optax.GradientTransformation, head_name: str = HEAD
              ) -> optax.GradientTransformation:
  """Makes ``optimizer`` train only the ``head`` module: all other updates are exactly 0.

  An ``optax.multi_transform`` of ``optimizer`` on the head's leaves and
  ``optax.set_to_zero()`` elsewhere, so frozen parameters never move, whatever
  the optimizer's state (momentum, Adam's moments, weight decay) or gradients.
  Normalizing transforms (e.g. normalized GD) see only the head's gradient.

  Example:
    >>> model = Transformer(vocab_size=10, d_model=4, mlp_dim=4)
    >>> params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 3), jnp.int32))
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> opt = head_only(optax.adam(1e-3))
    >>> updates, _ = jax.jit(opt.update)(grads, opt.init(params), params)
    >>> float(jnp.abs(updates["params"]["embed"]["embedding"]).max())
    0.0
    >>> round(float(updates["params"]["head"]["bias"][0]), 6)
    -0.001
  """
  def labels(params):
    return jax.tree.map(lambda is_head: "train" if is_head else "freeze",
                        head_mask(params, head_name))
  return optax.multi_transform({"train": optimizer, "freeze": optax.set_to_zero()}, labels)


def flops_per_token(vocab_size: int, seq_len: int, *, num_layers: int, d_model: int,
                    mlp_dim: int, training: bool = True, **unused) -> float:
  """Matmul FLOPs per token of a `Transformer` step (2 FLOPs per multiply-add).

  Forward, per token: ``num_layers * (2*3d^2 [qkv] + 2*d^2 [out] + 2*2*T*d
  [scores and weighted values over the full T x T] + 2*2*d*mlp_dim [MLP]) +
  2*d*V [head]``. Training (forward + backward) is 3x the forward. Embedding
  lookups, softmax, LayerNorm and elementwise ops are not counted (a few
  percent at these shapes). Extra keyword arguments (a `TRANSFORMER_CONFIGS`
  entry's ``num_heads``, ``dropout_rate``...) are ignored, so
  ``flops_per_token(V, T, **TRANSFORMER_CONFIGS[name])`` works.

  Example:
    >>> round(flops_per_token(50_608, 1024, **TRANSFORMER_CONFIGS["gpt2_small"]) / 1e9, 3)
    0.856
  """
  del unused
  for name, value in (("vocab_size", vocab_size), ("seq_len", seq_len),
                      ("num_layers", num_layers), ("d_model", d_model)):
    _checks.check_int(name, value, minimum=1 if name != "num_layers" else 0)
  _checks.check_int("mlp_dim", mlp_dim, minimum=0)
  d = d_model
  per_layer = 2 * 3 * d * d + 2 * d * d + 2 * 2 * seq_len * d + 2 * 2 * d * mlp_dim
  forward = num_layers * per_layer + 2 * d * vocab_size
  return float(3 * forward if training else forward)
