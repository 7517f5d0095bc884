"""Recording block diagnostics along training runs, and summarising them.

The studies of ``experiments/curvature_linear.py``,
``experiments/curvature_cnn.py`` and ``experiments/transformer_ptb.py``: a
run is `imbalance_jax.train.make_train` with a curvature ``metrics_fn``
(recorded inside the scan), and a summary is a rank correlation between
per-block gradient norms and Hessian traces. Everything here returns data;
`imbalance_jax.plotting.curvature` draws it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import scipy.stats

from imbalance_jax import _checks, optim, train
from imbalance_jax.curvature.prop2 import prop2_training
from imbalance_jax.types import Dataset


def rank_correlations(grad_norm_C, trace_C) -> dict[str, float]:
  """Spearman and log-log Pearson correlation across blocks.

  Blocks with a non-finite or non-positive value are dropped (log axes).

  Returns:
    ``{"spearman": r_s, "loglog_pearson": r, "num_blocks": B}`` (NaN when
    fewer than 3 blocks remain).

  Example:
    >>> rank_correlations([1., 2., 3.], [10., 20., 30.])["spearman"]
    1.0
  """
  g, t = np.asarray(grad_norm_C, np.float64), np.asarray(trace_C, np.float64)
  if g.shape != t.shape or g.ndim != 1:
    raise ValueError(f"grad_norm_C and trace_C must be 1-d of equal shape, got {g.shape}, "
                     f"{t.shape}")
  keep = np.isfinite(g) & np.isfinite(t) & (g > 0) & (t > 0)
  if keep.sum() < 3:
    return {"spearman": float("nan"), "loglog_pearson": float("nan"),
            "num_blocks": int(keep.sum())}
  return {"spearman": float(scipy.stats.spearmanr(g[keep], t[keep]).statistic),
          "loglog_pearson": float(np.corrcoef(np.log(g[keep]), np.log(t[keep]))[0, 1]),
          "num_blocks": int(keep.sum())}


def record_run(model_apply: Callable, params: Any, data: Dataset, run_name: str,
               learning_rate: float, *, num_steps: int, log_every: int,
               metrics_fn: Callable, store: train.ResultStore | None = None,
               store_key: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], Any]:
  """Trains one run (``"adam+m"``, ``"gd"``, ...) recording ``metrics_fn``.

  Args:
    store: if given, the finished run (steps, history, final params) is saved
      under ``store_key`` (default ``run_name``) and a rerun loads it instead
      of training: an interrupted experiment resumes after its finished runs.

  Returns:
    ``(steps [T], history {name: [T, ...]} as numpy, final params)``.
  """
  spec = optim.parse_run(run_name)
  _checks.check_positive("learning_rate", learning_rate)
  key = store_key or run_name
  if store is not None and (saved := store.load(key)) is not None:
    return np.asarray(saved["steps"]), dict(saved["history"]), saved["params"]
  run = train.make_train(train.classification_objective(model_apply, spec.weighting),
                         optim.injectable(spec.optimizer, spec.momentum), num_steps=num_steps,
                         log_every=log_every, metrics_fn=metrics_fn)
  result = jax.jit(run)(params, data, learning_rate)
  history = jax.tree.map(np.asarray, result.history)
  final_params = jax.device_get(result.params)
  if store is not None:
    store.save(key, {"steps": np.asarray(run.history_steps), "history": history,
                     "params": final_params})
  return run.history_steps, history, final_params


def tune_learning_rate(model_apply: Callable, params: Any, data: Dataset, run_name: str, *,
                       num_steps: int, exponents, log: Callable[[str], None] = print,
                       store: train.ResultStore | None = None) -> float:
  """Step size chosen by the library's tuning (paper H App. A.4) on one seed.

  With ``store`` every sweep round is saved under ``tune/<run_name>`` and
  reloaded on a rerun (see `imbalance_jax.train.tune_sweep`).
  """
  spec = optim.parse_run(run_name)
  run = train.make_train(train.classification_objective(model_apply, spec.weighting),
                         optim.injectable(spec.optimizer, spec.momentum), num_steps=num_steps,
                         # Several segments, so members that diverge early are dropped.
                         log_every=train.checkpoint.default_segment_steps(num_steps, 1))
  add_seed = lambda tree: jax.tree.map(lambda v: v[None], tree)  # noqa: E731
  tuned = train.tune_sweep(train.Sweep(run), add_seed(params), add_seed(data),
                           exponents=tuple(float(e) for e in exponents), log=log, store=store,
                           store_key=f"tune/{run_name}")
  return tuned.selection.learning_rate


def select_step_sizes(model_apply: Callable, params: Any, data: Dataset, runs: dict[str, str],
                      fixed: dict[str, float], *, tune: bool, num_steps: int,
                      log: Callable[[str], None] = print,
                      store: train.ResultStore | None = None) -> dict[str, float]:
  """``fixed`` step sizes, or with ``tune`` those `tune_learning_rate` picks for ``runs``."""
  if not tune:
    return dict(fixed)
  return {key: tune_learning_rate(model_apply, params, data, run, num_steps=num_steps,
                                  exponents=train.SPARSE_EXPONENTS, log=log, store=store)
          for key, run in runs.items()}


def closest_steps(steps, wanted) -> list[int]:
  """Indices of the recorded ``steps`` closest to each ``wanted`` step (deduplicated)."""
  steps = np.asarray(steps)
  out = []
  for w in wanted:
    i = int(np.argmin(np.abs(steps - w)))
    if i not in out:
      out.append(i)
  return out


def correlations_over_time(grad_norm_TC, trace_TC) -> dict[str, np.ndarray]:
  """`rank_correlations` at every recorded step: ``{"spearman": [T], "loglog_pearson": [T]}``."""
  rows = [rank_correlations(g, t) for g, t in zip(np.asarray(grad_norm_TC), np.asarray(trace_TC))]
  return {k: np.array([r[k] for r in rows]) for k in ("spearman", "loglog_pearson")}


def prop2_comparison(x_ND, y_N, num_classes: int, class_prob_C, grad_norm_C, trace_C, *,
                     bias: bool = True) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Prop. 2 eq. (2) predictions (with the measured ``p_k``) against measurements.

  Returns:
    ``(stats, arrays)``: stats are the Spearman correlation of predicted vs
    measured traces and the median ``|log10(measured / predicted)|`` of the
    traces and of the ratio gradient norm / trace; arrays hold the predicted
    and measured ``hessian_trace_C`` and ``ratio_C``.
  """
  pred = prop2_training(x_ND, y_N, num_classes, np.asarray(class_prob_C), bias=bias)
  trace_pred, ratio_pred = np.asarray(pred["hessian_trace_C"]), np.asarray(pred["ratio_C"])
  trace, ratio = np.asarray(trace_C), np.asarray(grad_norm_C) / np.asarray(trace_C)
  log_err = lambda a, b: float(np.nanmedian(np.abs(np.log10(a / b))))  # noqa: E731
  stats = {"trace_spearman": rank_correlations(trace_pred, trace)["spearman"],
           "median_abs_log10_trace_error": log_err(trace, trace_pred),
           "median_abs_log10_ratio_error": log_err(ratio, ratio_pred),
           "median_trace_measured_over_predicted": float(np.nanmedian(trace / trace_pred))}
  return stats, {"trace_predicted": trace_pred, "trace_measured": trace,
                 "ratio_predicted": ratio_pred, "ratio_measured": ratio}
