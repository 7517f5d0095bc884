"""`train.xla_cpu`: every convolution rewritten to canonical NHWC/HWIO, same numbers.

The fast path (transposes around a canonical convolution, vmapped members kept
out of grouped convolutions) is checked in float64 against `lax.conv_general_dilated`
and against the unrewritten gradient, under jit, vmap, nested vmap and inside
scans; the compiled scan is checked to contain only canonical, ungrouped
convolutions (what XLA:CPU needs to call its library kernels in a loop body).
A function without convolutions runs as itself, checked once per argument
types; the JAX versions the rewrite is known to work with are pinned, and a
moved private API raises instead of running slowly.
"""

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from imbalance_jax import optim, train
from imbalance_jax.train import loop, xla_cpu
from imbalance_jax.types import make_dataset


def _normal(seed, shape):
  """Float64 test inputs from NumPy (eager `jax.random` compiles a program per shape)."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


def _tree_max_diff(a, b):
  return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_is_canonical():
  shapes = ((1, 6, 6, 2), (3, 3, 2, 4))
  assert xla_cpu.is_canonical(lax.conv_dimension_numbers(*shapes, ("NHWC", "HWIO", "NHWC")))
  assert not xla_cpu.is_canonical(lax.conv_dimension_numbers(*shapes, ("NCHW", "OIHW", "NCHW")))
  assert not xla_cpu.is_canonical(lax.conv_dimension_numbers(*shapes, ("NHWC", "HWOI", "NHWC")))
  assert not xla_cpu.is_canonical(lax.conv_dimension_numbers(*shapes, ("NHWC", "HWIO", "CHWN")))
  one_d = lax.conv_dimension_numbers((1, 5, 2), (3, 2, 4), ("NWC", "WIO", "NWC"))
  assert xla_cpu.is_canonical(one_d)


# (layouts, lhs shape, rhs shape, extra conv arguments)
CONVS = [
    (("NCHW", "OIHW", "NCHW"), (2, 3, 7, 6), (4, 3, 3, 2), {}),
    (("NHWC", "HWOI", "CHWN"), (2, 7, 6, 3), (3, 2, 4, 3), {"window_strides": (2, 1)}),
    (("HWCN", "IOHW", "NCHW"), (7, 6, 4, 2), (2, 6, 3, 3),
     {"feature_group_count": 2, "rhs_dilation": (2, 1)}),
    (("NHWC", "HWIO", "NHWC"), (4, 7, 6, 3), (3, 3, 3, 4),
     {"batch_group_count": 2, "lhs_dilation": (2, 1), "padding": ((1, 2), (0, 1))}),
    (("NWC", "OIW", "NCW"), (2, 9, 3), (4, 3, 2), {"padding": "SAME"}),
]


@pytest.mark.parametrize("layouts,lhs_shape,rhs_shape,kwargs", CONVS)
def test_canonical_conv_matches_conv_general_dilated(x64, layouts, lhs_shape, rhs_shape, kwargs):
  lhs, rhs = _normal(0, lhs_shape), _normal(1, rhs_shape)
  kwargs = {"window_strides": (1,) * (len(lhs_shape) - 2), "padding": "VALID", **kwargs}

  def conv(a, b):
    return lax.conv_general_dilated(a, b, dimension_numbers=layouts, **kwargs)

  jaxpr = jax.make_jaxpr(xla_cpu.canonical_convolutions(conv))(lhs, rhs)
  convs = _convs(jaxpr.jaxpr)
  assert len(convs) == 1 and xla_cpu.is_canonical(convs[0].params["dimension_numbers"])
  # Plain, and vmapped over members: input only, kernel only, both (never grouped).
  lhs_B = jnp.stack([lhs, 2.0 * lhs, -lhs])
  rhs_B = jnp.stack([rhs, -rhs, 0.5 * rhs])
  cases = [((), lhs, rhs), ((0, None), lhs_B, rhs), ((None, 0), lhs, rhs_B), ((0, 0), lhs_B, rhs_B)]

  def all_cases(f):
    return [jax.vmap(f, axes)(a, b) if axes else f(a, b) for axes, a, b in cases]

  got = jax.jit(lambda: all_cases(xla_cpu.canonical_convolutions(conv)))()
  for g, expected in zip(got, jax.jit(lambda: all_cases(conv))()):
    assert g.shape == expected.shape
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-12)


class TinyCNN(nn.Module):
  """Conv -> ReLU -> max-pool -> Conv -> Dense: all three kinds of conv gradient."""

  @nn.compact
  def __call__(self, x):
    h = nn.Conv(3, (3, 3), padding=1, param_dtype=x.dtype)(x)
    h = nn.max_pool(nn.relu(h), (2, 2), strides=(2, 2))
    h = nn.relu(nn.Conv(4, (3, 3), padding=1, param_dtype=x.dtype)(h))
    return nn.Dense(3, param_dtype=x.dtype)(h.reshape(h.shape[0], -1))


@functools.cache
def _problem(num_members=3):
  """Loss, params of 3 members and inputs (float64; built once: call it under x64)."""
  model = TinyCNN()
  x = _normal(0, (4, 8, 8, 2))
  y = jnp.array([0, 1, 2, 1])
  init_B = jax.jit(jax.vmap(lambda k: model.init(k, x)))  # jitted: eager Flax init is slow
  params_B = init_B(jax.random.split(jax.random.key(1), num_members))

  def loss(params, x):
    logits = model.apply(params, x)
    labels = jnp.resize(y, x.shape[:1])  # a chunk of x gets the matching prefix of y
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

  return loss, params_B, x


def test_gradient_identical_under_jit_vmap_and_nested_vmap(x64):
  loss, params_B, x = _problem()

  def all_cases(f):  # the inputs are built inside the one jitted call (eager ops compile each)
    params = jax.tree.map(lambda p: p[0], params_B)
    x_B = jnp.stack([x, -x, 0.5 * x])
    params_SB = jax.tree.map(lambda p: jnp.stack([p, 0.5 * p]), params_B)  # seeds x rates
    return [f(params, x), jax.vmap(f, (0, None))(params_B, x), jax.vmap(f)(params_B, x_B),
            jax.vmap(f, (None, 0))(params, x_B),
            jax.vmap(jax.vmap(f, (0, None)), (0, None))(params_SB, x)]

  value_and_grad = jax.value_and_grad(loss)
  got = jax.jit(lambda: all_cases(xla_cpu.canonical_convolutions(value_and_grad)))()
  expected = jax.jit(lambda: all_cases(value_and_grad))()
  assert _tree_max_diff(got, expected) < 1e-13


def _scan_train(grad_fn, num_steps=3):
  """GD steps in a scan; the gradient accumulates over two chunks in an inner scan."""

  def step(params, x):
    def chunk(total, x_chunk):
      return jax.tree.map(jnp.add, total, grad_fn(params, x_chunk)[1]), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    grads, _ = lax.scan(chunk, zeros, x.reshape(2, -1, *x.shape[1:]))
    grads = lax.cond(jnp.isfinite(grads["params"]["Dense_0"]["bias"][0]),
                     lambda g: g, lambda g: jax.tree.map(jnp.zeros_like, g), grads)
    return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

  def run(params, x):
    return lax.scan(lambda p, _: (step(p, x), None), params, length=num_steps)[0]

  return run


def test_training_scan_matches_and_compiles_to_canonical_convs(x64):
  loss, params_B, x = _problem()
  value_and_grad = jax.value_and_grad(loss)
  fast_run = jax.vmap(_scan_train(xla_cpu.canonical_convolutions(value_and_grad)), (0, None))
  expected = jax.jit(jax.vmap(_scan_train(value_and_grad), (0, None)))(params_B, x)
  compiled = jax.jit(fast_run).lower(params_B, x).compile()  # one compile: run and inspected
  assert _tree_max_diff(compiled(params_B, x), expected) < 1e-12
  hlo = compiled.as_text()
  labels = re.findall(r" convolution\(.*dim_labels=([^,]+)", hlo)
  assert len(labels) >= 5  # 2 forward, 2 kernel gradients, 1 input gradient
  assert set(labels) == {"b01f_01io->b01f"}, labels
  assert "feature_group_count" not in hlo and "batch_group_count" not in hlo


def test_remat_and_pytree_outputs_kept(x64):
  loss, params_B, x = _problem()
  params = jax.tree.map(lambda p: p[0], params_B)

  def fn(params, x, *, scale):
    value, grads = jax.value_and_grad(jax.checkpoint(loss))(params, x)
    return {"value": scale * value, "grads": grads}

  fast = xla_cpu.canonical_convolutions(fn)
  jaxpr = jax.make_jaxpr(lambda p, d: fast(p, d, scale=2.0))(params, x)
  convs = _convs(jaxpr.jaxpr)
  assert len(convs) >= 5 and all(xla_cpu.is_canonical(e.params["dimension_numbers"]) for e in convs)
  got = jax.jit(functools.partial(fast, scale=2.0))(params, x)
  expected = jax.jit(functools.partial(fn, scale=2.0))(params, x)
  assert jax.tree.structure(got) == jax.tree.structure(expected)
  assert _tree_max_diff(got, expected) < 1e-13


def test_convolutions_inside_while_scan_cond_and_jit_are_rewritten(x64):
  x, w0 = _normal(0, (2, 3, 6, 6)), _normal(1, (4, 3, 3, 3))

  def conv(x, w):  # NCHW x OIHW: not canonical
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))

  def fn(w, num_steps):
    def body(_, w):
      return w - 1e-3 * jax.grad(lambda w: jnp.sum(conv(x, w) ** 2))(w)

    # A while loop whose condition closes over the traced bound (a cond const).
    _, w = lax.while_loop(lambda c: c[0] < num_steps, lambda c: (c[0] + 1, body(c[0], c[1])),
                          (0, w))
    w, _ = lax.scan(lambda w, _: (w * (1 + 1e-3 * jnp.mean(conv(x, w))), None), w, length=2)
    return lax.cond(jnp.sum(w) > 0, lambda w: jnp.sum(jax.jit(conv)(x, w)),
                    lambda w: -jnp.sum(conv(2 * x, w)), w)

  fast = xla_cpu.canonical_convolutions(fn)
  jaxpr = jax.make_jaxpr(fast)(w0, jnp.int32(3))
  kinds = {e.primitive.name for e in jaxpr.jaxpr.eqns}
  assert {"while", "scan", "cond"} <= kinds  # loops and the branch are kept, not unrolled
  convs = _convs(jaxpr.jaxpr)
  # forward + kernel gradient in the while loop, one in the scan, one per branch (the first
  # inside a jit call, inlined)
  assert len(convs) == 5
  assert all(xla_cpu.is_canonical(e.params["dimension_numbers"]) for e in convs)
  for num_steps in (0, 3):
    for w in (w0, -w0):
      got, expected = jax.jit(fast)(w, num_steps), jax.jit(fn)(w, num_steps)
      np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_rewrite_closed_moves_consts_to_leading_inputs(x64):
  """A closed jaxpr with consts (here a captured kernel) becomes one taking them as inputs."""
  kernel = _normal(2, (4, 3, 3, 3))  # OIHW
  x = _normal(3, (2, 3, 6, 6))

  def fn(x):
    return lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                    dimension_numbers=("NCHW", "OIHW", "NCHW")) + 1.0

  closed = jax.make_jaxpr(fn)(x)
  assert len(closed.consts) >= 1 and any(c.shape == kernel.shape for c in closed.consts)
  rewritten, extra = xla_cpu._rewrite_closed(closed)
  assert rewritten.consts == [] or len(rewritten.consts) == 0
  assert len(rewritten.jaxpr.invars) == len(extra) + 1
  assert [np.shape(e) for e in extra[-len(closed.consts):]] == [np.shape(c) for c in closed.consts]
  assert all(xla_cpu.is_canonical(e.params["dimension_numbers"]) for e in _convs(rewritten.jaxpr))
  (got,) = jax.core.eval_jaxpr(rewritten.jaxpr, [], *extra, x)
  np.testing.assert_allclose(got, fn(x), rtol=1e-12)


def test_functions_without_convolutions_run_unchanged():
  """No convolution: fn itself runs, so jit calls and custom derivative rules are kept."""
  def fn(x):
    return jax.jit(jax.nn.relu)(x)  # relu has a custom_jvp: derivative 0 at 0

  wrapped = xla_cpu.canonical_convolutions(fn)
  assert float(jax.grad(wrapped)(0.0)) == 0.0  # inlined max(x, 0) would give 0.5
  kinds = [e.primitive.name for e in jax.make_jaxpr(wrapped)(1.0).jaxpr.eqns]
  assert kinds == [e.primitive.name for e in jax.make_jaxpr(fn)(1.0).jaxpr.eqns]
  assert len(kinds) == 1 and kinds[0] in ("jit", "pjit")  # one call, not inlined


def test_jax_version_is_in_the_tested_range():
  """The rewrite leans on JAX internals: a JAX outside the range must be checked, then added."""
  oldest, newest = xla_cpu.TESTED_JAX_RANGE
  assert xla_cpu.jax_version_is_tested(), (
      f"JAX {jax.__version__} is outside xla_cpu.TESTED_JAX_RANGE ({oldest} to {newest}): "
      "re-run tests/test_xla_cpu.py and benchmarks/bench_conv_step.py on it (conv steps in "
      "make_train at jit-alone speed) and extend TESTED_JAX_RANGE in "
      "imbalance_jax/train/xla_cpu.py")
  assert xla_cpu.jax_version_is_tested(oldest) and xla_cpu.jax_version_is_tested(newest)
  assert xla_cpu.jax_version_is_tested(newest + ".dev20260101")
  bumped = newest.split(".")
  bumped[-1] = str(int(bumped[-1]) + 1)
  assert not xla_cpu.jax_version_is_tested(".".join(bumped))
  assert not xla_cpu.jax_version_is_tested("0.4.30")


def _nchw_conv(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))


def _traced_counter(fn):
  """``fn`` and a list that gets one entry each time ``fn`` is traced (or run)."""
  traces = []

  def counted(*args):
    traces.append(None)
    return fn(*args)

  return counted, traces


def test_step_without_convolutions_is_fn_and_one_with_a_conv_is_rewritten():
  """No convolution: the same jaxpr as fn, and after one check per argument types fn runs alone."""
  x, w = jnp.ones((2, 3, 6, 6)), jnp.ones((4, 3, 3, 3))
  dense, dense_traces = _traced_counter(
      jax.value_and_grad(lambda w, x: jnp.sum(jnp.tanh(x[:, :, :3, :3] * w[0]))))
  wrapped = xla_cpu.canonical_convolutions(dense)
  assert str(jax.make_jaxpr(wrapped)(w, x)) == str(jax.make_jaxpr(dense)(w, x))
  assert len(dense_traces) == 3  # the check and the call, then fn itself for the reference
  for _ in range(2):  # the decision is remembered: fn is traced once per call
    jax.make_jaxpr(lambda w, x: wrapped(w, x))(w, x)  # a new function: JAX traces it anew
  assert len(dense_traces) == 5
  jax.make_jaxpr(lambda w, x: wrapped(w, x))(w, x[:1])  # new argument types: checked again
  assert len(dense_traces) == 7

  conv = jax.value_and_grad(lambda w, x: jnp.sum(_nchw_conv(x, w) ** 2))
  jaxpr = jax.make_jaxpr(xla_cpu.canonical_convolutions(conv))(w, x)
  assert str(jaxpr) != str(jax.make_jaxpr(conv)(w, x))
  assert not all(xla_cpu.is_canonical(e.params["dimension_numbers"])
                 for e in _convs(jax.make_jaxpr(conv)(w, x).jaxpr))
  convs = _convs(jaxpr.jaxpr)  # the forward conv and the kernel gradient
  assert len(convs) == 2 and all(xla_cpu.is_canonical(e.params["dimension_numbers"]) for e in convs)


def test_cache_key_shares_the_decision_across_wrappers():
  fn, traces = _traced_counter(lambda x: jnp.sin(x) * 2.0)
  key = ("test_cache_key_shares_the_decision", object())
  jax.make_jaxpr(xla_cpu.canonical_convolutions(fn, cache_key=key))(1.0)
  assert len(traces) == 2  # the check and the call
  jax.make_jaxpr(xla_cpu.canonical_convolutions(fn, cache_key=key))(2.0)  # a new wrapper
  assert len(traces) == 3
  jax.make_jaxpr(xla_cpu.canonical_convolutions(fn, cache_key=key))(jnp.ones(3))
  assert len(traces) == 5  # new argument types
  jax.make_jaxpr(xla_cpu.canonical_convolutions(fn))(2.0)  # no key: its own decisions
  assert len(traces) == 7


def test_linear_train_traces_its_objective_as_often_as_without_the_rewrite(monkeypatch):
  """A linear `make_train` traced twice: the second time, no check at all."""
  model = lambda p, x: x @ p["w"]
  objective, traces = _traced_counter(train.classification_objective(model))
  run = train.make_train(objective, optim.injectable("adam", 0.9), num_steps=4, log_every=2,
                         batching=train.FullBatch(chunk_size=3))
  data = make_dataset(jnp.ones((8, 5)), jnp.arange(8) % 3, 3)
  params = {"w": jnp.zeros((5, 3))}

  def lowered_traces():
    before = len(traces)
    jax.jit(lambda p: run(p, data, 0.1)).lower(params)  # a new jit: JAX retraces
    return len(traces) - before

  first, second = lowered_traces(), lowered_traces()
  monkeypatch.setattr(loop, "cpu_convolutions", lambda fn, cache_key=None: fn)
  unwrapped = lowered_traces()
  # One check for the full chunks (scanned), one for the smaller remainder; then none.
  assert second == unwrapped and first == unwrapped + 2


def test_missing_private_symbol_raises_naming_the_versions(monkeypatch):
  monkeypatch.setattr(xla_cpu, "_PRIVATE_SYMBOL", "convert_constvars_jaxpr_renamed")
  x, w = jnp.ones((2, 3, 6, 6)), jnp.ones((4, 3, 3, 3))
  with pytest.raises(xla_cpu.UnsupportedJaxError,
                     match=rf"JAX {re.escape(jax.__version__)}.*convert_constvars_jaxpr_renamed "
                           rf"is gone.*known to work with JAX {re.escape(xla_cpu.TESTED_JAX_RANGE[0])}"):
    xla_cpu.canonical_convolutions(_nchw_conv)(x, w)
  # A function without convolutions never touches the private API.
  assert float(xla_cpu.canonical_convolutions(jnp.sum)(x)) == float(jnp.sum(x))


def test_equation_the_rewrite_cannot_reach_into_raises(monkeypatch):
  """A non-canonical conv inside an equation the rewrite does not know: loud, not slow."""
  x, w = jnp.ones((2, 3, 6, 6)), jnp.ones((4, 3, 3, 3))

  @jax.custom_batching.custom_vmap
  def custom(x, w):
    return _nchw_conv(x, w)

  custom.def_vmap(lambda axis_size, in_batched, x, w: (jax.vmap(_nchw_conv)(x, w), True))
  with pytest.raises(xla_cpu.UnsupportedJaxError, match="custom_vmap_call"):
    xla_cpu.canonical_convolutions(custom)(x, w)
  # The parameter that holds a jit's body renamed (as a JAX upgrade might do).
  monkeypatch.setattr(xla_cpu, "_INLINED", {})
  with pytest.raises(xla_cpu.UnsupportedJaxError, match=r"`(p)?jit` equation"):
    xla_cpu.canonical_convolutions(jax.jit(_nchw_conv))(x, w)
  # Only canonical convolutions inside: bound as they are (they are fast already).
  nhwc = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
  x_nhwc, w_hwio = jnp.ones((2, 6, 6, 3)), jnp.ones((3, 3, 3, 4))
  np.testing.assert_array_equal(xla_cpu.canonical_convolutions(jax.jit(nhwc))(x_nhwc, w_hwio),
                                nhwc(x_nhwc, w_hwio))


def test_cpu_convolutions_rewrites_only_on_the_cpu(monkeypatch):
  def fn(x):
    return x

  wrapped = xla_cpu.cpu_convolutions(fn)
  assert wrapped is not fn and wrapped.__wrapped__ is fn  # this machine: the CPU
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert xla_cpu.cpu_convolutions(fn) is fn


def _convs(jaxpr):
  """Every convolution equation in ``jaxpr`` and its sub-jaxprs."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "conv_general_dilated":
      found.append(eqn)
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else [value]:
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          found.extend(_convs(inner))
  return found
