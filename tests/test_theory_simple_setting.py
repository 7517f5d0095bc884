"""Paper H Thm. 3: closed forms vs Lemma 4's ODE, the full gradient flow, GD and sign descent."""

import hypothesis
import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from imbalance_jax import optim
from imbalance_jax.data.theory_problems import simple_imbalanced_setting
from imbalance_jax.theory import simple_setting as ss
from imbalance_jax.theory import simulate


def rel_err(a, b):
  return float(np.max(np.abs(np.asarray(a) / np.asarray(b) - 1.0)))


def test_wright_omega_is_lambert_w_of_exp_where_representable():
  x = np.linspace(-20.0, 700.0, 400)
  np.testing.assert_allclose(special.wrightomega(x), special.lambertw(np.exp(x)).real, rtol=1e-13)


@pytest.mark.parametrize("c, pi", [(2, 0.5), (5, 0.9), (10, 0.01), (1000, 1e-4), (50_000, 1e-6)])
def test_closed_form_solves_lemma4_ode(c, pi):
  times = np.geomspace(1e-2, 1e3, 25) / pi
  a, b = ss.simple_setting_ode(times, pi, c)
  a_cf, b_cf = ss.simple_setting_weights(times, pi, c)
  np.testing.assert_allclose(a_cf, a, rtol=1e-7)
  np.testing.assert_allclose(b_cf, b, rtol=1e-7)
  loss_ode = np.log1p((c - 1) * np.exp(b - a))
  assert rel_err(ss.simple_setting_class_loss(times, pi, c), loss_ode) < 1e-6


@pytest.mark.parametrize("counts", [[1000, 1], [50, 20, 5, 1]])
def test_closed_form_matches_gradient_flow_of_the_softmax_model(x64, counts):
  data = simple_imbalanced_setting(counts, dtype=np.float64)
  pi = np.asarray(counts) / np.sum(counts)
  times = np.geomspace(0.1, 3e3, 12)
  loss_TC = simulate.gradient_flow_path(ss.softmax_model_loss, jnp.zeros((len(counts),) * 2),
                                        data, times, record_fn=ss.per_class_loss)
  expected = ss.simple_setting_class_loss(times[:, None], pi, len(counts))
  assert rel_err(loss_TC, expected) < 1e-6


def test_small_step_gd_matches_gradient_flow(x64):
  counts = [200, 20, 2, 1]
  pi = np.asarray(counts) / np.sum(counts)
  runs = {lr: np.asarray(ss.simulate_simple_setting(counts, optim.gd, lr, int(round(200 / lr)),
                                                    log_every=int(round(20 / lr)),
                                                    dtype=jnp.float64))
          for lr in (0.02, 0.01)}
  times = np.arange(0, 201, 20.0)
  expected = ss.simple_setting_class_loss(times[:, None], pi, len(counts))
  # GD is first-order accurate in the step; Richardson extrapolation removes it.
  assert rel_err(runs[0.01], expected) < 1e-3
  assert rel_err(2 * runs[0.01] - runs[0.02], expected) < 1e-5


def test_sign_descent_matches_corrected_lemma7(x64):
  counts = [1000, 10, 1]
  lr, steps = 0.05, 200
  loss_TC = ss.simulate_simple_setting(counts, optim.sign_descent, lr, steps, log_every=10,
                                       dtype=jnp.float64)
  times = lr * np.arange(0, steps + 1, 10)
  pi = np.asarray(counts) / np.sum(counts)
  expected = ss.simple_setting_class_loss(times[:, None], pi, 3, method="sign")
  assert rel_err(loss_TC, expected) < 1e-6
  # Continuous-time sign flow (solve_ivp) agrees as well.
  data = simple_imbalanced_setting(counts, dtype=np.float64)
  flow = simulate.gradient_flow_path(ss.softmax_model_loss, jnp.zeros((3, 3)), data, times[1:],
                                     direction=jnp.sign, record_fn=ss.per_class_loss)
  assert rel_err(flow, expected[1:]) < 1e-6
  # Paper H's printed Lemma 7, log(1 + (c - 1) e^{-ct}), is not what sign descent does.
  printed = np.log1p(2 * np.exp(-3 * times[1:]))
  assert rel_err(printed, expected[1:, 0]) > 0.5


