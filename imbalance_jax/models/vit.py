"""SimpleViT (Beyer et al. 2022, "Better plain ViT baselines"; paper H, Figs 12-13).

As in vit-pytorch's ``SimpleViT`` (v1.6.5), which the paper used: patches ->
LayerNorm -> Dense -> LayerNorm, plus fixed 2-d sin-cos position embeddings;
pre-LN transformer blocks (multi-head attention with bias-free qkv and
output projections; MLP with GELU); a final LayerNorm; mean pooling over
patches (no class token); a Dense ``head``. Dense layers use PyTorch's
default ``U(±1/sqrt(fan_in))`` init. No dropout, no BatchNorm: the model is
stateless and ``train`` has no effect (it is accepted so that every vision
model takes the same arguments).

Default shape: ViT-S/16 (width 384, depth 12, 6 heads of 64, MLP 1536,
16x16 patches): 21.96M parameters with 1000 classes at 224x224. The
``VIT_CONFIGS`` entries ``"tiny"`` (4x4 patches: 49 tokens) and ``"micro"``
(7x7 patches: 16 tokens) are CPU-sized for 28x28 digits.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from imbalance_jax.models.linear import pytorch_dense

VIT_CONFIGS = {
    "s16": dict(patch_size=16, width=384, depth=12, num_heads=6, mlp_dim=1536),
    "tiny": dict(patch_size=4, width=64, depth=2, num_heads=2, mlp_dim=128),
    "micro": dict(patch_size=7, width=32, depth=1, num_heads=2, mlp_dim=64),
}


def posemb_sincos_2d(height: int, width: int, dim: int, temperature: float = 10_000.0,
                     dtype=jnp.float32) -> jnp.ndarray:
  """Fixed 2-d sin-cos position embeddings ``[height * width, dim]`` (row-major patches).

  Channels are ``[sin(x w), cos(x w), sin(y w), cos(y w)]`` with
  ``w_i = temperature ** (-i / (dim/4 - 1))``, ``i < dim/4``.

  Example:
    >>> posemb_sincos_2d(2, 3, 8).shape
    (6, 8)
  """
  if dim % 4 or dim < 8:
    raise ValueError(f"dim must be a multiple of 4 and >= 8 for sin-cos embeddings, got {dim}")
  y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  omega = 1.0 / temperature**(np.arange(dim // 4) / (dim // 4 - 1))
  y = y.reshape(-1)[:, None] * omega[None, :]
  x = x.reshape(-1)[:, None] * omega[None, :]
  return jnp.asarray(np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1), dtype)


class SelfAttention(nn.Module):
  """Pre-LN multi-head self-attention without biases (vit-pytorch ``Attention``)."""

  num_heads: int
  head_dim: int
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_NTD):
    width = x_NTD.shape[-1]
    inner = self.num_heads * self.head_dim
    h = nn.LayerNorm(epsilon=1e-5, param_dtype=self.param_dtype)(x_NTD)
    qkv = pytorch_dense(3 * inner, width, self.param_dtype, "qkv", use_bias=False)(h)
    q, k, v = jnp.split(qkv.reshape(*qkv.shape[:-1], 3 * self.num_heads, self.head_dim), 3,
                        axis=-2)
    logits = jnp.einsum("nqhd,nkhd->nhqk", q, k) / np.sqrt(self.head_dim)
    attended = jnp.einsum("nhqk,nkhd->nqhd", nn.softmax(logits, axis=-1), v)
    return pytorch_dense(width, inner, self.param_dtype, "out", use_bias=False)(
        attended.reshape(*attended.shape[:-2], inner))


class SimpleViT(nn.Module):
  """Plain ViT classifier on NHWC images.

  Attributes:
    num_classes: C.
    patch_size: square patch side (must divide the image sides).
    width: token dimension.
    depth: number of transformer blocks.
    num_heads: attention heads.
    head_dim: dimension per head (64 as in vit-pytorch).
    mlp_dim: hidden width of each MLP.
    param_dtype: parameter dtype.

  ``__call__(x, train=False, return_features=False)``; ``return_features``
  also returns the pooled features ``[N, width]``.

  Example:
    >>> model = SimpleViT(num_classes=10, **VIT_CONFIGS["micro"])
    >>> params = jax.jit(model.init)(jax.random.key(0), jnp.ones((2, 28, 28, 1)))
    >>> jax.jit(model.apply)(params, jnp.ones((2, 28, 28, 1))).shape
    (2, 10)
  """

  num_classes: int
  patch_size: int = 16
  width: int = 384
  depth: int = 12
  num_heads: int = 6
  head_dim: int = 64
  mlp_dim: int = 1536
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False, return_features: bool = False):
    del train  # no dropout or BatchNorm
    if x.ndim != 4:
      raise ValueError(f"x must have shape [N, H, W, channels], got {x.shape}")
    n, height, width, channels = x.shape
    p = self.patch_size
    if height % p or width % p:
      raise ValueError(f"patch_size={p} must divide the image size {height}x{width}")
    rows, cols = height // p, width // p
    patches = jnp.asarray(x, self.param_dtype).reshape(n, rows, p, cols, p, channels)
    patches = patches.transpose(0, 1, 3, 2, 4, 5).reshape(n, rows * cols, p * p * channels)
    h = nn.LayerNorm(epsilon=1e-5, param_dtype=self.param_dtype, name="patch_norm_in")(patches)
    h = pytorch_dense(self.width, patches.shape[-1], self.param_dtype, "patch_embed")(h)
    h = nn.LayerNorm(epsilon=1e-5, param_dtype=self.param_dtype, name="patch_norm_out")(h)
    h = h + posemb_sincos_2d(rows, cols, self.width, dtype=h.dtype)
    for i in range(self.depth):
      h = h + SelfAttention(self.num_heads, self.head_dim, self.param_dtype,
                            name=f"block{i}_attention")(h)
      m = nn.LayerNorm(epsilon=1e-5, param_dtype=self.param_dtype, name=f"block{i}_mlp_norm")(h)
      m = nn.gelu(pytorch_dense(self.mlp_dim, self.width, self.param_dtype, f"block{i}_mlp_in")(m),
                  approximate=False)
      h = h + pytorch_dense(self.width, self.mlp_dim, self.param_dtype, f"block{i}_mlp_out")(m)
    h = nn.LayerNorm(epsilon=1e-5, param_dtype=self.param_dtype, name="final_norm")(h)
    features = h.mean(axis=1)
    logits = pytorch_dense(self.num_classes, self.width, self.param_dtype, "head")(features)
    return (logits, features) if return_features else logits
