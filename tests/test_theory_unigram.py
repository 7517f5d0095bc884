"""Paper S: unigram model derivatives, minimiser, smoothness, step-size theory, scaling sweeps."""

import itertools

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import optim
from imbalance_jax.data.theory_problems import zipf_distribution
from imbalance_jax.theory import simulate
from imbalance_jax.theory import unigram as ug
from imbalance_jax.theory import unigram_scaling as us


def random_point(d, seed=0, scale=3.0):
  return jax.random.normal(jax.random.key(seed), (d,), jnp.float64) * scale


def test_gradient_hessian_and_hvp_match_autodiff(x64):
  pi = jnp.asarray(zipf_distribution(12))
  theta = random_point(12)
  np.testing.assert_allclose(ug.unigram_grad(theta, pi), jax.grad(ug.unigram_loss)(theta, pi),
                             atol=1e-14)
  dense = jax.hessian(ug.unigram_loss)(theta, pi)
  np.testing.assert_allclose(ug.unigram_hessian(theta), dense, atol=1e-14)
  v = random_point(12, seed=1)
  np.testing.assert_allclose(ug.unigram_hvp(theta, v), dense @ v, atol=1e-13)


def test_minimizer_optimal_value_and_suboptimality(x64):
  pi = jnp.asarray(zipf_distribution(30, exponent=1.3))
  star = ug.unigram_minimizer(pi)
  np.testing.assert_allclose(ug.unigram_grad(star + 2.5, pi), 0.0, atol=1e-15)
  f_star = ug.unigram_optimal_value(pi)
  np.testing.assert_allclose(ug.unigram_loss(star - 7.0, pi), f_star, rtol=1e-14)
  theta = random_point(30)
  np.testing.assert_allclose(ug.unigram_suboptimality(theta, pi),
                             ug.unigram_loss(theta, pi) - f_star, rtol=1e-12)
  for _ in range(3):  # a minimiser beats perturbations of it (convexity)
    theta = star + random_point(30, seed=_ + 5, scale=0.1)
    assert ug.unigram_loss(theta, pi) > f_star


@pytest.mark.parametrize("d", [5, 40, 300])
def test_l2_smoothness_is_the_top_hessian_eigenvalue_within_bounds(x64, d):
  theta = random_point(d, scale=1.0 + np.log(d))
  exact = np.linalg.eigvalsh(np.asarray(ug.unigram_hessian(theta)))[-1]
  np.testing.assert_allclose(ug.l2_smoothness(theta), exact, rtol=1e-9)
  low, high = ug.l2_smoothness_bounds(theta)
  assert low - 1e-15 <= exact <= high + 1e-15


def test_linf_smoothness_is_max_over_cube_vertices(x64):
  theta = random_point(9, seed=2, scale=1.5)
  hessian = np.asarray(ug.unigram_hessian(theta))
  # v^T H v is convex, so its max over the cube is at a vertex: brute force.
  vertices = np.array(list(itertools.product([-1.0, 1.0], repeat=9)))
  brute = np.max(np.einsum("vi,ij,vj->v", vertices, hessian, vertices))
  np.testing.assert_allclose(ug.linf_smoothness(theta), brute, rtol=1e-12)
  prefix = ug.linf_smoothness(theta, exact_max_dim=0)  # the large-d method
  low, high = ug.linf_smoothness_bounds(theta)
  assert low <= prefix <= brute + 1e-15 <= high + 1e-15


def test_global_smoothness_constants_are_approached():
  theta = np.array([0.0, 0.0] + [-60.0] * 10)  # p ≈ (1/2, 1/2, 0, ...)
  assert abs(ug.l2_smoothness(theta) - 0.5) < 1e-12
  assert abs(ug.linf_smoothness(theta) - 1.0) < 1e-12


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(d=st.integers(2, 12), seed=st.integers(0, 10**6), scale=st.floats(0.0, 30.0))
def test_smoothness_never_exceeds_global_constants(d, seed, scale):
  theta = np.random.default_rng(seed).normal(size=d) * scale
  assert ug.l2_smoothness(theta) <= 0.5 + 1e-12
  assert ug.linf_smoothness(theta) <= 1.0 + 1e-12
  assert ug.l2_smoothness(theta) <= ug.linf_smoothness(theta) + 1e-12  # ||v||_2 <= 1 => in cube


@pytest.mark.parametrize("name, norm, d", [("sign_descent", "linf", 100),
                                           ("sign_descent", "linf", 3000),
                                           ("normalized_gd", "l2", 30)])
