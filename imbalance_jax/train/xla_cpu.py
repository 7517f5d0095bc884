"""Convolutions that stay fast inside ``lax.scan`` on XLA:CPU.

XLA:CPU runs a convolution through its fast library kernels (Eigen, or a
YNNPACK fusion) only when the dimension numbers are *canonical*: input
``[N, spatial..., C]``, kernel ``[spatial..., I, O]``, output
``[N, spatial..., O]``. Its ``ConvCanonicalization`` pass rewrites other
convolutions into ``transpose -> canonical conv -> transpose``, but it only
visits the *entry* computation. A convolution inside a ``while`` body (every
``lax.scan``/``fori_loop``, hence every training step of `make_train`) keeps
its dimension numbers and is emitted as a naive element-by-element loop.

Flax's forward convolutions (NHWC inputs, HWIO kernels) are already canonical;
their gradients are not (the input gradient uses an ``OI``-swapped kernel, the
kernel gradient contracts over the batch, ``f01b_i01o->01bf``). So a conv
model's step runs at library speed when jitted alone and ~30-60x slower
inside a scan (see ``docs/performance_conv.md``).

`canonical_convolutions(fn)` applies the same rewrite at the JAX level, where
it reaches every nested computation: it traces ``fn`` to a jaxpr and replays
it with each non-canonical ``conv_general_dilated`` replaced by the
equivalent canonical one between two transposes (exact: only the order of
axes changes). Sub-jaxprs of ``jit``, ``custom_jvp``/``custom_vjp`` calls and
``remat`` are inlined or rewritten; those of ``scan``, ``while`` and ``cond``
are rewritten in place, so the loop structure (and the single compiled
program) is kept.

Apply it to an already differentiated function (e.g. the ``value_and_grad``
of an objective): inlining drops ``custom_jvp``/``custom_vjp`` rules, which
only matters if the result is differentiated again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jex_core

_CONV = "conv_general_dilated"
_INLINED = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr",
            "core_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
            "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr"}


def is_canonical(dimension_numbers: lax.ConvDimensionNumbers) -> bool:
  """True for ``[N, spatial..., C]`` x ``[spatial..., I, O]`` -> ``[N, spatial..., O]``.

  Example:
    >>> from jax import lax
    >>> dn = lax.conv_dimension_numbers((1, 8, 8, 3), (3, 3, 3, 4), ("NHWC", "HWIO", "NHWC"))
    >>> is_canonical(dn)
    True
    >>> is_canonical(lax.conv_dimension_numbers((1, 3, 8, 8), (4, 3, 3, 3),
    ...                                         ("NCHW", "OIHW", "NCHW")))
    False
  """
  lhs, rhs, out = dimension_numbers
  num_dims = len(lhs)
  spatial = tuple(range(1, num_dims - 1))
  return (tuple(lhs) == (0, num_dims - 1, *spatial)
          and tuple(rhs) == (num_dims - 1, num_dims - 2, *range(num_dims - 2))
          and tuple(out) == (0, num_dims - 1, *spatial))


def canonical_conv(lhs, rhs, **params):
  """``conv_general_dilated_p`` with ``params``, computed by a canonical convolution.

  ``lhs``/``rhs`` are transposed to ``[N, spatial..., C]`` / ``[spatial..., I, O]``,
  convolved with canonical dimension numbers (window, dilations, group counts
  and precision unchanged) and the result is transposed back to the layout
  ``params["dimension_numbers"]`` asks for. Same values, same shape.
  """
  lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
  num_dims = len(lhs_spec)
  lhs_perm = (lhs_spec[0], *lhs_spec[2:], lhs_spec[1])
  rhs_perm = (*rhs_spec[2:], rhs_spec[1], rhs_spec[0])
  out_perm = (out_spec[0], *out_spec[2:], out_spec[1])
  spatial = tuple(range(1, num_dims - 1))
  canonical = lax.ConvDimensionNumbers(
      lhs_spec=(0, num_dims - 1, *spatial),
      rhs_spec=(num_dims - 1, num_dims - 2, *range(num_dims - 2)),
      out_spec=(0, num_dims - 1, *spatial))
  conv = _member_conv({**params, "dimension_numbers": canonical})
  if is_canonical(params["dimension_numbers"]):
    return conv(lhs, rhs)
  out = conv(lax.transpose(lhs, lhs_perm), lax.transpose(rhs, rhs_perm))
  return lax.transpose(out, tuple(int(i) for i in np.argsort(out_perm)))


def _member_conv(params):
  """A canonical convolution whose ``vmap`` never becomes a grouped convolution.

  JAX batches a convolution of per-member inputs with per-member kernels into
  one convolution with ``feature_group_count = members``; XLA:CPU runs grouped
  convolutions several times slower than the same work as separate ones. Here
  a batched input alone is folded into the batch dimension, a batched kernel
  alone into the output features, and both batched become a `lax.map` over
  members (a loop of ordinary convolutions).
  """
  @jax.custom_batching.custom_vmap
  def conv(lhs, rhs):
    return lax.conv_general_dilated_p.bind(lhs, rhs, **params)

  @conv.def_vmap
  def conv_vmap(axis_size, in_batched, lhs, rhs):
    lhs_batched, rhs_batched = in_batched
    plain = params["feature_group_count"] == 1 and params["batch_group_count"] == 1
    if lhs_batched and not rhs_batched and params["batch_group_count"] == 1:
      out = conv(lhs.reshape(-1, *lhs.shape[2:]), rhs)
      return out.reshape(axis_size, -1, *out.shape[1:]), True
    if rhs_batched and not lhs_batched and plain:
      # [B, spatial..., I, O] -> [spatial..., I, B * O]
      folded = jnp.moveaxis(rhs, 0, -2).reshape(*rhs.shape[1:-1], -1)
      out = conv(lhs, folded)
      out = out.reshape(*out.shape[:-1], axis_size, -1)
      return jnp.moveaxis(out, -2, 0), True
    if not lhs_batched:
      lhs = jnp.broadcast_to(lhs, (axis_size, *lhs.shape))
    if not rhs_batched:
      rhs = jnp.broadcast_to(rhs, (axis_size, *rhs.shape))
    return lax.map(lambda pair: conv(*pair), (lhs, rhs)), True

  return conv


def canonical_convolutions(fn: Callable[..., Any]) -> Callable[..., Any]:
  """Wraps ``fn`` so that every convolution it runs has canonical dimension numbers.

  Args:
    fn: any JAX-traceable function of arrays/pytrees (typically
      ``jax.value_and_grad(objective)``).

  Returns:
    A function with ``fn``'s signature and outputs (bit-for-bit the same math:
    only transposes are added around non-canonical convolutions). Works under
    ``jit``, ``vmap`` and inside ``lax.scan``.

  Example:
    >>> from jax import lax
    >>> def loss(w, x):  # NCHW input, OIHW kernel: not canonical
    ...   return jnp.sum(lax.conv(x, w, (1, 1), "SAME") ** 2)
    >>> x, w = jnp.ones((2, 3, 8, 8)), jnp.ones((4, 3, 3, 3))
    >>> grad_fn = canonical_convolutions(jax.value_and_grad(loss))
    >>> value, grads = grad_fn(w, x)
    >>> bool(jnp.allclose(grads, jax.grad(loss)(w, x)))
    True
  """

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    closed, out_shape = jax.make_jaxpr(
        functools.partial(fn, **kwargs), return_shape=True)(*args)
    if not _has_conv(closed.jaxpr):
      return fn(*args, **kwargs)  # nothing to rewrite: the program is exactly fn's
    flat_args = jax.tree.leaves(args)
    flat_out = _eval_jaxpr(closed.jaxpr, closed.consts, *flat_args)
    return jax.tree.unflatten(jax.tree.structure(out_shape), flat_out)

  return wrapped


def cpu_convolutions(fn: Callable[..., Any]) -> Callable[..., Any]:
  """`canonical_convolutions` ``(fn)`` when JAX's default backend is the CPU, else ``fn``.

  What the training loop wraps around every objective and gradient it evaluates.
  """
  return canonical_convolutions(fn) if jax.default_backend() == "cpu" else fn


def _rewrite_closed(closed: jex_core.ClosedJaxpr):
  """``(jaxpr, extra)``: ``closed`` with canonical convolutions and no consts.

  ``jaxpr`` is a `ClosedJaxpr` without consts whose leading inputs take the
  arrays ``extra`` (the consts of ``closed`` and any the rewrite created).
  """
  avals = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in closed.in_avals]
  const_avals = [jax.ShapeDtypeStruct(np.shape(c), c.dtype) for c in closed.consts]

  def replay(consts, *args):
    return _eval_jaxpr(closed.jaxpr, consts, *args)

  new = jax.make_jaxpr(replay)(const_avals, *avals)
  jaxpr = jex_core.ClosedJaxpr(_pe().convert_constvars_jaxpr(new.jaxpr), ())
  return jaxpr, [*new.consts, *closed.consts]


@functools.cache
def _pe():
  from jax._src.interpreters import partial_eval  # pylint: disable=g-import-not-at-top
  return partial_eval


def _has_conv(jaxpr) -> bool:
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == _CONV:
      return True
    for sub in jex_core.subjaxprs(_as_open(eqn)):
      if _has_conv(sub):
        return True
  return False


def _as_open(eqn):
  """A one-equation Jaxpr, so `jex_core.subjaxprs` can list the equation's sub-jaxprs."""
  return jex_core.Jaxpr([], [v for v in eqn.invars if isinstance(v, jex_core.Var)],
                        list(eqn.outvars), [eqn])