def test_sign_descent_weights_are_plus_minus_t():
  a, b = ss.simple_setting_weights(np.array([0.0, 1.5]), 1e-3, 7, method="sign")
  np.testing.assert_allclose(a, [0.0, 1.5])
  np.testing.assert_allclose(b, [0.0, -1.5])
  a, b = ss.simple_setting_ode([0.5, 1.5], 1e-3, 7, method="sign")
  np.testing.assert_allclose([a, b], [[0.5, 1.5], [-0.5, -1.5]], rtol=1e-9)


@pytest.mark.parametrize("c, pi", [(2, 0.5), (10, 0.01), (1000, 1e-4)])
def test_gradient_flow_loss_is_theta_one_over_pi_t(c, pi):
  times = np.geomspace(1e4, 1e10, 7) / pi
  ratio = ss.simple_setting_class_loss(times, pi, c) / ss.simple_setting_gd_asymptote(times, pi, c)
  assert np.all(np.diff(np.abs(ratio - 1)) < 0)  # converging...
  assert abs(ratio[-1] - 1) < 1e-3  # ...to the leading term (c - 1) / (c pi t)


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(c=st.integers(2, 10**6), log_pi=st.floats(-8, 0), log_t=st.floats(-3, 12))
def test_margin_solves_the_implicit_equation(c, log_pi, log_t):
  pi, t = 10.0**log_pi, 10.0**log_t
  u = ss.simple_setting_margin(t, pi, c)
  f = 1.0 + c * pi * t
  # e^u + (c - 1) u = 1 + c pi t, written to avoid overflow: u <= log(f).
  assert abs((np.exp(u) + (c - 1) * u) / f - 1) < 1e-8
  # The loss depends on (pi, t) only through pi t, and decreases with t.
  loss = ss.simple_setting_class_loss(t, pi, c)
  np.testing.assert_allclose(ss.simple_setting_class_loss(t * pi / 0.5, 0.5, c), loss, rtol=1e-9)
  assert ss.simple_setting_class_loss(2 * t, pi, c) < loss < np.log(c)


@pytest.mark.parametrize("method", ["gd", "sign"])
def test_time_to_loss_inverts_the_class_loss(method):
  pi = np.array([[0.9], [1e-3], [1e-6]])
  loss = np.array([2.0, 0.3, 1e-2, 1e-5])
  t = ss.simple_setting_time_to_loss(loss, pi, 10, method)
  np.testing.assert_allclose(ss.simple_setting_class_loss(t, pi, 10, method), loss + 0 * pi,
                             rtol=1e-9)
  assert np.all(ss.simple_setting_time_to_loss(np.log(10.0) + 1, pi, 10, method) == 0)


def test_broadcasts_over_t_and_pi():
  loss = ss.simple_setting_class_loss(np.arange(4.0)[:, None], np.array([0.5, 0.25, 0.25]), 3)
  assert loss.shape == (4, 3)
  np.testing.assert_allclose(loss[0], np.log(3.0))
  assert ss.simple_setting_class_loss(np.arange(4.0), 0.1, 3, "sign").shape == (4,)


@pytest.mark.parametrize("kwargs, name", [
    ({"t": -1.0}, "t"), ({"t": np.nan}, "t"), ({"pi_k": 0.0}, "pi_k"), ({"pi_k": 1.5}, "pi_k"),
    ({"num_classes": 1}, "num_classes"), ({"num_classes": 2.5}, "num_classes"),
    ({"method": "adam"}, "method"),
])
def test_bad_arguments_are_named(kwargs, name):
  args = {"t": 1.0, "pi_k": 0.1, "num_classes": 3, "method": "gd"} | kwargs
  with pytest.raises(ValueError, match=name):
    ss.simple_setting_class_loss(**args)