def test_theory_step_size_reaches_eps_within_the_bound(x64, name, norm, d):
  pi = zipf_distribution(d)
  eps = 0.05
  eta = ug.theory_step_size(pi, eps, norm)
  bound = ug.theory_iterations(pi, eps, norm)
  steps = int(np.ceil(bound))
  path = simulate.optimizer_path(ug.unigram_loss, jnp.zeros(d), jnp.asarray(pi),
                                 optim.injectable(name, 0.0), eta, steps,
                                 record_fn=lambda th, p: (ug.unigram_suboptimality(th, p), th))
  gaps, thetas = map(np.asarray, path)
  assert gaps[-1] <= eps and gaps.min() <= eps
  # The derivation assumes the distance to the minimisers never grows (beyond eta).
  distances = [ug.distance_to_minimizers(th, pi, norm) for th in thetas[::max(1, steps // 50)]]
  assert max(distances) <= max(distances[0], eta) + 1e-9


def test_theory_constants_scale_as_d_and_log_d_squared():
  d = np.array([10**3, 10**5])
  l2 = [ug.distance_to_minimizers(np.zeros(n), zipf_distribution(n)) ** 2 / n for n in d]
  np.testing.assert_allclose(l2, 1.0, rtol=0.05)  # D_2^2 ≈ d Var(log U) = d
  linf = [ug.distance_to_minimizers(np.zeros(n), zipf_distribution(n), "linf") for n in d]
  np.testing.assert_allclose(linf, np.log(d) / 2, rtol=1e-12)


def test_iterations_to_reach_matches_a_plain_run(x64):
  pi = zipf_distribution(200)
  rates = [0.03, 0.1, 0.3]
  reach = us.iterations_to_reach(pi, optim.injectable("sign_descent", 0.0), rates, 0.05, 400,
                                 segment_steps=20, dtype=jnp.float64)
  best = reach.best_index
  assert best is not None and reach.steps_run <= 400
  gaps = np.asarray(simulate.optimizer_path(ug.unigram_loss, jnp.zeros(200), jnp.asarray(pi),
                                            optim.sign_descent, rates[best], reach.steps_run,
                                            record_fn=ug.unigram_suboptimality))
  assert reach.iterations[best] == np.argmax(gaps <= 0.05)
  for rate, n in zip(rates, reach.iterations):  # every other rate: later or not yet
    if n >= 0:
      assert n >= reach.iterations[best]


def test_tuning_and_censoring(x64):
  pi = zipf_distribution(100)
  tuned = us.tune_iterations(pi, optim.injectable("sign_descent", 0.0), [-2.0, -1.0], 0.05, 500,
                             segment_steps=50, dtype=jnp.float64)
  assert not tuned.censored and tuned.exponent in (-1.5, -1.0, -0.5, 0.0, 1.0)
  hopeless = us.tune_iterations(pi, optim.injectable("gd", 0.0), [-6.0], 0.05, 100,
                                segment_steps=50, dtype=jnp.float64)
  assert hopeless.censored and hopeless.steps_run == 100 and hopeless.exponent is None


def test_scaling_study_records_and_censoring():
  records = us.scaling_study([20, 60], ["sign_descent@theory", "gd"], eps=0.05, max_steps=100,
                             max_work=1e9, exponents=[-4.0], segment_steps=50, log=lambda _: None)
  by = {(r["method"], r["d"]): r for r in records}
  for d in (20, 60):
    theory = by["sign_descent@theory", d]
    assert not theory["censored"] and theory["iterations"] <= theory["theory_bound"]
  assert by["gd", 20]["censored"] and by["gd", 20]["steps_run"] == 100
  assert by["gd", 60]["steps_run"] == 0 and "censored at d=20" in by["gd", 60]["reason"]
  slopes = us.scaling_slopes(records)
  assert slopes["gd"]["slope"] is None and slopes["gd"]["censored_sizes"] == [20, 60]
  assert slopes["sign_descent@theory"]["num_points"] == 2
  assert us.step_cap(10**6, 3000, 1e9, 50) == 1000 and us.step_cap(10, 3000, 1e9, 50) == 3000


def test_loglog_slope_skips_censored_points():
  d = np.array([1e2, 1e3, 1e4, 1e5])
  fit = us.loglog_slope(d, [3 * 100**0.5, 3 * 1000**0.5, None, -1])
  assert fit["num_points"] == 2 and abs(fit["slope"] - 0.5) < 1e-12
  assert us.loglog_slope(d, [None, None, 5, None])["slope"] is None


@pytest.mark.parametrize("call, name", [
    (lambda: ug.theory_step_size(zipf_distribution(5), 0.0, "l2"), "eps"),
    (lambda: ug.theory_step_size(zipf_distribution(5), 0.1, "l1"), "norm"),
    (lambda: ug.unigram_minimizer([0.5, 0.0]), "pi_D"),
    (lambda: us.iterations_to_reach(zipf_distribution(5), optim.gd, [0.1], 0.1, 75,
                                    segment_steps=50), "max_steps"),
    (lambda: us.iterations_to_reach(zipf_distribution(5), optim.gd, [-0.1], 0.1, 50),
     "learning_rates"),
])
def test_bad_arguments_are_named(call, name):
  with pytest.raises(ValueError, match=name):
    call()
