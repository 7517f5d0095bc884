"""Optimizers taken from optax, wired to the run-name grammar ``<name>[+m]``.

Each factory is ``(learning_rate, momentum) -> optax.GradientTransformation``
and calls optax itself (no hand copies); ``momentum`` is mapped to the
optimizer's own first-moment parameter (``+m`` in a run name gives 0.9,
otherwise 0). Weight decay is off everywhere, as for paper H's optimizers.

=================  ======================================  ==============================
run name           optax call                              ``momentum`` is
=================  ======================================  ==============================
``adagrad``        ``optax.adagrad`` (PyTorch defaults:    heavy-ball ``optax.trace`` on
                   accumulator 0, eps 1e-10; the authors'  the scaled step
                   release uses ``torch.optim.Adagrad``)
``adafactor``      ``optax.adafactor`` (optax defaults:    its ``momentum`` (None at 0)
                   factored, parameter-scaled, clip 1)
``lion``           ``optax.lion`` (b2 = 0.99)              ``b1`` (0: sign descent)
``signum``         ``optax.signum``                        ``beta`` (0: sign descent)
``muon``           ``optax.contrib.muon`` (nesterov)       ``beta`` and the fallback's b1
``schedule_free``  ``optax.contrib.schedule_free_adamw``   ``b1`` (interpolation; > 0)
``ademamix``       ``optax.contrib.ademamix`` (b3, alpha   ``b1`` (the fast EMA)
                   optax defaults 0.9999, 5)
``adopt``          ``optax.contrib.adopt``                 ``b1``
``sophia``         ``optax.contrib.sophia`` (Hutchinson    ``b1`` (the gradient EMA)
                   Hessian diagonal, gamma 0.01, clip 1,
                   every 10 steps, no weight decay)
``line_search_``   ``optax.sgd`` then                      refused (> 0): the release's
``sgd``            ``optax.scale_by_backtracking_          GDLineSearch has none
                   linesearch`` (paper H's release)
=================  ======================================  ==============================

Muon's matrices (`muon_dimension_numbers`): every 2-D leaf named ``kernel``
(dense layers, including the classifier ``head``) is orthogonalised with its
input axis 0 and output axis 1; every other leaf (biases, LayerNorm scales,
embedding tables, conv kernels) takes Muon's own Adam fallback.

Schedule-free (Defazio et al. 2024, arXiv 2405.15682) holds the gradient point
``y`` in ``params``; the averaged iterate ``x`` its authors evaluate is
``eval_params(opt_state, params)`` (``optax.contrib.schedule_free_eval_params``).
`imbalance_jax.train.make_train` records every loss (and returns the final
parameters) at ``x``, as its authors evaluate; the steps' gradients are at ``y``.

Sophia and the line search need more than ``(grads, state, params)`` in their
``update`` (optax's ``GradientTransformationExtraArgs``): `EXTRA_ARGS` names the
keywords each takes, and `imbalance_jax.optim.injectable` marks its factory
with them (``factory.extra_args``); `imbalance_jax.train.make_train` builds
them from the step's own batch, for these optimizers only: ``obj_fn`` /
``value_fn`` (parameters -> the step's objective), ``value`` (the objective at
``params``) and ``grad`` (the step's gradient). Schedule-free's factory is
marked ``factory.eval_params`` (`EVAL_PARAMS`) and the loop records its losses
at the averaged iterate.

Example:
  >>> import jax.numpy as jnp
  >>> opt = OPTIMIZERS["signum"](0.1, momentum=0.0)
  >>> params = {"w": jnp.array([1.0, -2.0])}
  >>> updates, _ = opt.update({"w": jnp.array([0.5, -3.0])}, opt.init(params), params)
  >>> updates["w"].tolist()
  [-0.10000000149011612, 0.10000000149011612]
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax
import optax.contrib

from imbalance_jax import _checks

ScalarOrSchedule = optax.ScalarOrSchedule


def _check(learning_rate, momentum) -> float:
  _checks.check_positive("learning_rate", learning_rate)
  return _checks.check_fraction("momentum", momentum)


def adagrad(learning_rate: ScalarOrSchedule, momentum: float = 0.0
            ) -> optax.GradientTransformation:
  """AdaGrad (Duchi et al. 2011) with PyTorch's defaults, as in paper H's release.

  ``optax.adagrad(lr, initial_accumulator_value=0, eps=1e-10)``: the step is
  ``lr g / sqrt(sum g^2 + eps)`` (optax puts eps under the root; PyTorch adds it
  after). ``momentum > 0`` adds heavy-ball momentum on that step.
  """
  momentum = _check(learning_rate, momentum)
  base = optax.adagrad(learning_rate, initial_accumulator_value=0.0, eps=1e-10)
  return optax.chain(base, optax.trace(decay=momentum)) if momentum else base


def adafactor(learning_rate: ScalarOrSchedule, momentum: float = 0.0
              ) -> optax.GradientTransformation:
  """Adafactor (Shazeer & Stern 2018, arXiv 1804.04235), optax's defaults."""
  momentum = _check(learning_rate, momentum)
  return optax.adafactor(learning_rate, momentum=momentum or None)


