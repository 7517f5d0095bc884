"""Paper H Sec. 3.1: weighted quadratic, closed forms vs optax simulations."""

import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import optim
from imbalance_jax.data.theory_problems import zipf_distribution
from imbalance_jax.theory import quadratic as q

PI = zipf_distribution(8)


def test_gd_closed_form_matches_simulation(x64):
  path = q.simulate_quadratic(optim.gd, PI, 1.7, 300)
  np.testing.assert_allclose(path, q.gd_quadratic_path(np.arange(301), PI, 1.7), rtol=1e-12,
                             atol=1e-300)


def test_sign_descent_closed_form_matches_simulation(x64):
  w0 = np.array([1.0, -0.73, 0.05, 0.0, 2.2, -1.1, 0.3, 0.9])
  path = q.simulate_quadratic(optim.sign_descent, PI, 0.07, 60, w0=w0)
  np.testing.assert_allclose(path, q.sign_descent_quadratic_path(np.arange(61), 0.07, w0),
                             atol=1e-12)


def test_sign_and_adam_move_every_coordinate_alike_gd_does_not(x64):
  # Sign descent and (epsilon-free) Adam are invariant to rescaling a coordinate's
  # gradient, so with w(0) = 1 every coordinate follows the same path (Fig. 6).
  pi = zipf_distribution(100)
  sign = q.simulate_quadratic(optim.sign_descent, pi, 0.01, 150)
  adam = q.simulate_quadratic(lambda lr: optim.adam(lr, momentum=0.9, eps=1e-30), pi, 0.01, 150)
  gd = q.simulate_quadratic(optim.gd, pi, 1.0, 150)
  for path in (sign, adam):
    np.testing.assert_allclose(path, path[:, :1] * jnp.ones_like(path), rtol=1e-10)
  assert np.max(np.abs(gd[-1] - gd[-1, 0])) > 0.5
  # Rarest coordinate: GD is still near 1 while sign descent is at 1 - 1.5.
  assert gd[-1, -1] > 0.7 and abs(sign[100, -1]) < 1e-9


@pytest.mark.parametrize("call, name", [
    (lambda: q.gd_quadratic_path([0, 1], [0.5, 0.0], 1.0), "pi_C"),
    (lambda: q.gd_quadratic_path([0, 1], PI, -1.0), "learning_rate"),
    (lambda: q.gd_quadratic_path([0.5], PI, 1.0), "steps"),
    (lambda: q.sign_descent_quadratic_path([-1], 0.1), "steps"),
    (lambda: q.sign_descent_quadratic_path([1], 0.0), "learning_rate"),
])
def test_bad_arguments_are_named(call, name):
  with pytest.raises(ValueError, match=name):
    call()
