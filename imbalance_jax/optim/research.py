"""Per-class and per-block preconditioners for the class-imbalance questions of issue 19.

Every factory is ``(learning_rate, momentum, ...) -> optax.GradientTransformation``.
The classifier is the module named ``head`` (its leaves' last axis is the
class axis: ``kernel`` (d, K), ``bias`` (K,)); embedding tables are leaves
named ``embedding`` (vocab axis 0); block selection, heavy-ball momentum, Adam
on chosen blocks and the rotation wrapper are in `imbalance_jax.optim.blocks`.

* `adalayer`: Adam with one second moment per block (Zhao et al. 2407.07972);
  one block per leaf, except the classifier where each class is its own block.
* `coupled_adam`: the second moment averaged over the vocabulary axis of the
  embedding and classifier (Stollenwerk & Stollenwerk, ACL 2025, arXiv 2502.08441).
* `per_class_normalized_gd`: each classifier row (class k's kernel column and
  bias) normalised by its own gradient norm, GD elsewhere (after Francazi et
  al. ICML 2023, who normalise per-class loss gradients; ours is the
  classifier-row version, computable from the total gradient).
* `frequency_oracle`: GD with classifier row k scaled by ``(pi_k / pi_max)^(-a)``
  (needs the class counts; see `frequency_oracle`).
* `scaled_sign_descent`: ``sign(g) ||g||_1`` with heavy-ball momentum, the
  authors' ``RescaledSignDescent`` (fKunstner/class-imbalance-sgd-adam).

`OPTIMIZERS` holds these and `blocks.adam_on_blocks` (``adam_head``,
``adam_last_layer``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from imbalance_jax import _checks
from imbalance_jax.optim.blocks import HEAD, LAYERNORM, _keys, adam_on_blocks, heavy_ball, in_block

ScalarOrSchedule = optax.ScalarOrSchedule


def _class_axis_leaves(params):
  """True on the classifier's leaves (their last axis is the class axis)."""
  return jax.tree_util.tree_map_with_path(lambda p, _: in_block(p, (HEAD,)), params)


class AdalayerState(NamedTuple):
  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates


def scale_by_adalayer(b1: float = 0.0, b2: float = 0.999, eps: float = 1e-8
                      ) -> optax.GradientTransformation:
  """Adam with a second moment per block: ``nu_B = b2 nu_B + (1 - b2) mean_{i in B} g_i^2``.

  Blocks: each leaf; in the ``head`` each class (index on the last axis) is a
  block of the leaf, so ``nu`` has shape () or (K,). Bias-corrected like Adam:
  ``u = m_hat / (sqrt(nu_hat) + eps)``.
  """
  def block_mean(g, per_class):
    return jnp.mean(g, axis=tuple(range(g.ndim - 1))) if per_class and g.ndim else jnp.mean(g)

  def init_fn(params):
    per_class = _class_axis_leaves(params)
    nu = jax.tree.map(lambda p, c: jnp.zeros_like(block_mean(p, c)), params, per_class)
    return AdalayerState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params), nu)

  def update_fn(updates, state, params=None):
    del params
    per_class = _class_axis_leaves(updates)
    count = state.count + 1
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g, c: b2 * v + (1 - b2) * block_mean(g * g, c),
                      state.nu, updates, per_class)
    c1, c2 = 1 - b1 ** count, 1 - b2 ** count
    out = jax.tree.map(lambda m, v: ((m / c1) / (jnp.sqrt(v / c2) + eps)).astype(m.dtype), mu, nu)
    return out, AdalayerState(count, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


def adalayer(learning_rate: ScalarOrSchedule, momentum: float = 0.0, b2: float = 0.999,
             eps: float = 1e-8) -> optax.GradientTransformation:
  """Adalayer (Zhao et al. 2407.07972): `scale_by_adalayer` with ``b1 = momentum``.

  Assumption (the paper's block statistic is not restated here): a block's
  second moment is the *mean* of its squared gradients, and the classifier is
  split per class, as the paper finds necessary for the last layer.

  Example:
    >>> import jax.numpy as jnp
    >>> opt = adalayer(1.0)
    >>> p = {"w": jnp.zeros(2)}
    >>> u, _ = opt.update({"w": jnp.array([3., 4.])}, opt.init(p), p)
    >>> [round(x, 4) for x in u["w"].tolist()]  # g / sqrt(mean g^2) = g / sqrt(12.5)
    [-0.8485, -1.1314]
  """
  _checks.check_positive("learning_rate", learning_rate)
  momentum = _checks.check_fraction("momentum", momentum)
  return optax.chain(scale_by_adalayer(momentum, _checks.check_fraction("b2", b2), eps),
                     optax.scale_by_learning_rate(learning_rate))


def coupled_axes(params):
  """Vocabulary axis per leaf for Coupled Adam: 0 for ``embedding``, 1 for the head kernel.

  Other leaves map to None (Adam's per-element second moment).
  """
  def rule(path, leaf):
    keys = _keys(path)
    if keys and keys[-1] == "embedding" and jnp.ndim(leaf) == 2:
      return 0
    if in_block(path, (HEAD,)) and keys[-1] == "kernel" and jnp.ndim(leaf) == 2:
      return 1
    return None
  return jax.tree_util.tree_map_with_path(rule, params)


def scale_by_coupled_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
                          ) -> optax.GradientTransformation:
  """Adam whose second moment is averaged over the vocabulary axis of `coupled_axes` leaves.

  ``nu`` is Adam's per-element EMA; the update divides by
  ``sqrt(mean_vocab(nu_hat)) + eps``, one value per embedding column shared by
  all rows (the mean commutes with the EMA, so this is the paper's coupled
  second moment).
  """
  def init_fn(params):
    return optax.scale_by_adam(b1=b1, b2=b2, eps=eps).init(params)

  def update_fn(updates, state, params=None):
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = optax.safe_int32_increment(state.count)
    mu_hat = optax.tree.bias_correction(mu, b1, count)
    nu_hat = optax.tree.bias_correction(nu, b2, count)
    axes = coupled_axes(updates)

    def step(m, v, axis):
      if axis is not None:
        v = jnp.broadcast_to(jnp.mean(v, axis=axis, keepdims=True), v.shape)
      return (m / (jnp.sqrt(v) + eps)).astype(m.dtype)

    out = jax.tree.map(step, mu_hat, nu_hat, axes, is_leaf=lambda x: x is None)
    return out, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def coupled_adam(learning_rate: ScalarOrSchedule, momentum: float = 0.0, b2: float = 0.999,
                 eps: float = 1e-8) -> optax.GradientTransformation:
  """Coupled Adam (Stollenwerk & Stollenwerk, arXiv 2502.08441), ``b1 = momentum``.

  Example:
    >>> import jax.numpy as jnp
    >>> opt = coupled_adam(1.0)
    >>> p = {"embed": {"embedding": jnp.zeros((2, 1))}}
    >>> u, _ = opt.update({"embed": {"embedding": jnp.array([[3.], [4.]])}}, opt.init(p), p)
    >>> [round(x, 4) for x in u["embed"]["embedding"][:, 0].tolist()]  # / sqrt((9+16)/2)
    [-0.8485, -1.1314]
  """
  _checks.check_positive("learning_rate", learning_rate)
  momentum = _checks.check_fraction("momentum", momentum)
  return optax.chain(scale_by_coupled_adam(momentum, _checks.check_fraction("b2", b2), eps),
                     optax.scale_by_learning_rate(learning_rate))


