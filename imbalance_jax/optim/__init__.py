"""optax GradientTransformations for the optimizers of paper H (App. A.6)."""

from imbalance_jax.optim.aliases import (OPTIMIZERS, adam, gd, injectable, normalized_gd,
                                         sign_descent)
from imbalance_jax.optim.runs import PAPER_RUNS, RunSpec, parse_run, parse_runs
from imbalance_jax.optim.transforms import normalize_by_global_norm

__all__ = ["OPTIMIZERS", "PAPER_RUNS", "RunSpec", "adam", "gd", "injectable",
           "normalize_by_global_norm", "normalized_gd", "parse_run", "parse_runs",
           "sign_descent"]
