r"""Transformers on PTB / TinyPTB / WikiText-103 (paper H Figs 17, 18, 20, 22, 26, 1, 10).

One binary, one preset per figure: every run of ``--config.runs`` trains the
whole transformer (post-LN, causal, dropout from an explicit key; GPT2-Small is
the authors' network, `models.gpt2.GPT2`) with its step
size tuned by the library's rule (paper H App. A.4; or
``--config.learning_rate``), full batch (Figs 18, 20: TinyPTB) or on
mini-batches of ``batch_size`` windows (Figs 17, 22, 1, 10), recording the
training (and with ``valid=True`` validation) loss of every ~10% frequency
group. ``curvature=True`` (Fig 26) then reruns each run's selected step size on
the first seed in segments of ``curvature_every`` steps and records, between
segments, the per-class gradient norm of the classifier ``head`` and Hutchinson
estimates of its Hessian block traces on the first ``curvature_windows``
training windows (evaluation mode, no dropout).

Paper presets (``--config.preset=...``; GPU-scale):

* ``fig17``: 2-layer transformer (d=1000, 4 heads) on PTB, mini-batches of 512
  windows of 35 tokens (4 accumulated micro-batches), SGD and Adam (with
  momentum), validation recorded.
* ``fig18``: 1-layer transformer (d=1200) full batch on TinyPTB, GD and Adam.
* ``fig20``: as ``fig18`` with all eight runs of `optim.PAPER_RUNS`.
* ``fig22``: the PTB panel of Fig 22: SGD on the 1/pi_k and 1/sqrt(pi_k)
  reweighted losses against SGD and Adam (all with momentum), as ``fig17``.
* ``fig26``: per-block gradient norm and Hessian trace of the classifier along
  SGD and Adam on the ``fig17`` problem (Hutchinson estimates).
* ``gpt2_wikitext103``: Figs 1 and 10, GPT2-Small on WikiText-103 (BPE,
  50,608 pieces requested; 1,024-token windows; mini-batch 512 accumulated
  over 64 micro-batches of 8 windows), training and validation per-group losses;
  needs ``--config.corpus_dir`` with the unpacked WikiText-103 and a large GPU
  (see docs/language.md for memory and time per step, `estimate_bytes`).

CPU presets (minutes on a 2-core CPU; tiny widths, a few windows, compacted
vocabulary, few steps): ``quick`` (= ``fig18`` scaled down), ``quick_fig17``
(mini-batch on PTB), ``quick_fig22`` and ``quick_fig26``. Any field set on the
command line wins, e.g. ``--config.preset=quick --config.runs=all`` gives a
CPU-scale Fig 20. Model fields ``d_model``, ``num_heads``, ``mlp_dim`` and
``dropout_rate`` left at -1 take the values of ``model`` in
`models.TRANSFORMER_CONFIGS`. The authors' code (paper H's release) as options,
defaults ours (docs/language.md, "Against the authors' code"):
``record_mode=train`` (losses recorded with dropout active),
``layer_norm_scale_std=0.02`` (LayerNorm scales N(1, 0.02)),
``weight_normalization=batch`` (class weights divided by their sum per batch) and
``batch_order=strided`` (fixed strided batches, no reshuffling).

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

import time

import jax
import numpy as np
from absl import logging

from experiments import language_data
from imbalance_jax import data, experiment as ex, models, optim, plotting, train
from imbalance_jax.curvature import study
from imbalance_jax.experiment import fields
from imbalance_jax.models import TRANSFORMER_CONFIGS, flops_per_token

_ALL = ",".join(optim.PAPER_RUNS)
_FIG22 = "gd+m,adam+m,gd+m@inverse_sqrt,gd+m@inverse"
_PTB_MINIBATCH = dict(corpus="ptb", tokenizer="word", model="two_layer", seq_len=35,
                      num_windows=0, compact_vocab=False, batch_size=512,
                      accumulation_steps=4, chunk_size=256,
                      num_seeds=3, num_steps=5000, log_every=100, refine_rounds=1,
                      exponents="", valid=True, curvature=False)
_TINYPTB_FULL = dict(corpus="tinyptb", tokenizer="word", model="one_layer", seq_len=35,
                     num_windows=0, compact_vocab=False, batch_size=0, chunk_size=256,
                     num_seeds=3, num_steps=1000, log_every=10, refine_rounds=1, exponents="",
                     valid=False, curvature=False)
_CPU = dict(d_model=32, num_heads=2, mlp_dim=32, compact_vocab=True, num_seeds=1,
            refine_rounds=0, exponents="-4,-3,-2,-1,0,1")
_CPU_PTB = dict(_PTB_MINIBATCH, **_CPU, num_windows=128, batch_size=32, num_steps=300,
                log_every=20, valid=False)
PRESETS = {
    "quick": dict(_TINYPTB_FULL, **_CPU, num_windows=48, num_steps=100, runs="gd,adam"),
    "quick_fig17": dict(_CPU_PTB, runs="gd+m,adam+m"),
    "quick_fig22": dict(_CPU_PTB, runs=_FIG22),
    "quick_fig26": dict(_CPU_PTB, runs="gd+m,adam+m", curvature=True),
    "fig17": dict(_PTB_MINIBATCH, runs="gd+m,adam+m"),
    "fig18": dict(_TINYPTB_FULL, runs="gd,adam"),
    "fig20": dict(_TINYPTB_FULL, runs=_ALL),
    "fig22": dict(_PTB_MINIBATCH, runs=_FIG22),
    "fig26": dict(_PTB_MINIBATCH, runs="gd+m,adam+m", curvature=True, valid=False),
    "gpt2_wikitext103": dict(corpus="wikitext103", tokenizer="bpe", model="gpt2_small",
                             seq_len=1024, num_windows=0, compact_vocab=False, batch_size=512,
                             accumulation_steps=64, chunk_size=8, num_seeds=1,
                             num_steps=15_000, log_every=500, refine_rounds=0,
                             exponents="-4,-3", runs="gd+m,adam+m", valid=True,
                             curvature=False),
}


def model_fields(config) -> dict:
  """The `models.make_transformer` overrides: the set fields among d_model, ... dropout_rate."""
  out = {name: config[name] for name in ("d_model", "num_heads", "mlp_dim") if config[name] >= 0}
  if config.dropout_rate >= 0:
    out["dropout_rate"] = config.dropout_rate
  if config.layer_norm_scale_std:
    out["layer_norm_scale_std"] = config.layer_norm_scale_std
  return out


def _vocab_bound(config) -> int:
  if config.tokenizer != "word":
    return config.subword_vocab_size
  vocab = CORPUS_TOKENS.get(config.corpus, (None, None, None))[2]
  return vocab or 300_000  # word-level WikiText-103 (or a text file): a loose bound


def estimate_bytes(config) -> int:
  """Rough peak memory of a sweep round, per member: parameters with gradient and two
  moments, and one pass's saved activations per token of a micro-batch (or chunk): the
  logits and their softmax and gradient (``3 V``) and per layer ``20 d + 2 mlp`` (q, k,
  v, residuals, LayerNorms, dropout masks) plus ``3 heads T`` (attention scores, weights,
  dropout mask). GPT2-Small at 8 windows of 1,024 tokens: about 28 GB of activations and
  2.6 GB of parameters and Adam state."""
  arch = {**TRANSFORMER_CONFIGS[config.model], **model_fields(config)}
  v, d, layers, mlp = _vocab_bound(config), arch["d_model"], arch["num_layers"], arch["mlp_dim"]
  params = 2 * v * d + v + layers * (4 * d * d + 2 * d * mlp)
  if config.batch_size:
    windows = config.batch_size // config.accumulation_steps
  else:
    total = config.num_windows or 2095
    windows = min(config.chunk_size or total, total)
  per_layer = 20 * d + 2 * mlp + 3 * arch["num_heads"] * config.seq_len
  activations = windows * config.seq_len * (3 * v + layers * per_layer)
  members = config.num_seeds * (1 if config.learning_rate > 0 else len(config.exponents))
  return ex.float_bytes() * members * (4 * params + activations)


def validate(config) -> None:
  ex.check_step_schedule(config)
  if config.layer_norm_scale_std and TRANSFORMER_CONFIGS[config.model].get("architecture"):
    raise ValueError(f"config.layer_norm_scale_std applies to the post-LN models, not "
                     f"config.model={config.model!r} (the authors' GPT2 starts its scales at 1)")
  if config.corpus.startswith("wikitext") and not config.corpus_dir:
    raise ValueError(f"config.corpus_dir is required for config.corpus={config.corpus!r}: "
                     "the directory holding the unpacked WikiText files (nothing is downloaded)")
  language_data.check_corpus_files([config.corpus], config.corpus_dir)
  if not config.batch_size and config.accumulation_steps > 1:
    raise ValueError(f"config.accumulation_steps={config.accumulation_steps} splits mini-batches, "
                     "but config.batch_size=0 trains in full batch (config.chunk_size bounds "
                     "its memory)")
  if config.batch_size and config.num_windows and config.batch_size > config.num_windows:
    raise ValueError(f"config.batch_size={config.batch_size} exceeds config.num_windows="
                     f"{config.num_windows} (the training windows kept)")
  if config.batch_size and config.batch_size % config.accumulation_steps:
    raise ValueError(f"config.accumulation_steps={config.accumulation_steps} must divide "
                     f"config.batch_size={config.batch_size}")
  if config.curvature_every and config.num_steps % config.curvature_every:
    raise ValueError(f"config.curvature_every={config.curvature_every} must divide "
                     f"config.num_steps={config.num_steps}")
  arch = {**TRANSFORMER_CONFIGS[config.model], **model_fields(config)}
  if arch["d_model"] % arch["num_heads"]:
    raise ValueError(f"config.d_model={arch['d_model']} must be divisible by "
                     f"config.num_heads={arch['num_heads']}")
  vocab = ("config.subword_vocab_size (the logits dominate), "
           if config.tokenizer != "word" and _vocab_bound(config) > 4 * arch["d_model"] else "")
  ex.check_memory(estimate_bytes(config),
                  what=f"config.preset={config.preset!r} ({config.model}, vocabulary "
                       f"{_vocab_bound(config)})",
                  lower=f"{vocab}config.batch_size/accumulation_steps, config.chunk_size, the "
                        "widths or config.num_seeds")


_WIDTH = "-1: the model's"
CONFIG = ex.Config(
    presets=PRESETS,
    fields=dict(
        corpus=fields.Choice(("ptb", "tinyptb", "wikitext2", "wikitext103")),
        tokenizer=fields.Choice(("word", "bpe", "unigram")),
        model=fields.Choice(tuple(TRANSFORMER_CONFIGS), help="a models.TRANSFORMER_CONFIGS name"),
        d_model=fields.Int(minimum=-1, default=-1, help=_WIDTH),
        num_heads=fields.Int(minimum=-1, default=-1, help=_WIDTH),
        mlp_dim=fields.Int(minimum=-1, default=-1, help=_WIDTH + " (0: no MLP)"),
        seq_len=fields.Int(minimum=2),
        num_windows=fields.Int(minimum=0, help="first windows of each split (0: all)"),
        compact_vocab=fields.Bool(help="keep only the types in the windows"),
        batch_size=fields.Int(minimum=0, help="windows per step (0: full batch)"),
        accumulation_steps=fields.Int(minimum=1, default=1, help="micro-batches per step"),
        chunk_size=fields.Int(minimum=0, help="windows per pass of full-set evaluations"),
        num_seeds=fields.Int(minimum=1),
        num_steps=fields.Int(minimum=1),
        log_every=fields.Int(minimum=1),
        refine_rounds=fields.Int(minimum=0, maximum=5),
        exponents=fields.Exponents(),
        runs=fields.Runs(allow_all=True),
        valid=fields.Bool(help="also record the validation split"),
        curvature=fields.Bool(help="Fig 26 block diagnostics"),
        corpus_dir=fields.Directory(help="'' = embedded PTB; WikiText needs it"),
        subword_vocab_size=fields.Int(minimum=2, maximum=language_data.MAX_SUBWORD_VOCAB,
                                      default=50_608,
                                      help="BPE/Unigram (paper H's WikiText-103 vocabulary)"),
        dropout_rate=fields.Real(minimum=-1.0, maximum=1.0, default=-1.0, help=_WIDTH),
        record_mode=fields.Choice(("eval", "train"), default="eval",
                                  help="recorded losses: eval = the model's (no dropout); "
                                       "train = dropout active, the authors' way"),
        batch_order=fields.Choice(("shuffle", "strided"), default="shuffle",
                                  help="mini-batches: reshuffled windows every epoch (ours) or "
                                       "the authors' fixed batches of strided windows"),
        weight_normalization=fields.Choice(("set", "batch"), default="set",
                                           help="reweighted losses: weights normalised over "
                                                "the training set (ours) or divided by their "
                                                "sum in each batch (the authors')"),
        layer_norm_scale_std=fields.Real(minimum=0.0, maximum=1.0, default=0.0,
                                         help="0: LayerNorm scales start at 1; 0.02: "
                                              "N(1, 0.02), the authors' init"),
        learning_rate=fields.LearningRate(default=0.0),
        curvature_every=fields.Int(minimum=0, default=0,
                                   help="steps between curvature records (0: log_every)"),
        curvature_windows=fields.Int(minimum=1, default=64,
                                     help="training windows the diagnostics are computed on"),
        num_probes=fields.Int(minimum=1, default=16, help="Hutchinson probes per record"),
        num_groups=fields.Int(minimum=1, default=10),
        divergence_threshold=fields.DivergenceThreshold(),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def step_cost(config, vocab_size: int, num_train_windows: int) -> dict:
  """FLOPs per training token and per step (`models.flops_per_token`) of this config
  (a full-batch step sees all ``num_train_windows`` windows)."""
  arch = {**TRANSFORMER_CONFIGS[config.model], **model_fields(config)}
  per_token = flops_per_token(vocab_size, config.seq_len, **arch)
  tokens = (config.batch_size or num_train_windows) * config.seq_len
  return {"flops_per_token": per_token, "tokens_per_step": tokens,
          "flops_per_step": per_token * tokens}


# Tokens per split (train, valid) and vocabulary: PTB and TinyPTB measured with
# `load_data` (word tokenizer); WikiText-103 under BPE assumed 1.13 x its 103.2M / 217.6k
# words (not measured: the corpus is not on this machine), vocabulary subword_vocab_size.
CORPUS_TOKENS = {"ptb": (924_385, 73_325, 9922), "tinyptb": (73_325, 82_110, 5980),
                 "wikitext103": (116_650_000, 245_940, None)}


def abstract_windows(config) -> dict:
  """The run's windows by split as ``ShapeDtypeStruct``s (`CORPUS_TOKENS`; no data read)."""
  train_tokens, valid_tokens, vocab = CORPUS_TOKENS[config.corpus]
  vocab = vocab or config.subword_vocab_size
  def split(tokens):
    n = tokens // config.seq_len
    n = min(n, config.num_windows) if config.num_windows else n
    ids = jax.ShapeDtypeStruct((n, config.seq_len), np.int32)
    return data.TokenWindows(ids, ids, jax.ShapeDtypeStruct((vocab,), np.int32), vocab)
  out = {"train": split(train_tokens)}
  return {**out, "valid": split(valid_tokens)} if config.valid else out


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """The sweep on abstract shapes (`experiment.plan`); analytic FLOPs: `step_cost`."""
  windows = abstract_windows(config)
  train_windows = windows["train"]
  model = models.make_transformer(config.model, train_windows.num_classes,
                                  **model_fields(config))
  groups = ex.plan.spread_groups(train_windows.num_classes, config.num_groups)
  flops = step_cost(config, train_windows.num_classes, train_windows.num_examples)
  return [ex.plan.StepPlan("all runs", train_builder(config, model, groups)(config.runs[0]),
                           ex.plan.init_shapes(model.init, train_windows.x), windows,
                           num_runs=len(config.runs), num_seeds=config.num_seeds,
                           grid=ex.Grid.from_config(config),
                           analytic_flops=flops["flops_per_step"])]