def _per_class_sq_norm(updates, per_class):
  sums = [jnp.sum(g * g, axis=tuple(range(g.ndim - 1)))
          for g, c in zip(jax.tree.leaves(updates), jax.tree.leaves(per_class)) if c]
  if not sums:
    raise ValueError("params have no module named 'head' (the classifier)")
  return functools.reduce(jnp.add, sums)


def normalize_classifier_rows() -> optax.GradientTransformation:
  """Divides each class's ``head`` gradient (kernel column k and bias k) by its l2 norm.

  Other leaves pass through; a zero row stays zero.
  """
  def update_fn(updates, state, params=None):
    del params
    per_class = _class_axis_leaves(updates)
    norm = jnp.sqrt(_per_class_sq_norm(updates, per_class))
    inv = jnp.where(norm > 0, 1.0 / jnp.where(norm > 0, norm, 1.0), 0.0)
    out = jax.tree.map(lambda g, c: (g * inv).astype(g.dtype) if c else g, updates, per_class)
    return out, state

  return optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)


def per_class_normalized_gd(learning_rate: ScalarOrSchedule, momentum: float = 0.0
                            ) -> optax.GradientTransformation:
  """GD whose classifier rows move by their normalised gradient (`normalize_classifier_rows`).

  Example:
    >>> import jax.numpy as jnp
    >>> opt = per_class_normalized_gd(1.0)
    >>> p = {"head": {"kernel": jnp.zeros((1, 2)), "bias": jnp.zeros(2)}}
    >>> g = {"head": {"kernel": jnp.array([[3., 0.]]), "bias": jnp.array([4., 2.])}}
    >>> u, _ = opt.update(g, opt.init(p), p)
    >>> u["head"]["kernel"].tolist(), u["head"]["bias"].tolist()
    ([[-0.6000000238418579, -0.0]], [-0.800000011920929, -1.0])
  """
  return heavy_ball(normalize_classifier_rows(), learning_rate, momentum)


