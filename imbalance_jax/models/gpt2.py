"""GPT2-Small as paper H's authors built it (Figs 1 and 10), as a Flax Linen module.

Paper H (Kunstner et al. 2024, App. A.3) trains "GPT2-Small" on WikiText-103.
The network of their release (``fKunstner/class-imbalance-sgd-adam``,
``optexp/models/transformer_encoder.py``, ``GPTModel``) is not OpenAI's GPT-2
but a PyTorch ``TransformerEncoder`` of their own blocks; `GPT2` is that
network. Token ids ``[N, T]`` -> next-token logits ``[N, T, V]``::

  h = drop(Embed(tokens) * sqrt(d) + sinusoidal positions)
  num_layers x [h = LN_1(h); h = h + drop(CausalAttention(h))        (drop on weights, too)
                h = LN_2(h); h = h + drop(Dense(GELU_tanh(Dense(h))))] (no dropout inside)
  logits = head(LN_f(h))                                               (untied head)

Each LayerNorm *replaces* the residual stream (their ``norm_first`` block
assigns ``x = norm1(x)`` before the residual sum), so the first block's
``LN_1`` is a LayerNorm on the embeddings, and ``LN_f`` (the encoder's
``norm``) is a final LayerNorm before the head. The same rate (0.1) drops the
embeddings, the attention weights and both residual branches.

Initialisation, as their ``TransformerEncoderInitializer.
default_scaled_by_depth(depth, sqrt(2) * 0.02)`` leaves it:
``N(0, std)`` for the embedding, the first MLP layer and the head, with
``std = sqrt(2) * 0.02 = 0.0283``; ``N(0, std / sqrt(2 * num_layers))`` for
the second MLP layer (``1/sqrt(24)`` at 12 layers); zero biases; LayerNorm
scale 1 and offset 0. Their initialiser also lists the attention output
projection with the scaled std, but never applies it (its
``set_multihead_attention`` only visits the fused q/k/v weights), so that
layer keeps PyTorch's ``nn.MultiheadAttention`` default, ``U(±1/sqrt(d))``
with zero bias, as does the q/k/v kernel (Xavier-uniform, zero bias); both
are `CausalSelfAttention`'s initialisation. One difference in distribution is
left: PyTorch's ``TransformerEncoder`` deep-copies one block, so in their
code every layer starts from the *same* attention weights; ours draws each
layer's independently (docs/language.md).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from imbalance_jax import _checks
from imbalance_jax.models.transformer import (HEAD, CausalSelfAttention, check_heads_and_dropout,
                                              check_token_ids, optional_dropout,
                                              sinusoidal_positions)

#: The authors' ``INIT_STD * sqrt(2)`` (general_settings.py of their GPT2 experiments).
GPT2_INIT_STD = math.sqrt(2.0) * 0.02


class GPT2(nn.Module):
  """The authors' GPT2 network (pre-LN with the stream normalised, GELU, final LN).

  Attributes:
    vocab_size: V (embedding rows and head outputs).
    num_layers: blocks (GPT2-Small: 12).
    d_model: width d (768).
    num_heads: attention heads (12); must divide ``d_model``.
    mlp_dim: hidden width of the MLP (their default ``4 d``: 3072).
    dropout_rate: embedding, attention-weight and residual dropout (theirs
      0.1); active only with ``train=True`` (rng collection ``"dropout"``).
    init_std: std of the embedding, first MLP layer and head kernels; the
      second MLP layer's is ``init_std / sqrt(2 num_layers)``.
    train_only_head: ``jax.lax.stop_gradient`` on the head's input.
    param_dtype: parameter (and computation) dtype.

  ``__call__(tokens [N, T] int, train=False, return_features=False)`` returns
  logits ``[N, T, V]`` (and the head's inputs ``[N, T, d]``, after ``LN_f``).

  Example:
    >>> model = GPT2(vocab_size=50, num_layers=2, d_model=16, num_heads=2, mlp_dim=64)
    >>> params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((2, 8), jnp.int32))
    >>> jax.jit(model.apply)(params, jnp.zeros((2, 8), jnp.int32)).shape
    (2, 8, 50)
    >>> sorted(params["params"])[:4]
    ['attn_0', 'attn_1', 'embed', 'head']
  """

  vocab_size: int
  num_layers: int = 12
  d_model: int = 768
  num_heads: int = 12
  mlp_dim: int = 3072
  dropout_rate: float = 0.1
  init_std: float = GPT2_INIT_STD
  train_only_head: bool = False
  param_dtype: Any = jnp.float32

  def _check_fields(self):
    _checks.check_int("vocab_size", self.vocab_size, minimum=1)
    _checks.check_int("num_layers", self.num_layers, minimum=1)
    _checks.check_int("d_model", self.d_model, minimum=2)
    _checks.check_int("num_heads", self.num_heads, minimum=1)
    _checks.check_int("mlp_dim", self.mlp_dim, minimum=1)
    check_heads_and_dropout(self.d_model, self.num_heads, self.dropout_rate)
    if not self.init_std > 0:
      raise ValueError(f"init_std must be positive, got {self.init_std}")

  def _dropout(self, h, train):
    return optional_dropout(h, self.dropout_rate, train)

  @nn.compact
  def __call__(self, tokens, train: bool = False, return_features: bool = False):
    self._check_fields()
    check_token_ids(tokens)
    normal = nn.initializers.normal(stddev=self.init_std)
    residual = nn.initializers.normal(stddev=self.init_std / math.sqrt(2 * self.num_layers))
    dense = lambda width, init, name: nn.Dense(width, kernel_init=init,  # noqa: E731
                                               bias_init=nn.initializers.zeros,
                                               param_dtype=self.param_dtype, name=name)
    norm = lambda name: nn.LayerNorm(epsilon=1e-5, param_dtype=self.param_dtype,  # noqa: E731
                                     name=name)
    embed = nn.Embed(self.vocab_size, self.d_model, embedding_init=normal,
                     param_dtype=self.param_dtype, name="embed")
    h = embed(tokens) * jnp.sqrt(self.d_model).astype(self.param_dtype)
    h = self._dropout(h + sinusoidal_positions(tokens.shape[-1], self.d_model, h.dtype), train)
    for i in range(self.num_layers):
      h = norm(f"ln_attn_{i}")(h)
      attn = CausalSelfAttention(self.num_heads, self.dropout_rate, self.param_dtype,
                                 name=f"attn_{i}")(h, train)
      h = norm(f"ln_mlp_{i}")(h + self._dropout(attn, train))
      m = nn.gelu(dense(self.mlp_dim, normal, f"mlp_in_{i}")(h), approximate=True)
      h = h + self._dropout(dense(self.d_model, residual, f"mlp_out_{i}")(m), train)
    h = norm("ln_final")(h)
    features = jax.lax.stop_gradient(h) if self.train_only_head else h
    logits = dense(self.vocab_size, normal, HEAD)(features)
    return (logits, features) if return_features else logits