def load_data(config):
  """``(windows by split, info)``: the training (and with ``valid`` validation) windows."""
  return language_data.load_windows(
      config.corpus, config.corpus_dir, config.seq_len, num_windows=config.num_windows,
      compact=config.compact_vocab, splits=("train", "valid") if config.valid else ("train",),
      tokenizer=config.tokenizer, vocab_size=config.subword_vocab_size)


def init_model(config, train_windows):
  """``(model, params [S], dropout keys [S], Hutchinson probe key)``."""
  model = models.make_transformer(config.model, train_windows.num_classes,
                                  **model_fields(config))
  init_key, run_key, probe_key = jax.random.split(jax.random.key(config.seed), 3)
  params_S = jax.vmap(lambda k: model.init(k, train_windows.x[:1]))(
      jax.random.split(init_key, config.num_seeds))
  return model, params_S, jax.random.split(run_key, config.num_seeds), probe_key


def batching(config) -> train.FullBatch | train.MiniBatch:
  """``config``'s batching: mini-batches of ``batch_size`` windows (``accumulation_steps``
  micro-batches each), or the full batch in chunks of ``chunk_size`` (0: one pass)."""
  if config.batch_size:
    return train.MiniBatch(config.batch_size, config.accumulation_steps,
                           eval_chunk_size=config.chunk_size or None, order=config.batch_order)
  return train.FullBatch(config.chunk_size or None)


