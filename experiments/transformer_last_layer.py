r"""Last layer of a simplified 1-layer transformer on TinyPTB (paper H Fig 5).

The embedding and attention of the ``simplified`` transformer (embedding ->
attention -> classifier; no MLP, LayerNorm or dropout) stay frozen at their
initialisation and only the classifier is trained, full batch, by each run of
``--config.runs`` (default: all eight of `optim.PAPER_RUNS`), each with its
step size tuned by the library's rule (paper H App. A.4). With the body
frozen the classifier is a softmax linear model on fixed features, so the
features ``[n T, d]`` are computed once per seed (`data.per_token_dataset`)
and the head is trained as `models.LinearSoftmax` on them; ``chunk_size``
accumulates the full-batch gradient over chunks of tokens, so the
``[tokens, V]`` logits never exist at once. (`tests/test_experiment_language.py`
checks that this equals training the whole model with `models.head_only`.)

Writes config.json, dataset.json, summary.json (per run: learning_rate,
final_loss, final_group_losses with group 0 the most frequent tokens,
initial_group_losses, ...), metrics.jsonl and figures (overview.png,
all_runs.png) into --workdir; a rerun with the same --workdir resumes after the
finished sweep rounds.

  python -m experiments.transformer_last_layer --workdir /tmp/fig5
  python -m experiments.transformer_last_layer --workdir /tmp/fig5p --config.preset=paper
"""

import os
import time

import jax
import numpy as np
from absl import app, logging

from experiments import language_data
from experiments.configs import transformer_last_layer as config_lib
from imbalance_jax import cli, data, metrics, models, optim, plotting, reporting, results, train

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  specs = optim.parse_runs(config.runs)
  start = time.perf_counter()
  windows, info = language_data.load_windows(config.corpus, config.corpus_dir, config.seq_len,
                                             num_windows=config.num_windows,
                                             compact=config.compact_vocab)
  train_windows = windows["train"]
  num_classes = train_windows.num_classes
  model = models.make_transformer("simplified", num_classes, d_model=config.d_model,
                                  num_heads=config.num_heads, train_only_head=True)
  init_keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  params_S = jax.vmap(lambda k: model.init(k, train_windows.x[:1]))(init_keys)
  features_S = language_data.frozen_features(model, params_S, train_windows.x)
  datasets = jax.vmap(lambda f: data.per_token_dataset(train_windows, f))(features_S)
  head = models.LinearSoftmax(num_classes)
  counts = np.asarray(train_windows.class_counts)
  groups = data.frequency_groups(counts, config.num_groups)
  logging.info("%s: %d windows x %d tokens, %d classes (tokenizer %d), d=%d, %d groups, "
               "%d seeds; features in %.1fs", config.corpus, train_windows.num_examples,
               config.seq_len, num_classes, info["tokenizer_vocab_size"], config.d_model,
               groups.max() + 1, config.num_seeds, time.perf_counter() - start)
  results.write_json(os.path.join(workdir, "dataset.json"), {
      **info, "num_windows": train_windows.num_examples, "seq_len": config.seq_len,
      "d_model": config.d_model, "class_counts": counts, "class_to_group": groups,
      "group_share": np.bincount(groups, weights=counts) / counts.sum(),
      "classes_per_group": np.bincount(groups)})

  store = train.ResultStore(os.path.join(workdir, "checkpoints"))
  grid = dict(exponents=config_lib.parse_exponents(config.exponents),
              refine_rounds=config.refine_rounds)
  if config.learning_rate > 0:
    grid = dict(exponents=(float(np.log10(config.learning_rate)),), refine_rounds=0)
  batching = train.FullBatch(config.chunk_size or None)
  tuned = {}
  for spec in specs:
    run = train.make_train(train.classification_objective(head.apply, spec.weighting),
                           optim.injectable(spec.optimizer, spec.momentum),
                           num_steps=config.num_steps, log_every=config.log_every,
                           metrics_fn=metrics.classification_metrics(groups), batching=batching)
    tuned[spec.name] = train.tune_sweep(
        train.Sweep(run), language_data.head_params(params_S), datasets, **grid,
        threshold=config.divergence_threshold, store=store, store_key=spec.name,
        segment_steps=config.segment_steps or None, log=logging.info)

  steps = run.history_steps
  summary = {}
  for name, t in tuned.items():
    entry = reporting.summarize_run(t)
    entry["initial_group_losses"] = np.mean(t.best_history["group_loss"][:, 0], axis=0).tolist()
    summary[name] = entry
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_jsonl(os.path.join(workdir, "metrics.jsonl"),
                      (r for name, t in tuned.items()
                       for r in reporting.history_records(name, t, steps)))
  best = {name: t.best_history for name, t in tuned.items()}
  rates = {name: t.selection.learning_rate for name, t in tuned.items()}
  plotting.save_figure(
      plotting.linear.plot_heavy_tailed_overview(counts, groups, steps, best, rates),
      os.path.join(workdir, "overview.png"))
  plotting.save_figure(plotting.linear.plot_group_grid(steps, best, rates, int(groups.max()) + 1),
                       os.path.join(workdir, "all_runs.png"))
  for name, entry in summary.items():
    logging.info("%-18s lr=%-9.3g final loss=%.4f  most frequent group %.3f -> %.3f  "
                 "rarest group %.3f -> %.3f", name, entry["learning_rate"], entry["final_loss"],
                 entry["initial_group_losses"][0], entry["final_group_losses"][0],
                 entry["initial_group_losses"][-1], entry["final_group_losses"][-1])
  logging.info("Wrote summary.json, metrics.jsonl and figures to %s (%.0fs)", workdir,
               time.perf_counter() - start)


if __name__ == "__main__":
  app.run(main)
