"""Paper R: STEP label spectrum, Saxe dynamics, reweighting, learning times."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import optim
from imbalance_jax.data.theory_problems import simplex_encoded_labels, step_imbalanced_labels
from imbalance_jax.theory import simulate
from imbalance_jax.theory import ufm_dynamics as ud
from imbalance_jax.theory import ufm_spectrum as us


def rel_err(a, b):
  return float(np.max(np.abs(np.asarray(a) / np.asarray(b) - 1.0)))


def crossing_time(times, values, level=0.5):
  """First time a sampled increasing curve crosses ``level`` (linear interpolation)."""
  i = int(np.argmax(values >= level))
  return times[i - 1] + (level - values[i - 1]) * (times[i] - times[i - 1]) / (
      values[i] - values[i - 1])


@pytest.mark.parametrize("k, R, n_min", [(4, 10, 1), (6, 3, 2), (2, 5, 1), (10, 1000, 1),
                                         (8, 1, 3)])
def test_closed_form_svd_matches_numpy(k, R, n_min):
  z = simplex_encoded_labels(step_imbalanced_labels(k, R, n_min), k)
  u, s, v, groups = us.step_label_svd(k, R, n_min)
  np.testing.assert_allclose(u @ np.diag(s) @ v.T, z, atol=1e-12)
  np.testing.assert_allclose(u.T @ u, np.eye(k - 1), atol=1e-12)
  np.testing.assert_allclose(v.T @ v, np.eye(k - 1), atol=1e-12)
  numpy_s = np.linalg.svd(z, compute_uv=False)
  np.testing.assert_allclose(np.sort(s), np.sort(numpy_s[:k - 1]), rtol=1e-12)
  assert numpy_s[k - 1:].max(initial=0.0) < 1e-12  # rank k - 1
  spectrum = us.step_label_spectrum(k, R, n_min)
  for group, (sigma, multiplicity) in spectrum.items():
    assert np.sum(groups == group) == multiplicity
    np.testing.assert_allclose(s[groups == group], sigma, rtol=1e-12)
  if R > 1:  # distinct singular values: each group's left subspace is unique
    for group in us.GROUPS:
      columns = u[:, groups == group]
      zzt_projected = z @ z.T @ columns
      np.testing.assert_allclose(zzt_projected, columns * spectrum[group][0] ** 2, atol=1e-9)


def test_sample_weights_are_paper_r_eq12():
  omega = us.step_sample_weights(4, 10)
  expected = np.sqrt(11.0) * np.r_[np.full(20, 1 / np.sqrt(10.0)), np.ones(2)]
  np.testing.assert_allclose(omega, expected, rtol=1e-12)
  np.testing.assert_allclose(us.step_sample_weights(6, 3, n_min=4, gamma=0.0), 1.0)


@pytest.mark.parametrize("reweight, gamma", [(False, 0.5), (True, 0.5), (True, 1.0)])
@pytest.mark.parametrize("R, n_min", [(10, 1), (7, 3)])
def test_growth_rates_are_singular_values_of_z_omega(R, n_min, reweight, gamma):
  y = step_imbalanced_labels(6, R, n_min)
  z = simplex_encoded_labels(y, 6)
  omega = us.step_sample_weights(6, R, n_min, gamma) if reweight else np.ones(y.size)
  numeric = np.linalg.svd(z * omega, compute_uv=False)[:5]
  rates = ud.ufm_growth_rates(R, reweight, n_min=n_min, gamma=gamma)
  expected = [rates["maj_maj"]] * 2 + [rates["maj_min"]] + [rates["min_min"]] * 2
  np.testing.assert_allclose(np.sort(numeric), np.sort(expected), rtol=1e-12)


@pytest.mark.parametrize("R, reweight", [(1, False), (10, False), (10, True), (200, True),
                                         (1, True)])
def test_mode_paths_match_gradient_flow_from_svd_init(x64, R, reweight):
  problem = ud.ufm_problem(4, R, reweight=reweight, dtype=jnp.float64)
  delta = 4.0
  times = np.linspace(0.0, 3.0 * delta / min(ud.ufm_growth_rates(R, reweight).values()), 40)
  flow = simulate.gradient_flow_path(ud.ufm_loss, ud.svd_aligned_init(problem, 5, delta), problem,
                                     times, record_fn=ud.mode_strengths, atol=1e-14)
  paths = ud.ufm_mode_paths(times, R, delta, reweight)
  expected = np.stack([paths[g] for g in problem.groups_M], axis=1)
  assert rel_err(flow, expected) < 1e-6
  if reweight and R > 1:
    # Paper R's Thm. C.2 (Saxe at rate sigma * v^T Omega v) is not the maj-min dynamics.
    sigma = np.sqrt((R + 1) / 2)
    printed = ud.saxe_strength(times, sigma, delta, (np.sqrt(R) + 1) / np.sqrt(2))
    assert rel_err(printed, flow[:, 1]) > 0.05


def test_small_step_gd_matches_closed_form(x64):
  problem = ud.ufm_problem(4, 10, reweight=True, dtype=jnp.float64)
  delta, horizon = 3.0, 4.0
  params = ud.svd_aligned_init(problem, 4, delta)
  runs = {lr: np.asarray(ud.simulate_ufm(problem, params, optim.gd, lr, int(round(horizon / lr)),
                                         log_every=int(round(0.2 / lr))))
          for lr in (2e-3, 1e-3)}
  times = np.arange(0.0, horizon + 1e-9, 0.2)
  paths = ud.ufm_mode_paths(times, 10, delta, True)
  expected = np.stack([paths[g] for g in problem.groups_M], axis=1)
  assert rel_err(runs[1e-3], expected) < 2e-2  # GD is first order in the step...
  assert rel_err(2 * runs[1e-3] - runs[2e-3], expected) < 1e-3  # ...Richardson removes it.


@pytest.mark.parametrize("R, reweight", [(10, False), (10, True), (200, True)])
def test_half_times_match_gradient_flow(x64, R, reweight):
  delta = 5.0
  problem = ud.ufm_problem(4, R, reweight=reweight, dtype=jnp.float64)
  half = ud.ufm_half_times(R, delta, reweight)
  times = np.linspace(0.0, 1.2 * max(half.values()), 3000)
  flow = simulate.gradient_flow_path(ud.ufm_loss, ud.svd_aligned_init(problem, 3, delta), problem,
                                     times, record_fn=ud.mode_strengths, atol=1e-15)
  for m, group in enumerate(problem.groups_M):
    assert abs(crossing_time(times, flow[:, m]) / half[group] - 1) < 1e-4


@pytest.mark.parametrize("R, reweight", [(10, False), (100, True)])
def test_vanishing_init_learning_times_from_random_init(x64, R, reweight):
  """t_m(delta) = delta T_m + const + o(1): the slope in delta is the learning time T_m."""
  problem = ud.ufm_problem(4, R, reweight=reweight, dtype=jnp.float64)
  limits = ud.ufm_learning_times(R, reweight)
  crossings = []
  for delta in (6.0, 12.0):  # same random direction, two scales
    params = ud.random_init(jax.random.key(3), problem, 6, delta)
    times = np.linspace(0.0, delta * max(limits.values()) + 6.0, 2000)
    flow = simulate.gradient_flow_path(ud.ufm_loss, params, problem, times,
                                       record_fn=ud.mode_strengths, atol=1e-13 * np.exp(-delta))
    crossings.append([crossing_time(times, flow[:, m]) for m in range(3)])
  slopes = (np.array(crossings[1]) - np.array(crossings[0])) / 6.0
  expected = np.array([limits[g] for g in problem.groups_M])
  assert rel_err(slopes, expected) < 1e-3
  if reweight:  # paper R's Cor. C.3 maj-min time sqrt(2) / (sqrt(R) + 1) is rejected
    assert abs(slopes[1] / ud.corollary_c3_times(R, True)["maj_min"] - 1) > 0.05


def test_learning_times_and_spread_closed_forms():
  R = np.array([1.0, 4.0, 100.0])
  erm = ud.ufm_learning_times(R)
  np.testing.assert_allclose(erm["maj_maj"], 1 / np.sqrt(R))
  np.testing.assert_allclose(erm["maj_min"], np.sqrt(2 / (R + 1)))
  np.testing.assert_allclose(ud.time_spread(R), np.sqrt(R) - 1, atol=1e-15)
  rw = ud.ufm_learning_times(R, reweight=True)
  for group in us.GROUPS:
    np.testing.assert_allclose(rw[group], 1 / np.sqrt(R + 1))
  np.testing.assert_allclose(ud.time_spread(R, reweight=True), 0.0, atol=1e-15)
  printed = ud.corollary_c3_times(R, reweight=True)
  np.testing.assert_allclose(printed["maj_min"], np.sqrt(2) / (np.sqrt(R) + 1))


def test_saxe_forms_survive_huge_delta():
  # e^{2 delta} overflows for delta > ~354; the log form must not.
  half = ud.saxe_half_time(3.0, 1000.0, 3.0)
  np.testing.assert_allclose(half, (2000.0 + np.log(3.0)) / 6.0, rtol=1e-12)
  np.testing.assert_allclose(ud.saxe_strength([0.0, half, 2 * half], 3.0, 1000.0, 3.0),
                             [0.0, 0.5, 1.0], atol=1e-12)


def test_finite_delta_spread_tends_to_the_limit():
  # Reweighted: all groups share the rate sqrt(R + 1), so the spread is O(1) / delta.
  spreads = np.array([ud.time_spread(50.0, True, delta=d) for d in (16.0, 32.0, 64.0)])
  np.testing.assert_allclose(spreads[:-1] / spreads[1:], 2.0, rtol=0.02)
  erm = [ud.time_spread(50.0, delta=d) for d in (16.0, 256.0)]
  assert abs(erm[1] / (np.sqrt(50.0) - 1) - 1) < abs(erm[0] / (np.sqrt(50.0) - 1) - 1) < 0.1


@pytest.mark.parametrize("call, name", [
    (lambda: ud.ufm_learning_times(0.5), "R"),
    (lambda: ud.ufm_learning_times(-2.0), "R"),
    (lambda: ud.ufm_learning_times(4.0, True, n_min=0), "n_min"),
    (lambda: ud.ufm_learning_times(4.0, True, gamma=-1.0), "gamma"),
    (lambda: ud.time_spread(np.nan), "R"),
    (lambda: ud.maj_min_half_time(4.0, -1.0), "delta"),
    (lambda: ud.svd_aligned_init(ud.ufm_problem(4, 2), 2, 1.0), "hidden_dim"),
    (lambda: us.step_sample_weights(4, 2, gamma=-0.5), "gamma"),
])
def test_bad_arguments_are_named(call, name):
  with pytest.raises(ValueError, match=name):
    call()