def train_builder(config, model, groups, num_steps=None, log_every=None):
  """spec -> the `train.Train` of the whole model under ``config``'s batching."""
  return ex.train_builder(model.apply, num_steps=num_steps or config.num_steps,
                          log_every=log_every or config.log_every, groups=groups,
                          batching=batching(config), stateful=True,
                          record_train_mode=config.record_mode == "train",
                          weight_normalization=config.weight_normalization)


def dataset_json(config, windows, info, counts, groups) -> dict:
  """dataset.json: corpus and tokenizer, step cost, windows per split, class groups."""
  train_windows = windows["train"]
  cost = step_cost(config, train_windows.num_classes, train_windows.num_examples)
  return {**info, **cost, "num_windows": {s: w.num_examples for s, w in windows.items()},
          "seq_len": config.seq_len, **language_data.group_statistics(counts, groups)}


def curvature_run(config, model, variables, data_splits, spec, groups, learning_rate, key,
                  diagnostics, store: train.ResultStore):
  """Trains one member in segments and records ``diagnostics`` between them (resumable)."""
  if (saved := store.load(f"curvature/{spec.name}")) is not None:
    return {k: np.asarray(v) for k, v in saved.items()}
  every = config.curvature_every or config.log_every
  log_every = (every if config.log_every > every or every % config.log_every
               else config.log_every)
  run = train_builder(config, model, groups, num_steps=every, log_every=log_every)(spec)
  state = jax.jit(run.init)(variables, data_splits, learning_rate, key)
  segment = jax.jit(lambda s: run.run(s, data_splits, every)[0])
  records = [diagnostics(state.params)]
  for _ in range(config.num_steps // every):
    state = segment(state)
    records.append(diagnostics(state.params))
  out = {k: np.stack([np.asarray(r[k]) for r in records]) for k in records[0]}
  out["steps"] = np.arange(len(records)) * every
  store.save(f"curvature/{spec.name}", out)
  return out


def curvature_runs(config, model, params_S, windows, groups, tuned, run_key, probe_key, store):
  """Fig 26: per run, its selected step size on the first seed with the classifier's block
  diagnostics between segments, and their correlations -> ``({run: records}, {run: corr})``."""
  train_windows = windows["train"]
  n = config.curvature_windows
  probe_windows = data.TokenWindows(x=train_windows.x[:n], y=train_windows.y[:n],
                                    class_counts=train_windows.class_counts,
                                    num_classes=train_windows.num_classes)
  diagnostics = language_data.curvature_diagnostics(model, probe_windows, groups, key=probe_key,
                                                    num_probes=config.num_probes)
  first = jax.tree.map(lambda a: a[0], params_S)
  curv, corr = {}, {}
  for spec in config.runs:
    began = time.perf_counter()
    curv[spec.name] = curvature_run(config, model, first, dict(windows), spec, groups,
                                    tuned[spec.name].selection.learning_rate, run_key,
                                    diagnostics, store)
    corr[spec.name] = study.correlations_over_time(curv[spec.name]["grad_norm_C"],
                                                   curv[spec.name]["trace_C"])
    logging.info("%s curvature: Spearman(grad norm, trace) %s (%.0fs)", spec.name,
                 np.round(corr[spec.name]["spearman"], 2).tolist(), time.perf_counter() - began)
  return curv, corr


def curvature_entry(records, corr) -> dict:
  """A run's ``curvature`` summary entry: record steps, correlations and loss."""
  return {"steps": records["steps"].tolist(), "spearman": corr["spearman"].tolist(),
          "loglog_pearson": corr["loglog_pearson"].tolist(), "loss": records["loss"].tolist()}


def figures(config, tuned, counts, groups, curv, corr) -> dict:
  """overview.png, all_runs.png, validation.png (with ``valid``), curvature_<run>.png."""
  steps, best, rates = tuned.steps, tuned.best_histories(), tuned.learning_rates()
  panels = [s.name for s in config.runs if s.weighting == "none"][-2:]
  out = {"overview.png": plotting.linear.plot_heavy_tailed_overview(counts, groups, steps, best,
                                                                    rates, panels=panels),
         "all_runs.png": plotting.linear.plot_group_grid(steps, best, rates,
                                                         int(groups.max()) + 1)}
  if config.valid:
    out["validation.png"] = plotting.language.validation_overview(counts, groups, steps, best,
                                                                  rates, panels=panels)
  for name, c in curv.items():  # Fig 26: 4 records evenly spaced in step
    snaps = study.closest_steps(c["steps"], np.linspace(0, c["steps"][-1],
                                                        min(4, c["steps"].size)))
    out[f"curvature_{name}.png"] = plotting.curvature.plot_block_scatter(
        c["steps"], c["grad_norm_C"], c["trace_C"], snaps, groups, title=name,
        correlations=corr[name]["spearman"][snaps])
  return out


def run(config, workdir: str) -> dict:
  start = time.perf_counter()
  windows, info = load_data(config)
  model, params_S, keys_S, probe_key = init_model(config, windows["train"])
  counts = np.asarray(windows["train"].class_counts)
  groups = data.frequency_groups(counts, config.num_groups)
  dataset = dataset_json(config, windows, info, counts, groups)
  logging.info("%s (%s): %s windows x %d tokens, %d classes (tokenizer %d), model %s %s, "
               "%.3g FLOPs/token, %d groups, %d seeds; data in %.1fs", config.corpus,
               config.tokenizer, dataset["num_windows"], config.seq_len, info["num_classes"],
               info["tokenizer_vocab_size"], config.model, model_fields(config),
               dataset["flops_per_token"], groups.max() + 1, config.num_seeds,
               time.perf_counter() - start)
  store = ex.store(workdir)
  tuned = ex.tune_runs(config.runs, train_builder(config, model, groups), params_S,
                       dict(windows), grid=ex.Grid.from_config(config), store=store,
                       keys_S=keys_S, data_per_seed=False, threshold=config.divergence_threshold)
  summary = language_data.summary_entries(tuned, valid=config.valid)
  curv, corr = {}, {}
  if config.curvature:
    curv, corr = curvature_runs(config, model, params_S, windows, groups, tuned, keys_S[0],
                                probe_key, store)
    for name in curv:
      summary[name]["curvature"] = curvature_entry(curv[name], corr[name])
  arrays = {"curvature.npz": {f"{n}/{k}": v for n, c in curv.items() for k, v in c.items()}}
  ex.write_outputs(workdir, summary=summary, metrics=tuned.records(),
                   figures=figures(config, tuned, counts, groups, curv, corr),
                   arrays=arrays if curv else None, files={"dataset.json": dataset})
  language_data.log_summary(summary)
  logging.info("Wrote summary.json, metrics.jsonl and figures to %s (%.0fs)", workdir,
               time.perf_counter() - start)
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
