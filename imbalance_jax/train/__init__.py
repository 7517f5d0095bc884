"""Training: a pure scanned run, seeds x step-size sweeps, step-size selection."""

from imbalance_jax.train.batching import FullBatch, MiniBatch
from imbalance_jax.train.checkpoint import ResultStore
from imbalance_jax.train.driver import SweepResult, run_sweep
from imbalance_jax.train.loop import Train, TrainResult, TrainState, make_train
from imbalance_jax.train.objective import classification_objective
from imbalance_jax.train.selection import (SPARSE_EXPONENTS, LossStats, Selection, select,
                                           tune)
from imbalance_jax.train.sweep import Sweep, check_learning_rates
from imbalance_jax.train.tuning import TunedSweep, tune_sweep

__all__ = ["FullBatch", "LossStats", "MiniBatch", "ResultStore", "SPARSE_EXPONENTS", "Selection",
           "Sweep", "SweepResult", "Train", "TrainResult", "TrainState", "TunedSweep",
           "check_learning_rates", "classification_objective", "make_train", "run_sweep",
           "select", "tune", "tune_sweep"]
