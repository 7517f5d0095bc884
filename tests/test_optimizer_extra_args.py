"""Optimizers that need more than ``(grads, state, params)``: Sophia, the authors' line
search, and schedule-free evaluated at its average, through `train.make_train`.

Each runs a few steps of the training loop on the separable quadratic
``sum(a x^2 / 2 + b x)`` over a small pytree (test_optimizer_catalogue's), its
step size injected, and is compared with a float64 NumPy loop written from its
paper / the authors' release. On this objective the Hessian is ``diag(a)``, so
Hutchinson's estimate ``u * (H u)`` is exactly ``a`` for any Rademacher ``u``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from imbalance_jax import optim, train
from imbalance_jax.optim import catalogue

RNG = np.random.default_rng(1)
SHAPES = {"embed/embedding": (5, 3), "ln_0/scale": (3,), "body/kernel": (3, 3),
          "head/kernel": (3, 5), "head/bias": (5,)}
A = {k: RNG.uniform(0.5, 2.0, s) for k, s in SHAPES.items()}
B = {k: RNG.normal(size=s) for k, s in SHAPES.items()}
X0 = {k: RNG.normal(size=s) for k, s in SHAPES.items()}
STEPS = 6


def nest(flat):
  out = {}
  for key, value in flat.items():
    module, leaf = key.split("/")
    out.setdefault(module, {})[leaf] = jnp.asarray(value)
  return out


def flatten(tree):
  return {f"{m}/{l}": np.asarray(v) for m, leaves in tree.items() for l, v in leaves.items()}


def f_np(x):
  return sum(np.sum(A[k] * x[k] ** 2 / 2 + B[k] * x[k]) for k in x)


def grad_np(x):
  return {k: A[k] * x[k] + B[k] for k in x}


def quadratic(params, data):
  a, b = data
  value = sum(jnp.sum(aa * xx**2 / 2 + bb * xx) for aa, bb, xx in
              zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(params)))
  return value, {"loss": value}


def train_loop(make, lr, steps=STEPS):
  """(losses at steps 0..steps, final params) of make_train in float64, log_every=1."""
  with jax.enable_x64(True):
    tr = train.make_train(quadratic, make, num_steps=steps, log_every=1)
    result = jax.jit(tr)(nest(X0), (nest(A), nest(B)), lr)
    return np.asarray(result.history["loss"]), flatten(result.params)


def assert_close(got, want, rtol=1e-10, atol=1e-12):
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)


def sophia_np(lr, b1, gamma, interval, steps=STEPS, b2=0.99, eps=1e-8, clip=1.0):
  """Liu et al. (2023) Alg. 3 (Sophia-H) in optax's order: the step uses the Hessian EMA
  before this step's refresh, refreshed on steps 1, 1 + interval, ..."""
  x = dict(X0)
  m = {k: np.zeros_like(v) for k, v in x.items()}
  h = {k: np.zeros_like(v) for k, v in x.items()}
  losses, unclipped = [f_np(x)], []
  for t in range(1, steps + 1):
    g = grad_np(x)
    m = {k: b1 * m[k] + (1 - b1) * g[k] for k in x}
    m_hat = {k: m[k] / (1 - b1**t) for k in x}
    ratio = {k: m_hat[k] / np.maximum(gamma * h[k], eps) for k in x}
    step = {k: np.clip(ratio[k], -clip, clip) for k in x}
    if t > 1:
      unclipped.append(np.mean(np.concatenate([np.abs(r).ravel() < clip
                                               for r in ratio.values()])))
    if (t - 1) % interval == 0:
      h = {k: b2 * h[k] + (1 - b2) * A[k] for k in x}  # Hutchinson on diag(a): exactly a
    x = {k: x[k] - lr * step[k] for k in x}
    losses.append(f_np(x))
  return np.array(losses), x, np.array(unclipped)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sophia_through_the_loop_matches_numpy(momentum):
  # gamma 50: after the first refresh some coordinates are clipped, others not; the
  # Hessian is refreshed on steps 1, 3, 5 (the first step, h = 0, is all clipped).
  make = optim.injectable("sophia", momentum, gamma=50.0, update_interval=2)
  assert make.extra_args == ("obj_fn",)
  losses, x = train_loop(make, 0.05)
  want_losses, want_x, unclipped = sophia_np(0.05, momentum, 50.0, 2)
  np.testing.assert_allclose(losses, want_losses, rtol=1e-10)
  assert_close(x, want_x)
  assert np.all((unclipped > 0.1) & (unclipped < 0.9)), unclipped


def test_sophia_hutchinson_estimates_a_full_hessian_diagonal():
  """On a non-diagonal quadratic the loop's obj_fn gives u * (H u) whose mean over probes
  (the estimator's states) tends to diag(H)."""
  with jax.enable_x64(True):
    n = 6
    q = RNG.normal(size=(n, n))
    hess = q @ q.T + n * np.eye(n)
    estimator = optax.contrib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(3))
    obj = lambda x: 0.5 * x @ jnp.asarray(hess) @ x  # noqa: E731
    x = jnp.ones(n)

    def probe(state, _):
      diag, state = estimator.update(None, state, params=x, obj_fn=obj)
      return state, diag

    _, diags = jax.lax.scan(probe, estimator.init(x), length=4000)
    np.testing.assert_allclose(np.mean(np.asarray(diags), 0), np.diag(hess), rtol=0.1)


