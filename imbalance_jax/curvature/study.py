"""Recording block diagnostics along training runs, and summarising them.

The studies of ``experiments/curvature_linear.py``,
``experiments/curvature_cnn.py`` and ``experiments/transformer_ptb.py``: a
run is the `imbalance_jax.experiment.train_builder` training of a run spec
with a curvature ``metrics_fn`` (recorded inside the scan), its step size
fixed or tuned by `imbalance_jax.experiment.tune_runs`, and a summary is a
rank correlation between per-block gradient norms and Hessian traces.
Everything here returns data; `imbalance_jax.plotting.curvature` draws it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import scipy.stats

from imbalance_jax import _checks, optim, train
from imbalance_jax.curvature.prop2 import prop2_training
from imbalance_jax.experiment.runs import Grid, train_builder, tune_runs
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


def _spec(run: optim.RunSpec | str) -> optim.RunSpec:
  return run if isinstance(run, optim.RunSpec) else optim.parse_run(run)


def record_run(model_apply: Callable, params: Any, data: Dataset, run: optim.RunSpec | str,
               learning_rate: float, *, num_steps: int, log_every: int,
               metrics_fn: Callable, store: train.ResultStore | None = None,
               store_key: str | None = None, batching: train.FullBatch | None = None
               ) -> tuple[np.ndarray, dict[str, np.ndarray], Any]:
  """Trains one run (a spec or a name: ``"adam+m"``, ``"gd"``, ...) recording ``metrics_fn``.

  Args:
    store: if given, the finished run (steps, history, final params) is saved
      under ``store_key`` (default the run's name) and a rerun loads it instead
      of training: an interrupted experiment resumes after its finished runs.
    batching: e.g. ``train.FullBatch(chunk_size)`` (default: one full-batch pass).

  Returns:
    ``(steps [T], history {name: [T, ...]} as numpy, final params)``.
  """
  spec = _spec(run)
  _checks.check_positive("learning_rate", learning_rate)
  key = store_key or spec.name
  if store is not None and (saved := store.load(key)) is not None:
    return np.asarray(saved["steps"]), dict(saved["history"]), saved["params"]
  training = train_builder(model_apply, num_steps=num_steps, log_every=log_every,
                           metrics_fn=metrics_fn, batching=batching)(spec)
  result = jax.jit(training)(params, data, learning_rate)
  history = jax.tree.map(np.asarray, result.history)
  final_params = jax.device_get(result.params)
  if store is not None:
    store.save(key, {"steps": np.asarray(training.history_steps), "history": history,
                     "params": final_params})
  return training.history_steps, history, final_params


@dataclasses.dataclass(frozen=True)
class RecordedRuns:
  """What `record_runs` returns, by the caller's run keys (e.g. ``"adam"``, ``"gd"``)."""

  steps: np.ndarray  # [T], shared by every run
  histories: dict[str, dict[str, np.ndarray]]
  final_params: dict[str, Any]
  wall_seconds: dict[str, float]  # a run restored on resume counts its loading


def record_runs(model_apply: Callable, params: Any, data: Dataset,
                runs: Mapping[str, optim.RunSpec | str], learning_rates: Mapping[str, float],
                metrics_fns: Mapping[str, Callable], *, num_steps: int, log_every: int,
                store: train.ResultStore | None = None,
                log: Callable[..., None] = print,
                batching: train.FullBatch | None = None) -> RecordedRuns:
  """`record_run` of every ``runs[key]`` at ``learning_rates[key]`` with ``metrics_fns[key]``,
  in order, each saved in ``store`` under ``run/<key>``."""
  steps, histories, final_params, wall = None, {}, {}, {}
  for key, run in runs.items():
    start = time.perf_counter()
    steps, histories[key], final_params[key] = record_run(
        model_apply, params, data, run, learning_rates[key], num_steps=num_steps,
        log_every=log_every, metrics_fn=metrics_fns[key], store=store, store_key=f"run/{key}",
        batching=batching)
    wall[key] = time.perf_counter() - start
    log("%s lr=%.3g: loss %.3f -> %.3f in %.1fs", _spec(run).name, learning_rates[key],
        histories[key]["loss"][0], histories[key]["loss"][-1], wall[key])
  return RecordedRuns(steps, histories, final_params, wall)


def _formatting(log: Callable[[str], None]) -> Callable[..., None]:
  """``log(text)`` as ``log(format, *args)`` (what `experiment.tune_runs` calls)."""
  return lambda text, *args: log(text % args if args else text)


def tune_learning_rates(model_apply: Callable, params: Any, data: Dataset,
                        runs: Sequence[optim.RunSpec | str], *, num_steps: int, exponents,
                        log: Callable[[str], None] = print,
                        store: train.ResultStore | None = None,
                        batching: train.FullBatch | None = None) -> dict[str, float]:
  """Step sizes chosen by the library's tuning (paper H App. A.4) on one seed, by run name.

  Each run is swept over ``10**exponents``, then half powers around the best
  (`imbalance_jax.experiment.tune_runs`); with ``store`` every sweep round is
  saved under ``tune/<run name>`` and reloaded on a rerun.
  """
  # Several segments, so members that diverge early are dropped.
  build = train_builder(model_apply, num_steps=num_steps,
                        log_every=train.driver.default_segment_steps(num_steps, 1),
                        batching=batching)
  add_seed = lambda tree: jax.tree.map(lambda v: v[None], tree)  # noqa: E731
  tuned = tune_runs([_spec(run) for run in runs], build, add_seed(params), add_seed(data),
                    grid=Grid(tuple(float(e) for e in exponents)), store=store,
                    key_prefix="tune/", log=_formatting(log))
  return tuned.learning_rates()


def tune_learning_rate(model_apply: Callable, params: Any, data: Dataset,
                       run: optim.RunSpec | str, *, num_steps: int, exponents,
                       log: Callable[[str], None] = print,
                       store: train.ResultStore | None = None) -> float:
  """`tune_learning_rates` of one run."""
  return tune_learning_rates(model_apply, params, data, [run], num_steps=num_steps,
                             exponents=exponents, log=log, store=store)[_spec(run).name]


def select_step_sizes(model_apply: Callable, params: Any, data: Dataset,
                      runs: Mapping[str, optim.RunSpec | str], fixed: Mapping[str, float], *,
                      tune: bool, num_steps: int, log: Callable[[str], None] = print,
                      store: train.ResultStore | None = None,
                      batching: train.FullBatch | None = None) -> dict[str, float]:
  """``fixed`` step sizes, or with ``tune`` those `tune_learning_rates` picks for ``runs``
  (over paper H's sparse grid 1e-6..1e1), by the keys of ``runs``."""
  if not tune:
    return dict(fixed)
  rates = tune_learning_rates(model_apply, params, data, list(runs.values()),
                              num_steps=num_steps, exponents=train.SPARSE_EXPONENTS, log=log,
                              store=store, batching=batching)
  return {key: rates[_spec(run).name] for key, run in runs.items()}


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


def record_segments(training: train.Train, params: Any, data: Any, learning_rate: float,
                    measures_fn: Callable[[Any], Mapping[str, Any]], *, num_segments: int,
                    key: jax.Array | None = None, store: train.ResultStore | None = None,
                    store_key: str | None = None) -> dict[str, Any]:
  """Trains ``num_segments`` segments of ``training`` and records ``measures_fn`` between them.

  ``training`` (a `train.Train` of ``k = training.num_steps`` steps) runs
  ``num_segments`` times from its own final state, so the run is the
  ``num_segments k``-step run, its ``log_every`` history the same (the state
  carries the step and the key). ``measures_fn(state.params)`` (e.g. jitted
  `imbalance_jax.curvature.spectral_curvature_metrics`) is evaluated at steps
  ``0, k, ..., num_segments k``: measures too costly to record at every
  ``log_every`` step (the follow-ups' spectra), as Fig 26 of
  ``experiments/transformer_ptb.py`` records its traces.

  Args:
    store: if given, the finished record is saved under ``store_key`` and a
      rerun loads it instead of training.

  Returns:
    ``{"steps": [T] logged steps, "history": {name: [T, ...]}, "record_steps":
    [R], "measures": {name: [R, ...]}}`` (numpy; ``R = num_segments + 1``).
  """
  num_segments = _checks.check_int("num_segments", num_segments, minimum=1)
  _checks.check_positive("learning_rate", learning_rate)
  if store is not None and (saved := store.load(store_key)) is not None:
    return jax.tree.map(np.asarray, saved)
  state = jax.jit(training.init)(params, data, learning_rate, key)
  segment = jax.jit(lambda s: training.run(s, data))
  records, histories = [measures_fn(state.params)], []
  for _ in range(num_segments):
    state, history = segment(state)
    histories.append(history)
    records.append(measures_fn(state.params))
  _, final = jax.jit(training.finish)(state, data)
  history = jax.tree.map(lambda *h: np.concatenate([np.asarray(x) for x in h]), *histories,
                         jax.tree.map(lambda f: np.asarray(f)[None], final))
  out = {"steps": np.arange(0, num_segments * training.num_steps + 1, training.log_every),
         "history": history,
         "record_steps": np.arange(num_segments + 1) * training.num_steps,
         "measures": jax.tree.map(lambda *r: np.stack([np.asarray(x) for x in r]), *records)}
  if store is not None:
    store.save(store_key, out)
  return out


def spectral_summary(measures: Mapping[str, Any]) -> dict[str, list[float]]:
  """Per record, the scalars of `imbalance_jax.curvature.spectral_curvature_metrics` records.

  Args:
    measures: ``{name: [R, ...]}`` (the ``"measures"`` of `record_segments`).

  Returns:
    ``heterogeneity`` (Zhang et al.), ``offdiag_share`` (Dong et al.),
    ``one_one_ratio_median`` (median over blocks of Xie et al.'s ``||H_bb||_{1,1}
    / (n_b ||H_bb||_2)``), ``top_eigenvalue`` (largest Lanczos eigenvalue over
    blocks) and ``loss``, each ``[R]`` as lists.

  Example:
    >>> spectral_summary({"heterogeneity": np.array([0.5]), "offdiag_share": np.array([0.1]),
    ...                   "one_one_ratio_B": np.array([[0.2, 0.4, 0.9]]),
    ...                   "top_eigs_BK": np.array([[[3.0], [7.0], [1.0]]]),
    ...                   "loss": np.array([2.0])})["one_one_ratio_median"]
    [0.4]
  """
  as_list = lambda a: np.asarray(a, np.float64).tolist()  # noqa: E731
  return {"heterogeneity": as_list(measures["heterogeneity"]),
          "offdiag_share": as_list(measures["offdiag_share"]),
          "one_one_ratio_median": as_list(np.median(measures["one_one_ratio_B"], axis=1)),
          "top_eigenvalue": as_list(np.max(measures["top_eigs_BK"][..., 0], axis=1)),
          "loss": as_list(measures["loss"])}
