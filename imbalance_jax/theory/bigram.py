r"""Kunstner & Bach (NeurIPS 2025, arXiv 2505.19227): GD and sign descent on a linear bigram model.

The model (their Sec. 2): one-hot inputs and outputs ``X, Y in {0,1}^{n x d}``
over a vocabulary of d tokens and the square loss
``L(W) = ||XW - Y||_F^2 / (2n)``. Up to a constant,

    L(W) = 1/2 sum_i pi_i ||W_i - pi_{.|i}||^2,

a diagonal quadratic in the ``d^2`` entries: entry ``(i, j)`` has curvature
``pi_i`` (the marginal frequency of token i) and, from ``W = 0``, distance
``pi_{j|i}`` (the conditional frequency) to the minimiser (their Prop. 2.2).
Under their Assumption 2.3 both follow Zipf's law with exponent ``alpha``:
``pi_k ~ k^-alpha`` and, for each row i, ``pi_{rho_i(k)|i} ~ k^-alpha`` for some
permutation ``rho_i``. Writing ``p`` for that (rank-ordered) conditional law,
the relative error ``r(t) = (L_t - L*) / (L_0 - L*)`` of the two methods is

* GD with step ``eta`` (the paper's ``eta = 1 / lambda_max = 1 / pi_1``):
  ``r(t) = sum_i pi_i (1 - eta pi_i)^{2t} / sum_i pi_i`` -- only the marginal
  matters (every row's ``sum_j pi_{j|i}^2`` is the same and cancels);
* sign descent with a constant step ``eta``: ``sign(pi_i (W_ij - p_j))`` does
  not depend on ``pi_i``, every row moves alike, and
  ``r(t) = sum_k (w_k(t) - p_k)^2 / sum_k p_k^2`` with ``w_k(t) = eta t`` until
  it first reaches ``p_k`` (after ``m_k = ceil(p_k / eta)`` steps) and then
  alternates between ``eta m_k`` and ``eta (m_k - 1)`` -- only the conditional
  law matters.

So the bigram's ``d^2`` coordinates reduce to ``d`` (`reduced_problem`);
`bigram_problem` keeps all ``d^2`` (with random permutations ``rho_i``) to test
that reduction.

Iterations to eps (our definition, an assumption: the paper's exact wording
could not be read): the first ``t`` after which ``r`` stays ``<= eps`` up to
the horizon. For GD (monotone ``r``) it is the first hitting time; sign
descent's ``r`` oscillates with period 2, and its first hitting time is
dimension-free on this problem (the tail coordinates sit exactly on 0 at every
even step), so "reach and stay" is the meaningful count.

Rates (exponent of d in the iterations to a fixed eps, large d), as we derive
them from the two closed forms; the paper's abstract states the ``alpha = 1``
cases (GD "almost linear" in d, sign descent ``sqrt(d)``):

* GD, ``eta = 1/pi_1``: ``alpha`` for ``alpha < 1``; ``1 - eps`` at
  ``alpha = 1`` (``r(t) ~ 1 - log t / log d``); 0 for ``alpha > 1``;
* sign descent, constant step tuned per d: 0 for ``alpha < 1/2`` and 1/2 for
  ``alpha > 1/2`` (the ``d`` oscillating coordinates cost ``d eta^2``, so
  ``eta ~ sqrt(sum_k p_k^2 / d)``).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import _checks
from imbalance_jax.data.theory_problems import zipf_distribution

METHODS = ("gd", "sign_descent")


def zipf_bigram(d: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
  """Marginal ``pi`` and rank-ordered conditional ``p`` of Assumption 2.3 (both Zipf(alpha)).

  Returns:
    ``(pi [d], p [d])``, float64, each decreasing and summing to 1.

  Example:
    >>> pi, p = zipf_bigram(3, 1.0)
    >>> pi.round(3).tolist(), bool(np.allclose(pi, p))
    ([0.545, 0.273, 0.182], True)
  """
  d = _checks.check_int("d", d, minimum=1)
  alpha = _checks.check_real("alpha", alpha, minimum=0.0)
  pi = zipf_distribution(d, alpha)
  return pi, pi.copy()


def bigram_problem(d: int, alpha: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """All ``d^2`` coordinates: curvature ``pi_i`` and target ``pi_{j|i} = p[rho_i^-1(j)]``.

  ``rho_i`` are random permutations (``numpy`` generator of ``seed``): the
  reduction of `reduced_problem` must not depend on them.

  Returns:
    ``(curvature [d*d], target [d*d])``, row-major over ``(i, j)``.

  Example:
    >>> curvature, target = bigram_problem(3, 1.0)
    >>> curvature.reshape(3, 3)[:, 0].round(3).tolist(), target.reshape(3, 3).sum(1).tolist()
    ([0.545, 0.273, 0.182], [1.0, 1.0, 1.0])
  """
  pi, p = zipf_bigram(d, alpha)
  rng = np.random.default_rng(seed)
  target = np.stack([p[rng.permutation(d)] for _ in range(d)])
  return np.repeat(pi, d), target.reshape(-1)


def reduced_problem(method: str, pi, p) -> tuple[np.ndarray, np.ndarray]:
  """The ``d`` coordinates whose relative error equals the bigram's for ``method``.

  GD: curvature ``pi``, target 1 (the rows' common ``sum_j p_j^2`` cancels).
  Sign descent: curvature 1, target ``p`` (the sign ignores ``pi_i``; the rows,
  weighted by ``pi_i`` summing to 1, all move alike).

  Example:
    >>> pi, p = zipf_bigram(2, 1.0)
    >>> [a.round(3).tolist() for a in reduced_problem("sign_descent", pi, p)]
    [[1.0, 1.0], [0.667, 0.333]]
  """
  method = _checks.check_choice("method", method, METHODS)
  pi, p = np.asarray(pi, np.float64), np.asarray(p, np.float64)
  if method == "gd":
    return pi, np.ones_like(pi)
  return np.ones_like(p), p


def gd_relative_error(t, pi, eta):
  """Closed form ``r(t) = sum_i pi_i (1 - eta pi_i)^{2t} / sum_i pi_i`` (jnp; t broadcasts).

  Example:
    >>> pi, _ = zipf_bigram(4, 1.0)
    >>> round(float(gd_relative_error(0, pi, 1 / pi[0])), 6), float(gd_relative_error(3, pi, 1 / pi[0])) < 0.5
    (1.0, True)
  """
  pi = jnp.asarray(pi)
  t = jnp.asarray(t, pi.dtype)[..., None]
  factor = jnp.abs(1.0 - eta * pi)
  decay = jnp.where(factor > 0, jnp.exp(2.0 * t * jnp.log(jnp.where(factor > 0, factor, 1.0))),
                    jnp.where(t > 0, 0.0, 1.0))
  return (pi * decay).sum(-1) / pi.sum()


def sign_descent_relative_error(t, p, eta):
  """Closed form of sign descent from 0 with constant step ``eta`` (jnp; t broadcasts).

  ``w_k(t) = eta t`` for ``t <= m_k = ceil(p_k / eta)``, then
  ``eta (m_k - ((t - m_k) mod 2))``; if ``p_k = eta m_k`` exactly the
  coordinate stops there (sign 0).

  Example:
    >>> p = np.array([0.5, 0.3, 0.2])
    >>> np.asarray(sign_descent_relative_error(np.arange(4), p, 0.25), np.float64).round(3).tolist()
    [1.0, 0.178, 0.211, 0.013]
  """
  p = jnp.asarray(p)
  t = jnp.asarray(t, p.dtype)[..., None]
  m = jnp.ceil(p / eta)
  exact = m * eta == p
  after = jnp.where(exact, m, m - jnp.mod(t - m, 2.0))
  w = eta * jnp.where(t <= m, t, after)
  return ((w - p) ** 2).sum(-1) / (p ** 2).sum()


def simulate(method: str, curvature, target, learning_rates, num_steps: int):
  """Relative-error curves of GD or sign descent from 0, one compiled program.

  ``x <- x - eta * g`` (GD) or ``x <- x - eta * sign(g)`` with
  ``g = curvature * (x - target)``, in ``lax.scan`` over steps, ``vmap`` over
  step sizes. Coordinates with curvature and target 0 are padding.

  Args:
    method: ``"gd"`` or ``"sign_descent"``.
    curvature, target: ``[..., N]`` (leading axes are batched, e.g. over alpha).
    learning_rates: ``[..., L]`` (same leading axes).
    num_steps: ``T``.

  Returns:
    ``[..., L, T + 1]`` relative errors ``f(x_t) / f(0)``, t = 0..T.

  Example:
    >>> p = np.array([0.5, 0.3, 0.2])
    >>> curves = simulate("sign_descent", np.ones(3), p, np.array([0.25]), 3)
    >>> np.asarray(curves, np.float64).round(3).tolist()
    [[1.0, 0.178, 0.211, 0.013]]
  """
  method = _checks.check_choice("method", method, METHODS)
  num_steps = _checks.check_int("num_steps", num_steps, minimum=0)
  curvature, target = jnp.asarray(curvature), jnp.asarray(target)
  rates = jnp.asarray(learning_rates, curvature.dtype)
  return _simulate(method, num_steps, curvature, target, rates)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _simulate(method, num_steps, curvature, target, rates):
  def one(curv, tgt, eta):
    f0 = 0.5 * (curv * tgt ** 2).sum()

    def step(x, _):
      g = curv * (x - tgt)
      x = x - eta * (g if method == "gd" else jnp.sign(g))
      return x, 0.5 * (curv * (x - tgt) ** 2).sum() / f0

    _, curve = jax.lax.scan(step, jnp.zeros_like(tgt), None, length=num_steps)
    return jnp.concatenate([jnp.ones((1,), curve.dtype), curve])

  fn = jax.vmap(one, in_axes=(None, None, 0))
  for _ in range(curvature.ndim - 1):
    fn = jax.vmap(fn)
  return fn(curvature, target, rates)


def iterations_to_eps(curves, eps: float):
  """First t after which the curve stays ``<= eps`` to the horizon T; -1 if censored.

  Censored: the curve is above eps at one of its last two points (``T - 1``,
  ``T``): sign descent's error settles into a period-2 oscillation, so staying
  below is only seen over at least one whole period.

  Args:
    curves: ``[..., T + 1]`` relative errors.

  Example:
    >>> curves = np.array([[1.0, 0.05, 0.2, 0.05, 0.01], [1.0, 0.5, 0.3, 0.2, 0.05]])
    >>> iterations_to_eps(curves, 0.1).tolist()  # the second is below only at t = T
    [3, -1]
  """
  _checks.check_positive("eps", eps)
  curves = jnp.asarray(curves)
  above = curves > eps
  length = curves.shape[-1]
  last = length - 1 - jnp.argmax(above[..., ::-1], axis=-1)  # last index above eps
  first_stay = jnp.where(above.any(-1), last + 1, 0)
  return jnp.where(first_stay > length - 2, -1, first_stay)


def gd_iterations(pi, eps: float, max_steps: int, eta=None):
  """GD's iterations to eps from the closed form, by bisection on t (exact, monotone r).

  ``eta`` defaults to the paper's ``1 / pi_1`` (``pi`` decreasing); any
  ``eta <= 1 / max(pi)`` keeps ``r`` nonincreasing. -1 if ``r(max_steps) > eps``.

  Example:
    >>> pi, _ = zipf_bigram(1000, 1.0)
    >>> t = int(gd_iterations(pi, 0.1, 10**6))
    >>> bool(gd_relative_error(t, pi, 1 / pi[0]) <= 0.1 < gd_relative_error(t - 1, pi, 1 / pi[0]))
    True
  """
  _checks.check_positive("eps", eps)
  max_steps = _checks.check_int("max_steps", max_steps, minimum=1)
  pi = jnp.asarray(pi)
  eta = 1.0 / pi.max() if eta is None else jnp.asarray(eta, pi.dtype)
  return _gd_bisect(max_steps, pi, jnp.asarray(eps, pi.dtype), eta)


@functools.partial(jax.jit, static_argnums=0)
def _gd_bisect(max_steps, pi, eps, eta):
  rounds = math.ceil(math.log2(max_steps)) + 1

  def body(_, bounds):  # invariant: r(lo) > eps >= r(hi)
    lo, hi = bounds
    mid = (lo + hi) // 2
    below = gd_relative_error(mid, pi, eta) <= eps
    return jnp.where(below, lo, mid), jnp.where(below, mid, hi)

  lo, hi = jax.lax.fori_loop(0, rounds, body, (jnp.int32(0), jnp.int32(max_steps)))
  del lo
  return jnp.where(gd_relative_error(max_steps, pi, eta) <= eps, hi, -1)


def sign_descent_step_grid(p, relative) -> np.ndarray:
  """Step sizes ``c * sqrt(sum_k p_k^2 / d)`` for the factors ``c`` in ``relative``.

  The grid is centred on the step that makes the ``d`` oscillating
  coordinates cost a fixed share of the initial loss; the tuning itself is
  over ``c``.

  Example:
    >>> sign_descent_step_grid(np.full(4, 0.25), [1.0, 2.0]).tolist()
    [0.25, 0.5]
  """
  p = np.asarray(p, np.float64)
  return np.asarray(relative, np.float64) * np.sqrt((p ** 2).sum() / p.shape[-1])


def predicted_exponent(method: str, alpha: float, eps: float = 0.0) -> float:
  """Large-d exponent of d in the iterations to eps (module docstring; ours at alpha != 1).

  Example:
    >>> [predicted_exponent("gd", a) for a in (0.5, 1.0, 2.0)], predicted_exponent("gd", 1.0, 0.1)
    ([0.5, 1.0, 0.0], 0.9)
    >>> [predicted_exponent("sign_descent", a) for a in (0.25, 1.0, 2.0)]
    [0.0, 0.5, 0.5]
  """
  method = _checks.check_choice("method", method, METHODS)
  if method == "gd":
    return alpha if alpha < 1 else (1.0 - eps if alpha == 1 else 0.0)
  return 0.0 if alpha < 0.5 else 0.5


def scaling_record(d: int, alphas, eps: float, *, relative_steps, sign_max_steps: int,
                   gd_max_steps: int, dtype=jnp.float32) -> dict:
  """Iterations to eps at vocabulary size d for every alpha: GD (closed form) and sign descent.

  GD uses the paper's step ``1 / pi_1`` and `gd_iterations` (``vmap`` over
  alpha). Sign descent is simulated (`simulate` on its `reduced_problem`,
  ``vmap`` over alpha and the steps of `sign_descent_step_grid`) and tuned:
  the fewest iterations over the grid, ties to the smaller step.

  Returns:
    ``{"d", "eps", "alphas", "gd": [A], "sign_descent": [A], "sign_descent_factor": [A],
    "sign_descent_at_edge": [A]}``: iteration counts (-1: censored at the cap), the best
    grid factor ``c`` (None if censored) and whether it is an end of the grid.

  Example:
    >>> rec = scaling_record(100, [1.0], 0.1, relative_steps=np.geomspace(0.1, 10, 9),
    ...                      sign_max_steps=200, gd_max_steps=10**5)
    >>> rec["gd"], rec["sign_descent"][0] < rec["gd"][0]
    ([27], True)
  """
  d = _checks.check_int("d", d, minimum=2)
  _checks.check_positive("eps", eps)
  alphas = [float(a) for a in alphas]
  relative = np.asarray(relative_steps, np.float64)
  pis, ps = zip(*(zipf_bigram(d, a) for a in alphas))
  pi_AD, p_AD = np.stack(pis), np.stack(ps)
  gd = jax.vmap(lambda pi: gd_iterations(pi, eps, gd_max_steps))(jnp.asarray(pi_AD, dtype))
  rates_AL = np.stack([sign_descent_step_grid(p, relative) for p in p_AD])
  curves = simulate("sign_descent", jnp.ones_like(jnp.asarray(p_AD, dtype)), jnp.asarray(p_AD, dtype),
                    jnp.asarray(rates_AL, dtype), sign_max_steps)
  its_AL = np.asarray(iterations_to_eps(curves, eps), np.int64)
  sign, factor, edge = [], [], []
  for its in its_AL:
    if (its < 0).all():
      sign.append(-1), factor.append(None), edge.append(False)
      continue
    best = int(np.argmin(np.where(its < 0, np.iinfo(np.int64).max, its)))
    sign.append(int(its[best])), factor.append(float(relative[best]))
    edge.append(best in (0, relative.shape[0] - 1))
  return {"d": d, "eps": float(eps), "alphas": alphas, "gd": [int(v) for v in np.asarray(gd)],
          "sign_descent": sign, "sign_descent_factor": factor, "sign_descent_at_edge": edge}