def scale_classifier_rows(scale, axis: str = "classes") -> optax.GradientTransformation:
  """Multiplies the ``head``'s gradient by ``scale`` (K,) along its class axis; others pass.

  ``axis="classes"``: every head leaf's last axis (classifier row k). ``axis="inputs"``:
  axis 0 of the head's 2-D ``kernel`` (input feature k; the bias is unscaled),
  for inputs indexed like the classes (paper H Thm 3's one-hot setting).
  """
  scale = np.asarray(scale)  # cast to each gradient's dtype at update time
  if axis not in ("classes", "inputs"):
    raise ValueError(f"axis must be 'classes' or 'inputs', got {axis!r}")

  def rescale(path, g):
    if not in_block(path, (HEAD,)):
      return g
    k = jnp.asarray(scale, g.dtype)
    if axis == "classes":
      return g * k
    if _keys(path)[-1] == "kernel" and g.ndim == 2:
      return g * k[:, None]
    return g

  def update_fn(updates, state, params=None):
    del params
    if not any(jax.tree.leaves(_class_axis_leaves(updates))):
      raise ValueError("params have no module named 'head' (the classifier)")
    return jax.tree_util.tree_map_with_path(rescale, updates), state

  return optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)


def oracle_scale(class_counts, exponent: float = 1.0) -> np.ndarray:
  """``(pi_k / pi_max)^(-exponent)`` from class counts (K,), float64 NumPy.

  Example:
    >>> oracle_scale([8, 2, 1]).tolist()
    [1.0, 4.0, 8.0]
  """
  counts = np.asarray(class_counts, dtype=np.float64)
  if counts.ndim != 1 or counts.size == 0 or not np.all(np.isfinite(counts)) or np.any(counts <= 0):
    raise ValueError(f"class_counts must be a non-empty 1-D array of positive counts, got "
                     f"shape {counts.shape}")
  if not np.isfinite(exponent) or exponent < 0:
    raise ValueError(f"exponent must be a finite number >= 0, got {exponent}")
  return (counts / counts.max()) ** (-float(exponent))


def frequency_oracle(learning_rate: ScalarOrSchedule, momentum: float = 0.0, *,
                     class_counts=None, exponent: float = 1.0, axis: str = "classes"
                     ) -> optax.GradientTransformation:
  """GD with classifier row k scaled by ``(pi_k / pi_max)^(-exponent)`` (an oracle preconditioner).

  It receives the class counts of the training set as ``class_counts`` (K,);
  through the registry that is ``injectable("frequency_oracle", m,
  class_counts=counts)`` (a study passes ``Dataset.class_counts``). Scaling by
  ``pi_max`` keeps the most frequent class at GD's step, so paper H's step-size
  grid still applies. ``axis`` as in `scale_classifier_rows`.

  On paper H Thm 3's one-hot setting (class k's input is e_k) the class-k
  dynamics live in *input* row k of the kernel: ``axis="inputs"`` with
  ``exponent = 1`` makes every class follow the gradient flow of a class of
  frequency pi_max (per-class losses independent of pi_k), while the default
  classifier-row scaling narrows the spread but does not remove it (the
  off-diagonal logits of class k move at rates pi_k / pi_j); both are tested
  against a NumPy simulation.

  Example:
    >>> import jax.numpy as jnp
    >>> opt = frequency_oracle(1.0, class_counts=[4, 1])
    >>> p = {"head": {"bias": jnp.zeros(2)}}
    >>> u, _ = opt.update({"head": {"bias": jnp.array([1., 1.])}}, opt.init(p), p)
    >>> u["head"]["bias"].tolist()
    [-1.0, -4.0]
  """
  if class_counts is None:
    raise ValueError("class_counts is required for frequency_oracle (the training set's "
                     "count per class)")
  return heavy_ball(scale_classifier_rows(oracle_scale(class_counts, exponent), axis),
                    learning_rate, momentum)


def scale_by_sign_times_l1_norm() -> optax.GradientTransformation:
  """``d = sign(g) ||g||_1``, the l1 norm over the whole pytree (paper H's release)."""
  def update_fn(updates, state, params=None):
    del params
    l1 = sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(updates))
    return jax.tree.map(lambda g: (jnp.sign(g) * l1).astype(g.dtype), updates), state

  return optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)


def scaled_sign_descent(learning_rate: ScalarOrSchedule, momentum: float = 0.0
                        ) -> optax.GradientTransformation:
  """The release's ``RescaledSignDescent``: ``sign(g) ||g||_1`` with heavy-ball momentum.

  Example:
    >>> import jax.numpy as jnp
    >>> opt = scaled_sign_descent(0.5)
    >>> opt.update({"w": jnp.array([3., -1.])}, opt.init(None))[0]["w"].tolist()
    [-2.0, 2.0]
  """
  return heavy_ball(scale_by_sign_times_l1_norm(), learning_rate, momentum)


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam_head": functools.partial(adam_on_blocks, blocks=(HEAD,)),
    "adam_last_layer": functools.partial(adam_on_blocks, blocks=(HEAD, LAYERNORM)),
    "adalayer": adalayer,
    "coupled_adam": coupled_adam,
    "per_class_normalized_gd": per_class_normalized_gd,
    "frequency_oracle": frequency_oracle,
    "scaled_sign_descent": scaled_sign_descent,
}
