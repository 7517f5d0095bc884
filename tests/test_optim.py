"""Optimizers against plain NumPy implementations of paper H App. A.6 and PyTorch's Adam."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from imbalance_jax import optim

RNG = np.random.default_rng(0)
A = {"w": RNG.uniform(0.5, 2.0, (3, 4)), "b": RNG.uniform(0.5, 2.0, (4,))}
B = {"w": RNG.normal(size=(3, 4)), "b": RNG.normal(size=(4,))}
X0 = {"w": RNG.normal(size=(3, 4)), "b": RNG.normal(size=(4,))}


def grad_np(x):
  return {k: A[k] * x[k] + B[k] for k in x}  # gradient of sum(a x^2 / 2 + b x)


def direction_np(name, g):
  if name == "gd":
    return g
  if name == "sign_descent":
    return {k: np.sign(v) for k, v in g.items()}
  norm = np.sqrt(sum(np.sum(v**2) for v in g.values()))  # over the whole pytree
  return {k: v / norm for k, v in g.items()}


def run_np(name, lr, momentum, steps):
  x, m = dict(X0), {k: np.zeros_like(v) for k, v in X0.items()}
  for _ in range(steps):
    d = direction_np(name, grad_np(x))
    m = {k: momentum * m[k] + d[k] for k in x}  # m_t = beta m_{t-1} + d_t
    x = {k: x[k] - lr * m[k] for k in x}  # x_{t+1} = x_t - alpha m_t
  return x


def adam_np(lr, b1, b2, eps, steps):
  x = dict(X0)
  m = {k: np.zeros_like(v) for k, v in x.items()}
  v = {k: np.zeros_like(val) for k, val in x.items()}
  for t in range(1, steps + 1):
    g = grad_np(x)
    for k in x:  # torch.optim.Adam, amsgrad=False, no weight decay
      m[k] = b1 * m[k] + (1 - b1) * g[k]
      v[k] = b2 * v[k] + (1 - b2) * g[k]**2
      m_hat = m[k] / (1 - b1**t)
      v_hat = v[k] / (1 - b2**t)
      x[k] = x[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
  return x


def run_optax(opt, steps):
  with jax.enable_x64(True):
    x = jax.tree.map(jnp.asarray, X0)
    state = opt.init(x)
    for _ in range(steps):
      g = jax.tree.map(lambda a, b, xx: a * xx + b, A, B, x)
      updates, state = opt.update(g, state, x)
      x = optax.apply_updates(x, updates)
    return jax.tree.map(np.asarray, x)


@pytest.mark.parametrize("name", ["gd", "normalized_gd", "sign_descent"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_first_three_steps_match_numpy(name, momentum):
  lr = 0.05
  expected = run_np(name, lr, momentum, 3)
  for opt in (optim.OPTIMIZERS[name](lr, momentum=momentum),
              optim.injectable(name, momentum)(lr)):
    got = run_optax(opt, 3)
    for k in expected:
      np.testing.assert_allclose(got[k], expected[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_adam_matches_pytorch_reference(momentum):
  expected = adam_np(1e-2, momentum, 0.999, 1e-8, 5)
  got = run_optax(optim.injectable("adam", momentum)(1e-2), 5)
  for k in expected:
    np.testing.assert_allclose(got[k], expected[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["gd", "normalized_gd", "sign_descent"])
def test_momentum_defaults_to_zero(name):
  expected = run_np(name, 0.05, 0.0, 3)
  got = run_optax(optim.OPTIMIZERS[name](0.05), 3)
  for k in expected:
    np.testing.assert_allclose(got[k], expected[k], rtol=1e-12, atol=1e-12)


def test_normalized_gd_divides_a_norm_below_one_and_keeps_the_dtype():
  opt = optim.normalize_by_global_norm()
  grads = {"a": jnp.array([0.3], jnp.bfloat16), "b": jnp.array([0.4], jnp.bfloat16)}
  updates, _ = opt.update(grads, opt.init(grads))  # norm 0.5
  assert updates["a"].dtype == jnp.bfloat16
  np.testing.assert_allclose(np.float32(updates["a"]), 0.6, rtol=1e-2)
  np.testing.assert_allclose(np.float32(updates["b"]), 0.8, rtol=1e-2)


def test_adam_defaults_and_hyperparameters_reach_optax():
  for kwargs, (b1, b2, eps) in (({}, (0.9, 0.999, 1e-8)),
                                (dict(momentum=0.5, b2=0.9, eps=1e-3), (0.5, 0.9, 1e-3))):
    expected = adam_np(1e-2, b1, b2, eps, 5)
    got = run_optax(optim.adam(1e-2, **kwargs), 5)
    for k in expected:
      np.testing.assert_allclose(got[k], expected[k], rtol=1e-10, atol=1e-12)


def test_normalized_gd_zero_gradient_is_zero_update():
  opt = optim.normalized_gd(0.1)
  updates, _ = opt.update({"a": jnp.zeros(3)}, opt.init({"a": jnp.zeros(3)}))
  np.testing.assert_array_equal(updates["a"], 0.0)


def test_learning_rate_vmaps_through_inject_hyperparams():
  make = optim.injectable("sign_descent", 0.9)
  params = {"a": jnp.ones(2)}

  def first_update(lr):
    opt = make(lr)
    return opt.update({"a": jnp.array([2.0, -3.0])}, opt.init(params), params)[0]["a"]

  got = jax.jit(jax.vmap(first_update))(jnp.array([0.1, 1.0]))
  np.testing.assert_allclose(got, [[-0.1, 0.1], [-1.0, 1.0]], rtol=1e-6)


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan"), float("inf")])
@pytest.mark.parametrize("name", ["gd", "normalized_gd", "sign_descent", "adam"])
def test_bad_learning_rate(name, bad):
  with pytest.raises(ValueError, match=r"^learning_rate must be "):
    optim.OPTIMIZERS[name](bad)


BAD_MOMENTUM = r"^momentum must be a number in \[0, 1\)"


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_bad_momentum(bad):
  with pytest.raises(ValueError, match=BAD_MOMENTUM):
    optim.gd(0.1, momentum=bad)
  with pytest.raises(ValueError, match=BAD_MOMENTUM):
    optim.injectable("adam", bad)
  with pytest.raises(ValueError, match=BAD_MOMENTUM):
    optim.adam(0.1, momentum=bad)


def test_bad_adam_hyperparameters_are_named():
  with pytest.raises(ValueError, match=r"^b2 must be a number in \[0, 1\), got 1.0$"):
    optim.adam(0.1, b2=1.0)
  with pytest.raises(ValueError, match=r"^eps must be finite and positive, got 0.0$"):
    optim.adam(0.1, eps=0.0)


def test_run_names():
  spec = optim.parse_run("adam")
  assert (spec.optimizer, spec.momentum, spec.weighting) == ("adam", 0.0, "none")
  assert optim.parse_run("sign_descent+m").momentum == 0.9
  assert optim.parse_run("gd+m@inverse").weighting == "inverse"
  assert optim.parse_runs("gd,adam+m", default_weighting="inverse_sqrt")[0].weighting == "inverse_sqrt"
  with pytest.raises(ValueError, match="optimizer"):
    optim.parse_run("sgd+m")
  with pytest.raises(ValueError, match="weighting"):
    optim.parse_run("gd@balanced")
  with pytest.raises(ValueError, match="duplicates"):
    optim.parse_runs("gd,gd")
