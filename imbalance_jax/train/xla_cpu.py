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
it with each ``conv_general_dilated`` replaced by the equivalent canonical one
between two transposes (exact: only the order of axes changes), batched over
vmapped members without grouped convolutions. Sub-jaxprs of ``jit``,
``custom_jvp``/``custom_vjp`` calls are inlined; those of ``scan``, ``while``,
``cond`` and ``remat`` are rewritten in place, so the loop structure (and the
single compiled program) is kept.

When it is applied: only to a function whose jaxpr (sub-jaxprs included)
contains a convolution, canonical or not (a canonical one still becomes a
grouped convolution when `jax.vmap` batches both its input and its kernel, as a
`Sweep` does). Anything else -- a linear model, an MLP, a transformer -- runs
as ``fn`` itself, untouched: same program, same numbers, custom derivative rules
kept. Deciding costs one trace of ``fn`` per argument signature (shapes, dtypes,
pytree structure); `cpu_convolutions` ``(fn, cache_key=...)`` shares that
decision across calls (the training loop keys it by its `Train`, so a run
traced again is not checked again).

Custom derivative rules are dropped where the rewrite applies: inlining a
``custom_jvp``/``custom_vjp`` call keeps its primal computation only. That is
exact for an already differentiated function (the training loop wraps the
``value_and_grad`` of its objective and the evaluation forward pass), and
wrong if the result is differentiated again (it would differentiate, e.g.,
``relu``'s primal instead of its rule).

JAX versions: the rewrite uses one private symbol
(``jax._src.interpreters.partial_eval.convert_constvars_jaxpr``) and the
parameter layout of the ``pjit``, ``custom_jvp_call``, ``custom_vjp_call``,
``scan``, ``while``, ``cond`` and ``remat`` equations. It is known to work with
JAX ``TESTED_JAX_RANGE`` = 0.10.2 to 0.10.2 (tests/test_xla_cpu.py and
benchmarks/bench_conv_step.py were run on those; the test suite fails on any
other version until they are re-run and the range extended). When the private
symbol is missing or an equation that holds a non-canonical convolution is not
understood, the rewrite raises `UnsupportedJaxError` naming the installed
and the known-good versions, instead of leaving that convolution on XLA:CPU's
slow path. Functions without convolutions never touch the private API.
"""

from __future__ import annotations

import functools
import importlib
import itertools
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jex_core

TESTED_JAX_RANGE = ("0.10.2", "0.10.2")  # (oldest, newest), inclusive
"""JAX versions on which tests/test_xla_cpu.py and benchmarks/bench_conv_step.py passed."""

_PRIVATE_MODULE, _PRIVATE_SYMBOL = "jax._src.interpreters.partial_eval", "convert_constvars_jaxpr"
_CONV = "conv_general_dilated"
_INLINED = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr",
            "core_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
            "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr"}


class UnsupportedJaxError(RuntimeError):
  """The installed JAX moved what the convolution rewrite relies on."""


def _unsupported(what: str) -> UnsupportedJaxError:
  oldest, newest = TESTED_JAX_RANGE
  return UnsupportedJaxError(
      f"imbalance_jax.train.xla_cpu cannot rewrite this function's convolutions on JAX "
      f"{jax.__version__}: {what}. The rewrite is known to work with JAX {oldest} to {newest}; "
      "install one of those, or adapt imbalance_jax/train/xla_cpu.py, re-run "
      "tests/test_xla_cpu.py and benchmarks/bench_conv_step.py and extend TESTED_JAX_RANGE.")


def _version_tuple(version: str) -> tuple[int, ...]:
  """``"0.10.2"`` -> ``(0, 10, 2)``; a suffix such as ``.dev20260101`` or ``rc1`` is ignored."""
  parts = []
  for part in version.split(".")[:3]:
    digits = "".join(itertools.takewhile(str.isdigit, part))
    if not digits:
      break
    parts.append(int(digits))
  return tuple(parts)


def jax_version_is_tested(version: str | None = None) -> bool:
  """Whether ``version`` (default: the installed JAX) lies in `TESTED_JAX_RANGE`.

  Example:
    >>> jax_version_is_tested("0.10.2"), jax_version_is_tested("0.4.30")
    (True, False)
  """
  oldest, newest = TESTED_JAX_RANGE
  return (_version_tuple(oldest) <= _version_tuple(version or jax.__version__)
          <= _version_tuple(newest))


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


def canonical_convolutions(fn: Callable[..., Any], *,
                           cache_key: Hashable | None = None) -> Callable[..., Any]:
  """Wraps ``fn`` so that every convolution it runs has canonical dimension numbers.

  Args:
    fn: any JAX-traceable function of arrays/pytrees (typically
      ``jax.value_and_grad(objective)``); keyword arguments are static.
    cache_key: optional hashable that, with the types of the arguments,
      determines ``fn``'s program (e.g. the `Train` whose objective ``fn``
      differentiates, every traced value passed as an argument). Wrappers with
      equal keys share their decisions; without one, a wrapper remembers its own.

  Returns:
    A function with ``fn``'s signature and outputs (bit-for-bit the same math:
    only transposes are added around non-canonical convolutions). Works under
    ``jit``, ``vmap`` and inside ``lax.scan``. On a call whose argument types
    (pytree structure, shapes, dtypes, static keyword arguments) are new, ``fn``
    is traced once to look for convolutions; if there is none, this and every
    later call with those types is ``fn(*args, **kwargs)`` itself.

  Raises:
    UnsupportedJaxError: (when called) ``fn`` has a convolution but the
      installed JAX lacks the private symbol the rewrite uses, or an equation
      holding a non-canonical convolution is not one the rewrite understands.

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
  own_decisions: dict[Hashable, bool] = {}

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    decisions = own_decisions if cache_key is None else _SHARED_DECISIONS
    try:
      signature = (cache_key, _signature(args, kwargs))
      has_conv = decisions.get(signature)
    except TypeError:  # an unhashable static argument or key: decide on every call
      signature, has_conv = None, None
    if has_conv is False:
      return fn(*args, **kwargs)
    closed, out_shape = jax.make_jaxpr(
        functools.partial(fn, **kwargs), return_shape=True)(*args)
    has_conv = _has_conv(closed.jaxpr)
    if signature is not None:
      if len(decisions) >= _MAX_DECISIONS:
        decisions.clear()
      decisions[signature] = has_conv
    if not has_conv:
      return fn(*args, **kwargs)  # nothing to rewrite: the program is exactly fn's
    _convert_constvars_jaxpr()  # fail now, not at the first nested loop, if JAX moved it
    try:
      flat_out = _eval_jaxpr(closed.jaxpr, closed.consts, *jax.tree.leaves(args))
    except (AttributeError, KeyError) as error:
      raise _unsupported(f"its jaxpr is not laid out as expected ({error!r})") from error
    return jax.tree.unflatten(jax.tree.structure(out_shape), flat_out)

  return wrapped