def line_search_np(max_lr, steps=STEPS, gamma=0.5, beta=0.9):
  """Paper H's release, optexp/optimizers/LineSGD.py (GDLineSearch.step), in NumPy."""
  x, step_size = dict(X0), max_lr
  losses, sizes = [f_np(x)], []
  for _ in range(steps):
    loss, g = f_np(x), grad_np(x)
    grad_norm = np.sqrt(sum(np.sum(v * v) for v in g.values()))
    step_size = 1.5 * step_size
    while True:
      trial = {k: x[k] - step_size * g[k] for k in x}
      if f_np(trial) - (loss - step_size * gamma * grad_norm**2) <= 0:
        break
      step_size *= beta
    x = trial
    losses.append(f_np(x))
    sizes.append(step_size)
  return np.array(losses), x, sizes


@pytest.mark.parametrize("max_lr", [0.01, 1.0, 30.0])
def test_line_search_sgd_through_the_loop_matches_the_authors_release(max_lr):
  make = optim.injectable("line_search_sgd", 0.0)
  assert make.extra_args == ("value", "grad", "value_fn")
  losses, x = train_loop(make, max_lr)
  want_losses, want_x, sizes = line_search_np(max_lr)
  np.testing.assert_allclose(losses, want_losses, rtol=1e-10)
  assert_close(x, want_x)
  if max_lr >= 1.0:  # the search backtracked (a step below its 1.5x trial)
    assert sizes[0] < 1.5 * max_lr


def test_line_search_sgd_refuses_momentum():
  with pytest.raises(ValueError, match="momentum must be 0 for line_search_sgd"):
    optim.injectable("line_search_sgd", 0.9)


def test_schedule_free_records_its_averaged_iterate():
  """Every recorded loss and the returned parameters are at x (Defazio et al. 2024,
  Alg. 1), the gradients at y; checked against a NumPy loop of both sequences."""
  lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
  make = optim.injectable("schedule_free", b1)
  assert make.eval_params is catalogue.eval_params
  losses, x_final = train_loop(make, lr)
  x, z, y = dict(X0), dict(X0), dict(X0)
  v, weight_sum = {k: np.zeros_like(a) for k, a in X0.items()}, 0.0
  want, at_y = [f_np(x)], [f_np(y)]
  for t in range(1, STEPS + 1):
    g = grad_np(y)
    weight_sum += lr**2
    c = lr**2 / weight_sum
    for k in x:
      v[k] = b2 * v[k] + (1 - b2) * g[k]**2
      z[k] = z[k] - lr * g[k] / (np.sqrt(v[k] / (1 - b2**t)) + eps)
      x[k] = (1 - c) * x[k] + c * z[k]
      y[k] = b1 * x[k] + (1 - b1) * z[k]
    want.append(f_np(x))
    at_y.append(f_np(y))
  np.testing.assert_allclose(losses, want, rtol=1e-9)
  assert_close(x_final, x, rtol=1e-9)
  assert not np.allclose(losses[1:], at_y[1:], rtol=1e-3)  # y's losses are not what we record


def plain_gd(lr):
  """GD that refuses any keyword beyond (grads, state, params)."""
  def update(updates, state, params=None, **extra):
    if extra:
      raise TypeError(f"a plain optimizer was passed {sorted(extra)}")
    return jax.tree.map(lambda g: -lr * g, updates), state

  return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def checking_gd(lr):
  """GD that keeps, in its state, how far value_fn / obj_fn at params are from value and
  how far grad is from the gradient it is given."""
  def update(updates, state, params=None, *, value, grad, value_fn, obj_fn):
    gap = jnp.stack([jnp.abs(value_fn(params) - value), jnp.abs(obj_fn(params) - value),
                     optax.tree.norm(optax.tree.sub(grad, updates)), value])
    return jax.tree.map(lambda g: -lr * g, updates), gap

  return optax.GradientTransformationExtraArgs(lambda params: jnp.full(4, jnp.nan), update)


checking_gd.extra_args = ("value", "grad", "value_fn", "obj_fn")


@pytest.mark.parametrize("batching", [train.FullBatch(chunk_size=5),
                                      train.MiniBatch(batch_size=8, accumulation_steps=2)])
def test_extra_args_only_for_optimizers_that_declare_them(batching):
  """A plain optimizer gets no keywords; one declaring them gets the step's objective value,
  its gradient and an obj_fn / value_fn that reproduces that value at ``params``."""
  from imbalance_jax import data, models
  with jax.enable_x64(True):
    ds = data.heavy_tailed_labels(jax.random.key(0), m=3)
    ds = ds.replace(x=ds.x.astype(jnp.float64))
    model = models.LinearSoftmax(ds.num_classes)
    params = jax.tree.map(lambda p: p.astype(jnp.float64),
                          model.init(jax.random.key(1), ds.x[:1]))
    objective = train.classification_objective(model.apply, "inverse_sqrt")
    key = jax.random.key(2)
    jax.jit(train.make_train(objective, plain_gd, num_steps=2, batching=batching))(
        params, ds, 0.1, key)  # traces: a keyword would raise
    tr = train.make_train(objective, checking_gd, num_steps=2, batching=batching)
    step = jax.jit(lambda state: tr.step(state, ds)[0])
    state = tr.init(params, ds, 0.1, key)
    for _ in range(2):
      state = step(state)
      value_fn_gap, obj_fn_gap, grad_gap, value = np.asarray(state.opt_state)
      assert value > 0.1 and value_fn_gap < 1e-12 and obj_fn_gap < 1e-12 and grad_gap == 0


def test_unknown_extra_args_are_refused():
  make = lambda lr: optax.sgd(lr)  # noqa: E731
  make.extra_args = ("hessian",)
  with pytest.raises(ValueError, match="make_optimizer.extra_args must be among"):
    train.make_train(quadratic, make, num_steps=2)
