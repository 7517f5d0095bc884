r"""Transformers on PTB / TinyPTB / WikiText-103 (paper H Figs 17, 18, 20, 22, 26, 1, 10).

One binary, one preset per figure (experiments/configs/transformer_ptb.py):
every run of ``--config.runs`` trains the whole transformer (post-LN, causal,
dropout from an explicit key) with its step size tuned by the library's rule
(paper H App. A.4; or ``--config.learning_rate``), full batch (Figs 18, 20:
TinyPTB) or on mini-batches of ``batch_size`` windows (Figs 17, 22, 1, 10),
recording the training (and with ``valid=True`` validation) loss of every
~10% frequency group. ``curvature=True`` (Fig 26) then reruns each run's
selected step size on the first seed in segments of ``curvature_every`` steps
and records, between segments, the per-class gradient norm of the classifier
``head`` and Hutchinson estimates of its Hessian block traces on the first
``curvature_windows`` training windows (evaluation mode, no dropout).

Writes config.json, dataset.json, summary.json (per run: learning_rate,
final_loss, final_group_losses (group 0 = most frequent), initial_group_losses,
and with validation final_valid_loss / final_valid_group_losses; with
curvature a "curvature" entry per run with the Spearman correlation of
gradient norm and trace at each record), metrics.jsonl, curvature.npz and
figures into --workdir. A rerun with the same --workdir resumes after the
finished sweep rounds and curvature runs.

  python -m experiments.transformer_ptb --workdir /tmp/fig18                # CPU scale
  python -m experiments.transformer_ptb --workdir /tmp/fig17 --config.preset=quick_fig17
  python -m experiments.transformer_ptb --workdir /tmp/fig17p --config.preset=fig17  # GPU
"""

import os
import time

import jax
import numpy as np
from absl import app, logging

from experiments import language_data
from experiments.configs import transformer_ptb as config_lib
from imbalance_jax import (cli, data, metrics, models, optim, plotting, reporting, results,
                           train)
from imbalance_jax.curvature import study

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def make_run(model, spec, cfg, groups, num_steps=None, log_every=None) -> train.Train:
  """The `train.Train` of one run spec under ``cfg``'s batching."""
  if cfg.batch_size:
    batching = train.MiniBatch(cfg.batch_size, cfg.accumulation_steps,
                               eval_chunk_size=cfg.chunk_size or None)
  else:
    batching = train.FullBatch(cfg.chunk_size or None)
  return train.make_train(
      train.classification_objective(model.apply, spec.weighting, stateful=True),
      optim.injectable(spec.optimizer, spec.momentum),
      num_steps=num_steps or cfg.num_steps, log_every=log_every or cfg.log_every,
      metrics_fn=metrics.classification_metrics(groups), stateful=True, batching=batching)


