"""Optimizers of paper H App. A.6: GD, normalized GD, sign descent, Adam.

GD, normalized GD and sign descent share one recipe: a direction ``d_t``
(g, g/||g||_2 or sign(g)), heavy-ball momentum ``m_t = beta m_{t-1} + d_t``
(``optax.trace``) and the step ``x_{t+1} = x_t - alpha m_t``. Adam is PyTorch's
Adam (``optax.adam`` computes the same update); ``momentum`` is its beta_1, so
``momentum=0`` is the paper's "Adam (-m)".

Sweeps pass the learning rate as a traced value through
``optax.inject_hyperparams`` (see `injectable`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import optax

from imbalance_jax import _checks
from imbalance_jax.optim import blocks, catalogue, research
from imbalance_jax.optim.transforms import normalize_by_global_norm

ScalarOrSchedule = optax.ScalarOrSchedule


def gd(learning_rate: ScalarOrSchedule, momentum: float = 0.0) -> optax.GradientTransformation:
  """Gradient descent with heavy-ball momentum: d_t = g_t.

  Example:
    >>> opt = gd(0.1, momentum=0.9)
  """
  return blocks.heavy_ball(optax.identity(), learning_rate, momentum)


def normalized_gd(learning_rate: ScalarOrSchedule,
                  momentum: float = 0.0) -> optax.GradientTransformation:
  """Normalized GD: d_t = g_t / ||g_t||_2, the norm over the whole parameter pytree."""
  return blocks.heavy_ball(normalize_by_global_norm(), learning_rate, momentum)


def sign_descent(learning_rate: ScalarOrSchedule,
                 momentum: float = 0.0) -> optax.GradientTransformation:
  """Sign descent: d_t = sign(g_t), elementwise."""
  return blocks.heavy_ball(optax.scale_by_sign(), learning_rate, momentum)


def adam(learning_rate: ScalarOrSchedule, momentum: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> optax.GradientTransformation:
  """PyTorch's Adam with beta_1 = ``momentum`` (0 gives the paper's "Adam -m")."""
  _checks.check_positive("learning_rate", learning_rate)
  momentum = _checks.check_fraction("momentum", momentum)
  b2 = _checks.check_fraction("b2", b2)
  _checks.check_positive("eps", eps)
  return optax.adam(learning_rate, b1=momentum, b2=b2, eps=eps)


PAPER_OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "gd": gd,
    "normalized_gd": normalized_gd,
    "sign_descent": sign_descent,
    "adam": adam,
}

# Every run name's optimizer: paper H's four, the optax catalogue
# (`imbalance_jax.optim.catalogue`), our research variants
# (`imbalance_jax.optim.research`, `imbalance_jax.optim.blocks`) and paper H's four in a
# random basis of the classifier (`blocks.rotated`).
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    **PAPER_OPTIMIZERS,
    **catalogue.OPTIMIZERS,
    **research.OPTIMIZERS,
    **{f"rotated_{name}": blocks.rotated(factory) for name, factory in PAPER_OPTIMIZERS.items()},
}


def injectable(name: str, momentum: float, **options) -> Callable[[ScalarOrSchedule],
                                                                  optax.GradientTransformation]:
  """``learning_rate -> optimizer`` with the rate held in the optimizer state.

  The returned factory wraps the alias in ``optax.inject_hyperparams``, so a
  traced (e.g. vmapped) learning rate lives in ``state.hyperparams`` and one
  compiled program serves every rate of a sweep. ``options`` are passed to the
  alias as static keywords (e.g. ``class_counts`` for ``"frequency_oracle"``).
  Beyond paper H's four (whose numeric defaults stay injected, as before), only
  the learning rate is injected. The factory carries ``extra_args`` (the
  keywords its ``update`` needs beyond ``(grads, state, params)``, e.g.
  ``("obj_fn",)`` for Sophia; ``()`` for most) and ``eval_params`` (None, or
  ``(opt_state, params) -> iterate to evaluate`` for schedule-free), which
  `imbalance_jax.train.make_train` reads.

  Example:
    >>> make = injectable("sign_descent", momentum=0.9)
    >>> opt = make(1e-3)
    >>> opt = injectable("frequency_oracle", 0.0, class_counts=[4, 1])(1e-3)
    >>> make.extra_args, injectable("sophia", 0.9).extra_args
    ((), ('obj_fn',))
  """
  _checks.check_choice("optimizer", name, OPTIMIZERS)
  momentum = _checks.check_fraction("momentum", momentum)
  alias = functools.partial(OPTIMIZERS[name], momentum=momentum, **options)
  alias(learning_rate=1.0)  # refuses bad options here rather than at the first init
  if name in PAPER_OPTIMIZERS and not options:
    static = ("momentum",)
  else:
    static = tuple(p.name for p in inspect.signature(alias).parameters.values()
                   if p.name != "learning_rate" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
  factory = optax.inject_hyperparams(alias, static_args=static)

  def make(learning_rate):
    return factory(learning_rate=learning_rate)

  # What `train.make_train` reads: the update's extra keywords and the evaluated iterate.
  make.extra_args = catalogue.EXTRA_ARGS.get(name, ())
  make.eval_params = catalogue.EVAL_PARAMS.get(name)
  return make
