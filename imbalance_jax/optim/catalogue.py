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
=================  ======================================  ==============================

Muon's matrices (`muon_dimension_numbers`): every 2-D leaf named ``kernel``
(dense layers, including the classifier ``head``) is orthogonalised with its
input axis 0 and output axis 1; every other leaf (biases, LayerNorm scales,
embedding tables, conv kernels) takes Muon's own Adam fallback.

Schedule-free (Defazio et al. 2024, arXiv 2405.15682) holds the gradient point
``y`` in ``params``; the averaged iterate ``x`` its authors evaluate is
``eval_params(opt_state, params)`` (``optax.contrib.schedule_free_eval_params``).
`imbalance_jax.train.make_train` records losses at ``params`` (= ``y``): apply
`eval_params` to the final state for the averaged iterate's loss.

Not here: Sophia (``optax.contrib.sophia``) needs ``obj_fn`` passed to its
``update`` for its Hutchinson Hessian estimate, and the training loop passes
only ``(grads, state, params)``.

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


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adagrad": adagrad,
    "adafactor": adafactor,
    "lion": lion,
    "signum": signum,
    "muon": muon,
    "schedule_free": schedule_free,
    "ademamix": ademamix,
    "adopt": adopt,
}