def curvature_run(model, variables, data_splits, spec, cfg, groups, learning_rate, key,
                  diagnostics, store: train.ResultStore, name: str):
  """Trains one member in segments and records ``diagnostics`` between them (resumable)."""
  if (saved := store.load(f"curvature/{name}")) is not None:
    return {k: np.asarray(v) for k, v in saved.items()}
  every = cfg.curvature_every or cfg.log_every
  log_every = every if cfg.log_every > every or every % cfg.log_every else cfg.log_every
  run = make_run(model, spec, cfg, groups, num_steps=every, log_every=log_every)
  state = jax.jit(run.init)(variables, data_splits, learning_rate, key)
  segment = jax.jit(lambda s: run.run(s, data_splits, every)[0])
  records = [diagnostics(state.params)]
  for _ in range(cfg.num_steps // every):
    state = segment(state)
    records.append(diagnostics(state.params))
  out = {k: np.stack([np.asarray(r[k]) for r in records]) for k in records[0]}
  out["steps"] = np.arange(len(records)) * every
  store.save(f"curvature/{name}", out)
  return out


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  specs = config_lib.parse_runs(config.runs)
  start = time.perf_counter()
  splits = ("train", "valid") if config.valid else ("train",)
  windows, info = language_data.load_windows(
      config.corpus, config.corpus_dir, config.seq_len, num_windows=config.num_windows,
      compact=config.compact_vocab, splits=splits, tokenizer=config.tokenizer,
      vocab_size=config.subword_vocab_size)
  train_windows = windows["train"]
  num_classes = train_windows.num_classes
  model = models.make_transformer(config.model, num_classes, **config_lib.model_fields(config))
  init_key, run_key, probe_key = jax.random.split(jax.random.key(config.seed), 3)
  params_S = jax.vmap(lambda k: model.init(k, train_windows.x[:1]))(
      jax.random.split(init_key, config.num_seeds))
  keys_S = jax.random.split(run_key, config.num_seeds)
  counts = np.asarray(train_windows.class_counts)
  groups = data.frequency_groups(counts, config.num_groups)
  cost = config_lib.step_cost(config, num_classes, train_windows.num_examples)
  logging.info("%s (%s): %s windows x %d tokens, %d classes (tokenizer %d), model %s %s, "
               "%.3g FLOPs/token, %d groups, %d seeds; data in %.1fs", config.corpus,
               config.tokenizer, {s: w.num_examples for s, w in windows.items()},
               config.seq_len, num_classes, info["tokenizer_vocab_size"], config.model,
               config_lib.model_fields(config), cost["flops_per_token"], groups.max() + 1,
               config.num_seeds, time.perf_counter() - start)
  results.write_json(os.path.join(workdir, "dataset.json"), {
      **info, **cost, "num_windows": {s: w.num_examples for s, w in windows.items()},
      "seq_len": config.seq_len, "class_counts": counts, "class_to_group": groups,
      "group_share": np.bincount(groups, weights=counts) / counts.sum(),
      "classes_per_group": np.bincount(groups)})

  store = train.ResultStore(os.path.join(workdir, "checkpoints"))
  grid = dict(exponents=config_lib.parse_exponents(config.exponents),
              refine_rounds=config.refine_rounds)
  if config.learning_rate > 0:
    grid = dict(exponents=(float(np.log10(config.learning_rate)),), refine_rounds=0)
  data_splits = dict(windows)
  tuned = {}
  for spec in specs:
    run = make_run(model, spec, config, groups)
    tuned[spec.name] = train.tune_sweep(
        train.Sweep(run, data_per_seed=False), params_S, data_splits, keys_S=keys_S, **grid,
        threshold=config.divergence_threshold, store=store, store_key=spec.name,
        log=logging.info)

  steps = run.history_steps
  summary = {}
  for name, t in tuned.items():
    entry = reporting.summarize_run(t)
    history = t.best_history
    entry["initial_group_losses"] = np.mean(history["group_loss"][:, 0], axis=0).tolist()
    if config.valid:
      entry["final_valid_loss"] = float(np.mean(history["valid/loss"][:, -1]))
      entry["final_valid_group_losses"] = np.mean(history["valid/group_loss"][:, -1],
                                                  axis=0).tolist()
    summary[name] = entry

  curv, curv_corr = {}, {}
  if config.curvature:
    sub = data.TokenWindows(x=train_windows.x[:config.curvature_windows],
                            y=train_windows.y[:config.curvature_windows],
                            class_counts=train_windows.class_counts, num_classes=num_classes)
    diagnostics = language_data.curvature_diagnostics(model, sub, groups, key=probe_key,
                                        num_probes=config.num_probes)
    first = jax.tree.map(lambda a: a[0], params_S)
    for spec in specs:
      began = time.perf_counter()
      curv[spec.name] = curvature_run(model, first, data_splits, spec, config, groups,
                                      tuned[spec.name].selection.learning_rate, keys_S[0],
                                      diagnostics, store, spec.name)
      corr = curv_corr[spec.name] = study.correlations_over_time(curv[spec.name]["grad_norm_C"],
                                                                 curv[spec.name]["trace_C"])
      summary[spec.name]["curvature"] = {
          "steps": curv[spec.name]["steps"].tolist(), "spearman": corr["spearman"].tolist(),
          "loglog_pearson": corr["loglog_pearson"].tolist(),
          "loss": curv[spec.name]["loss"].tolist()}
      logging.info("%s curvature: Spearman(grad norm, trace) %s (%.0fs)", spec.name,
                   np.round(corr["spearman"], 2).tolist(), time.perf_counter() - began)
    results.write_npz(os.path.join(workdir, "curvature.npz"),
                      **{f"{n}/{k}": v for n, c in curv.items() for k, v in c.items()})

  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_jsonl(os.path.join(workdir, "metrics.jsonl"),
                      (r for name, t in tuned.items()
                       for r in reporting.history_records(name, t, steps)))
  best = {name: t.best_history for name, t in tuned.items()}
  rates = {name: t.selection.learning_rate for name, t in tuned.items()}
  panels = [s.name for s in specs if s.weighting == "none"][-2:]
  plotting.save_figure(plotting.linear.plot_heavy_tailed_overview(counts, groups, steps, best,
                                                                  rates, panels=panels),
                       os.path.join(workdir, "overview.png"))
  plotting.save_figure(plotting.linear.plot_group_grid(steps, best, rates, int(groups.max()) + 1),
                       os.path.join(workdir, "all_runs.png"))
  if config.valid:
    plotting.save_figure(plotting.language.validation_overview(counts, groups, steps, best,
                                                               rates, panels=panels),
                         os.path.join(workdir, "validation.png"))
  for name, c in curv.items():  # Fig 26: 4 records evenly spaced in step
    snaps = study.closest_steps(c["steps"], np.linspace(0, c["steps"][-1], min(4, c["steps"].size)))
    plotting.save_figure(plotting.curvature.plot_block_scatter(
        c["steps"], c["grad_norm_C"], c["trace_C"], snaps, groups, title=name,
        correlations=curv_corr[name]["spearman"][snaps]),
        os.path.join(workdir, f"curvature_{name}.png"))
  for name, entry in summary.items():
    logging.info("%-22s lr=%-9.3g final loss=%.4f  most frequent group %.3f -> %.3f  "
                 "rarest group %.3f -> %.3f", name, entry["learning_rate"], entry["final_loss"],
                 entry["initial_group_losses"][0], entry["final_group_losses"][0],
                 entry["initial_group_losses"][-1], entry["final_group_losses"][-1])
  logging.info("Wrote summary.json, metrics.jsonl and figures to %s (%.0fs)", workdir,
               time.perf_counter() - start)


if __name__ == "__main__":
  app.run(main)