def cpu_convolutions(fn: Callable[..., Any], *,
                     cache_key: Hashable | None = None) -> Callable[..., Any]:
  """`canonical_convolutions` ``(fn, cache_key=...)`` on the CPU backend, else ``fn``.

  What the training loop wraps around every objective and gradient it
  evaluates; a function without convolutions still runs as itself.
  """
  if jax.default_backend() != "cpu":
    return fn
  return canonical_convolutions(fn, cache_key=cache_key)


_SHARED_DECISIONS: dict[Hashable, bool] = {}  # (cache_key, signature) -> has a convolution
_MAX_DECISIONS = 1024  # either table is emptied when it reaches this size


def _signature(args, kwargs) -> Hashable:
  """Pytree structure and abstract values of ``args``; ``kwargs`` (static) as they are."""
  leaves, treedef = jax.tree.flatten(args)
  return treedef, tuple(jax.typeof(leaf) for leaf in leaves), tuple(sorted(kwargs.items()))


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
  jaxpr = jex_core.ClosedJaxpr(_convert_constvars_jaxpr()(new.jaxpr), ())
  return jaxpr, [*new.consts, *closed.consts]


def _convert_constvars_jaxpr():
  """JAX's private ``convert_constvars_jaxpr`` (a jaxpr's consts become its leading inputs)."""
  try:
    module = importlib.import_module(_PRIVATE_MODULE)
  except ImportError as error:
    raise _unsupported(f"the private module {_PRIVATE_MODULE} is gone") from error
  if not hasattr(module, _PRIVATE_SYMBOL):
    raise _unsupported(f"{_PRIVATE_MODULE}.{_PRIVATE_SYMBOL} is gone")
  return getattr(module, _PRIVATE_SYMBOL)


def _convs(jaxpr):
  """Every convolution equation of ``jaxpr`` and of its sub-jaxprs, depth first."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == _CONV:
      yield eqn
    for sub in jex_core.subjaxprs(_as_open(eqn)):
      yield from _convs(sub)


def _has_conv(jaxpr) -> bool:
  return any(True for _ in _convs(jaxpr))


def _has_noncanonical_conv(jaxpr) -> bool:
  return any(not is_canonical(e.params["dimension_numbers"]) for e in _convs(jaxpr))


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
  if _has_noncanonical_conv(_as_open(eqn)):
    raise _unsupported(f"a `{name}` equation holds a non-canonical convolution and the rewrite "
                       f"does not know how to reach into it (params {sorted(params)})")
  return _bind(eqn, invals)  # only canonical convolutions inside: fast as they are


def _bind(eqn, invals):
  """Binds ``eqn`` unchanged, as `jax.core.eval_jaxpr` does."""
  return eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