def lion(learning_rate: ScalarOrSchedule, momentum: float = 0.0) -> optax.GradientTransformation:
  """Lion (Chen et al. 2023, arXiv 2302.06675): ``b1 = momentum``, b2 = 0.99, no decay."""
  momentum = _check(learning_rate, momentum)
  return optax.lion(learning_rate, b1=momentum, b2=0.99, weight_decay=0.0)


def signum(learning_rate: ScalarOrSchedule, momentum: float = 0.0
           ) -> optax.GradientTransformation:
  """Signum (Bernstein et al. 2018, arXiv 1802.04434): sign of the EMA ``beta = momentum``."""
  momentum = _check(learning_rate, momentum)
  return optax.signum(learning_rate, beta=momentum)


def muon_dimension_numbers(params):
  """Muon's rule for matrices: 2-D leaves named ``kernel`` -> ``MuonDimensionNumbers(0, 1)``.

  Every other leaf maps to None (Muon's Adam fallback).

  Example:
    >>> import jax.numpy as jnp
    >>> dims = muon_dimension_numbers({"head": {"kernel": jnp.zeros((3, 2)),
    ...                                         "bias": jnp.zeros(2)},
    ...                                "embed": {"embedding": jnp.zeros((5, 3))}})
    >>> dims["head"]["bias"] is None, dims["embed"]["embedding"] is None
    (True, True)
    >>> dims["head"]["kernel"]
    MuonDimensionNumbers(reduction_axis=0, output_axis=1)
  """
  def rule(path, leaf):
    name = getattr(path[-1], "key", None) if path else None
    if name == "kernel" and jax.numpy.ndim(leaf) == 2:
      return optax.contrib.MuonDimensionNumbers(reduction_axis=0, output_axis=1)
    return None
  return jax.tree_util.tree_map_with_path(rule, params)


def muon(learning_rate: ScalarOrSchedule, momentum: float = 0.0) -> optax.GradientTransformation:
  """Muon (Jordan et al. 2024; Liu et al. 2025, arXiv 2502.16982) from ``optax.contrib``.

  Matrices by `muon_dimension_numbers`; ``beta = adam_b1 = momentum``, Nesterov
  as optax's default (with ``momentum = 0`` the matrix step is the
  Newton-Schulz orthogonalised gradient).
  """
  momentum = _check(learning_rate, momentum)
  return optax.contrib.muon(learning_rate, beta=momentum, adam_b1=momentum,
                            muon_weight_dimension_numbers=muon_dimension_numbers)


def schedule_free(learning_rate: ScalarOrSchedule, momentum: float = 0.0
                  ) -> optax.GradientTransformation:
  """Schedule-free AdamW (Defazio et al. 2024, arXiv 2405.15682), no weight decay.

  ``b1 = momentum`` interpolates between the averaged iterate and the base
  sequence; evaluate at `eval_params`. optax's averaging divides by ``b1``, so
  ``momentum = 0`` is refused: the run name is ``schedule_free+m``.
  """
  momentum = _check(learning_rate, momentum)
  if momentum <= 0:
    raise ValueError("momentum must be > 0 for schedule_free (its b1; run 'schedule_free+m')")
  return optax.contrib.schedule_free_adamw(learning_rate, b1=momentum, weight_decay=0.0)


def eval_params(opt_state, params):
  """Schedule-free's averaged iterate ``x`` from an optimizer state and ``params`` (= ``y``).

  Looks through ``optax.inject_hyperparams``' state; with ``b1 = 0`` it is
  ``params`` itself.
  """
  inner = getattr(opt_state, "inner_state", opt_state)
  return optax.contrib.schedule_free_eval_params(inner, params)


def ademamix(learning_rate: ScalarOrSchedule, momentum: float = 0.0
             ) -> optax.GradientTransformation:
  """AdEMAMix (Pagliardini et al. 2024, arXiv 2409.03137): fast EMA ``b1 = momentum``."""
  momentum = _check(learning_rate, momentum)
  return optax.contrib.ademamix(learning_rate, b1=momentum)


