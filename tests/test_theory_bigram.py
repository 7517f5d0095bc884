"""Kunstner & Bach's linear bigram model (imbalance_jax.theory.bigram) against float64 NumPy loops."""

import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax.theory import bigram
from imbalance_jax.theory.unigram_scaling import loglog_slope


def numpy_bigram_run(method, d, alpha, eta, num_steps, seed=0):
  """Brute force: W [d, d] from 0 on 1/2 sum_i pi_i ||W_i - pi_{.|i}||^2, a Python loop."""
  pi = np.arange(1, d + 1.0) ** -alpha
  pi /= pi.sum()
  p = pi.copy()
  rng = np.random.default_rng(seed)
  target = np.stack([p[rng.permutation(d)] for _ in range(d)])  # pi_{j|i}
  loss = lambda w: 0.5 * (pi[:, None] * (w - target) ** 2).sum()
  w = np.zeros((d, d))
  curve = [1.0]
  for _ in range(num_steps):
    g = pi[:, None] * (w - target)
    w = w - eta * (g if method == "gd" else np.sign(g))
    curve.append(loss(w) / loss(np.zeros((d, d))))
  return np.array(curve), pi, p


@pytest.mark.parametrize("method", ["gd", "sign_descent"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_simulation_matches_the_numpy_bigram_loop_full_and_reduced(x64, method, alpha):
  d, steps = 7, 40
  etas = [0.5, 1.0] if method == "gd" else [0.01, 0.05]
  for eta_scale in etas:
    pi0 = (np.arange(1, d + 1.0) ** -alpha)
    eta = eta_scale / (pi0[0] / pi0.sum()) if method == "gd" else eta_scale
    reference, pi, p = numpy_bigram_run(method, d, alpha, eta, steps)
    full = bigram.simulate(method, *bigram.bigram_problem(d, alpha), np.array([eta]), steps)
    reduced = bigram.simulate(method, *bigram.reduced_problem(method, pi, p), np.array([eta]),
                              steps)
    np.testing.assert_allclose(np.asarray(full)[0], reference, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(np.asarray(reduced)[0], reference, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("alpha", [0.5, 1.5])
def test_closed_forms_match_the_simulation(x64, alpha):
  pi, p = bigram.zipf_bigram(50, alpha)
  t = np.arange(301)
  gd = bigram.simulate("gd", *bigram.reduced_problem("gd", pi, p), np.array([1 / pi[0]]), 300)
  np.testing.assert_allclose(bigram.gd_relative_error(t, pi, 1 / pi[0]), np.asarray(gd)[0],
                             rtol=1e-9, atol=1e-14)
  rates = bigram.sign_descent_step_grid(p, [0.1, 0.7, 3.0])
  sd = bigram.simulate("sign_descent", *bigram.reduced_problem("sign_descent", pi, p), rates, 300)
  for eta, curve in zip(rates, np.asarray(sd)):
    np.testing.assert_allclose(bigram.sign_descent_relative_error(t, p, eta), curve, rtol=1e-9,
                               atol=1e-14)


def test_sign_descent_closed_form_stops_on_an_exact_multiple(x64):
  p = np.array([0.5, 0.25])
  curve = np.asarray(bigram.simulate("sign_descent", np.ones(2), p, np.array([0.25]), 6))[0]
  np.testing.assert_allclose(bigram.sign_descent_relative_error(np.arange(7), p, 0.25), curve)
  assert curve[-1] == 0.0


def test_iterations_to_eps_against_a_python_scan(x64):
  rng = np.random.default_rng(0)
  curves = np.abs(rng.normal(size=(30, 12))) * np.linspace(1, 0.05, 12)
  curves[:, 0] = 1.0
  got = np.asarray(bigram.iterations_to_eps(curves, 0.3))
  for curve, value in zip(curves, got):
    above = [t for t, v in enumerate(curve) if v > 0.3]
    expected = above[-1] + 1
    assert value == (-1 if expected > len(curve) - 2 else expected)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_gd_bisection_is_the_first_hitting_time_of_the_closed_form(x64, alpha):
  pi, _ = bigram.zipf_bigram(400, alpha)
  t = int(bigram.gd_iterations(pi, 0.1, 10**6))
  before, at = np.asarray(bigram.gd_relative_error(np.array([t - 1, t]), pi, 1 / pi[0]))
  assert at <= 0.1 < before
  assert int(bigram.gd_iterations(pi, 0.1, t - 1)) == -1  # censored below its count


def test_scaling_record_tunes_sign_descent_over_its_grid(x64):
  relative = np.geomspace(0.1, 3, 7)
  rec = bigram.scaling_record(100, [1.0], 0.1, relative_steps=relative, sign_max_steps=200,
                              gd_max_steps=10**5, dtype=jnp.float64)
  _, p = bigram.zipf_bigram(100, 1.0)
  its = []
  for eta in bigram.sign_descent_step_grid(p, relative):  # NumPy sign descent, reach and stay
    w, curve = np.zeros_like(p), [1.0]
    for _ in range(200):
      w = w - eta * np.sign(w - p)
      curve.append(((w - p) ** 2).sum() / (p ** 2).sum())
    above = [t for t, v in enumerate(curve) if v > 0.1]
    its.append(above[-1] + 1 if above[-1] + 1 <= 199 else -1)
  best = min(v for v in its if v >= 0)
  assert rec["sign_descent"] == [best]
  assert rec["sign_descent_factor"] == [float(relative[its.index(best)])]


@pytest.mark.parametrize("exponent", [0.3, 0.5, 1.0])
def test_exponent_fit_recovers_synthetic_power_laws(exponent):
  d = np.geomspace(100, 1e5, 7)
  noise = np.random.default_rng(1).uniform(0.97, 1.03, d.shape)
  fit = loglog_slope(d, 3.0 * d ** exponent * noise)
  assert abs(fit["slope"] - exponent) < 0.02
  censored = list(3.0 * d ** exponent)
  censored[-1] = -1
  assert abs(loglog_slope(d, censored)["slope"] - exponent) < 1e-9


def test_bad_inputs_name_the_argument():
  with pytest.raises(ValueError, match="method"):
    bigram.reduced_problem("adam", np.ones(2), np.ones(2))
  with pytest.raises(ValueError, match="eps"):
    bigram.iterations_to_eps(np.ones((1, 3)), 0.0)
  with pytest.raises(ValueError, match="alpha"):
    bigram.zipf_bigram(3, -1.0)