def _eval_jaxpr(jaxpr, consts, *args):
  env = {}

  def read(v):
    return v.val if isinstance(v, jex_core.Literal) else env[v]

  for var, val in zip(jaxpr.constvars, consts):
    env[var] = val
  for var, val in zip(jaxpr.invars, args):
    env[var] = val
  for eqn in jaxpr.eqns:
    invals = [read(v) for v in eqn.invars]
    with eqn.ctx.manager:
      outvals = _eval_eqn(eqn, invals)
    if not eqn.primitive.multiple_results:
      outvals = [outvals]
    for var, val in zip(eqn.outvars, outvals):
      if not isinstance(var, jex_core.DropVar):
        env[var] = val
  return [read(v) for v in jaxpr.outvars]


def _eval_eqn(eqn, invals):
  name, params = eqn.primitive.name, eqn.params
  if name == _CONV:
    return canonical_conv(*invals, **params)
  if not _has_conv(_as_open(eqn)):
    return _bind(eqn, invals)
  if name in _INLINED and _INLINED[name] in params:
    sub = params[_INLINED[name]]
    sub_jaxpr, sub_consts = (sub.jaxpr, sub.consts) if hasattr(sub, "consts") else (sub, ())
    # custom_vjp_call carries extra non-array params; its operands are the inputs.
    return _eval_jaxpr(sub_jaxpr, sub_consts, *invals[len(invals) - len(sub_jaxpr.invars):])
  if name == "scan":
    jaxpr, extra = _rewrite_closed(params["jaxpr"])
    scan_params = {**params, "jaxpr": jaxpr, "num_consts": params["num_consts"] + len(extra)}
    if "linear" in params:  # older JAX versions flag each operand; newer scans have no such flag
      scan_params["linear"] = (False,) * len(extra) + tuple(params["linear"])
    return eqn.primitive.bind(*extra, *invals, **scan_params)
  if name == "while":
    cond_n, body_n = params["cond_nconsts"], params["body_nconsts"]
    cond, cond_extra = _rewrite_closed(params["cond_jaxpr"])
    body, body_extra = _rewrite_closed(params["body_jaxpr"])
    cond_consts, body_consts = invals[:cond_n], invals[cond_n:cond_n + body_n]
    carry = invals[cond_n + body_n:]
    return eqn.primitive.bind(*cond_extra, *cond_consts, *body_extra, *body_consts, *carry, **{
        **params, "cond_jaxpr": cond, "body_jaxpr": body,
        "cond_nconsts": cond_n + len(cond_extra), "body_nconsts": body_n + len(body_extra)})
  if name == "cond":
    rewritten = [_rewrite_closed(b) for b in params["branches"]]
    if all(not extra for _, extra in rewritten):
      return eqn.primitive.bind(*invals, **{**params, "branches": tuple(j for j, _ in rewritten)})
  if name in ("checkpoint", "remat", "remat2"):
    jaxpr, extra = _rewrite_closed(jex_core.ClosedJaxpr(params["jaxpr"], ()))
    if not extra:
      return eqn.primitive.bind(*invals, **{**params, "jaxpr": jaxpr.jaxpr})
  return _bind(eqn, invals)


def _bind(eqn, invals):
  """Binds ``eqn`` unchanged, as `jax.core.eval_jaxpr` does."""
  return eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