def adopt(learning_rate: ScalarOrSchedule, momentum: float = 0.0) -> optax.GradientTransformation:
  """ADOPT (Taniguchi et al. 2024, arXiv 2411.02853): ``b1 = momentum``, optax's clipping."""
  momentum = _check(learning_rate, momentum)
  return optax.contrib.adopt(learning_rate, b1=momentum)


def sophia(learning_rate: ScalarOrSchedule, momentum: float = 0.0, gamma: float = 0.01,
           update_interval: int = 10, seed: int = 0) -> optax.GradientTransformationExtraArgs:
  """Sophia-H (Liu et al. 2023, arXiv 2305.14342) from ``optax.contrib.sophia``, no decay.

  ``m_t = b1 m_{t-1} + (1 - b1) g_t`` (``b1 = momentum``, bias-corrected); every
  ``update_interval`` steps (from the first) the Hessian diagonal EMA
  ``h <- b2 h + (1 - b2) u * (H u)`` with Rademacher ``u`` (Hutchinson's
  estimator, optax's; the paper's Sophia-H, b2 = 0.99); the step is
  ``-lr clip(m_hat / max(gamma h, eps), 1)`` (the paper's Alg. 3, gamma its
  rho, eps 1e-8). The Hessian-vector product differentiates the step's
  objective twice: its ``update`` needs ``obj_fn`` (parameters -> the step's
  scalar objective), which the training loop passes (`EXTRA_ARGS`). ``seed``
  draws the probes (the same for every member of a sweep). The paper's
  Gauss-Newton-Bartlett estimator (Sophia-G, labels resampled from the model)
  is not in optax and not here.
  """
  momentum = _check(learning_rate, momentum)
  gamma = _checks.check_positive("gamma", gamma)
  update_interval = _checks.check_int("update_interval", update_interval, minimum=1)
  seed = _checks.check_int("seed", seed, minimum=0)
  estimator = optax.contrib.hutchinson_estimator_diag_hessian(
      jax.random.PRNGKey(seed))
  return optax.contrib.sophia(learning_rate, b1=momentum, weight_decay=0.0, gamma=gamma,
                             update_interval=update_interval,
                             hessian_diagonal_fn=estimator)


def line_search_sgd(learning_rate: ScalarOrSchedule, momentum: float = 0.0,
                    max_backtracking_steps: int = 100) -> optax.GradientTransformationExtraArgs:
  """GD with the Armijo backtracking line search of paper H's release (``LineSearchSGD``).

  The release's ``GDLineSearch`` (gamma 0.5, beta 0.9) keeps a step size
  ``s`` (``s_0 = learning_rate``, their ``max_lr``); each step it tries
  ``1.5 s``, multiplies by 0.9 until ``f(x - s g) <= f(x) - 0.5 s ||g||^2``, and
  steps. Here: ``optax.sgd(learning_rate)`` then
  ``optax.scale_by_backtracking_linesearch(slope_rtol=0.5, decrease_factor=0.9,
  increase_factor=1.5, max_learning_rate=inf)``, whose multiplier ``eta``
  (starting at 1) gives ``s = eta * learning_rate``: the same iteration. Its
  ``update`` needs ``value``, ``grad`` and ``value_fn`` (`EXTRA_ARGS`).
  Differences: the release searches without bound (here at most
  ``max_backtracking_steps`` reductions, then the smallest step is taken) and
  skips the step when ``||g|| < 1e-8`` (here the first trial is accepted).
  The release has no momentum: ``momentum > 0`` is refused.
  """
  momentum = _check(learning_rate, momentum)
  if momentum > 0:
    raise ValueError("momentum must be 0 for line_search_sgd (paper H's GDLineSearch has "
                     "none; run 'line_search_sgd')")
  steps = _checks.check_int("max_backtracking_steps", max_backtracking_steps, minimum=1)
  return optax.chain(
      optax.sgd(learning_rate),
      optax.scale_by_backtracking_linesearch(
          max_backtracking_steps=steps, slope_rtol=0.5, decrease_factor=0.9,
          increase_factor=1.5, max_learning_rate=float("inf")))


EXTRA_ARGS: dict[str, tuple[str, ...]] = {
    "sophia": ("obj_fn",),
    "line_search_sgd": ("value", "grad", "value_fn"),
}
"""Keywords an optimizer's ``update`` takes beyond ``(grads, state, params)``."""

EVAL_PARAMS: dict[str, Callable] = {"schedule_free": eval_params}
"""``(opt_state, params) -> the iterate to evaluate`` where it is not ``params``."""


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adagrad": adagrad,
    "adafactor": adafactor,
    "lion": lion,
    "signum": signum,
    "muon": muon,
    "schedule_free": schedule_free,
    "ademamix": ademamix,
    "adopt": adopt,
    "sophia": sophia,
    "line_search_sgd": line_search_sgd,
}
