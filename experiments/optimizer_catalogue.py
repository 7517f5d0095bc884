r"""Which optimizers fix the tail? The optimizer catalogue on heavy-tailed labels (issue 19).

Runs the catalogue (`imbalance_jax.optim`, docs/optimizers.md), each run's step
size tuned by paper H's rule (`experiment.tune_runs`: seeds x step sizes, one
compiled sweep per run and round), on the linear softmax model on Random
Heavy-Tailed Labels. Writes config.json, summary.json (per run: tuned rate,
final loss per frequency group), ranking.json (per run: final loss per group,
the steps each group takes to reach half its initial loss, the spread = rarest
/ most frequent group's final loss, sorted by the rarest group), metrics.jsonl,
heatmap.png (run x frequency group, final loss) and all_runs.png (per-group
curves). A rerun with the same --workdir resumes from finished rounds.

Only the linear task (m=7 in ``quick``) is implemented; the CNN on
MNIST+Barcoded and the 1-layer transformer on TinyPTB of issue 19 are not.

  python -m experiments.optimizer_catalogue --workdir /tmp/cat
"""

import jax
import numpy as np
from absl import logging

from experiments.heavy_tailed_linear import SWEEP_FIELDS
from imbalance_jax import data, experiment as ex, metrics, models, optim, plotting, train
from imbalance_jax.experiment import fields
from imbalance_jax.plotting.common import plt

QUICK_RUNS = ("gd+m,adam+m,sign_descent+m,signum+m,lion+m,muon+m,adagrad,adalayer+m,"
              "coupled_adam+m,scaled_sign_descent+m,per_class_normalized_gd+m,frequency_oracle,"
              "rotated_gd+m,rotated_adam+m")
_STEPS = dict(num_seeds=2, log_every=10, refine_rounds=0, segment_steps=0, learning_rate=0.0)


def validate(config) -> None:
  ex.check_step_schedule(config)
  m = config.m
  n, d, c = m * 2**m, (m + 1) * 2**m, 2**m - 1
  ex.check_memory(ex.float_bytes() * config.num_seeds * (n * d + 8 * (3 * n * c + 5 * c * d)),
                  what=f"config.m={m} with config.num_seeds={config.num_seeds}",
                  lower="config.m or config.num_seeds (presets: quick m=7, paper m=11)")


CONFIG = ex.Config(
    presets={
        "quick": dict(_STEPS, m=7, num_steps=200, runs=QUICK_RUNS),
        "paper": dict(_STEPS, m=11, num_seeds=3, num_steps=1000, refine_rounds=1,
                      segment_steps=100, runs=QUICK_RUNS + ",adafactor+m,ademamix+m,adopt+m,"
                      "schedule_free+m,normalized_gd+m,rotated_normalized_gd+m"),
    },
    fields=dict(
        **SWEEP_FIELDS,
        oracle_exponent=fields.Real(minimum=0.0, default=1.0,
                                     help="a of frequency_oracle: row k scaled by pi_k^-a"),
        num_groups=fields.Int(minimum=2, default=10),
        divergence_threshold=fields.DivergenceThreshold(),
        seed=fields.Int(minimum=0, default=0)),
    validate=validate)


def builder(model_apply, counts, groups, config):
  """spec -> Train; ``frequency_oracle`` receives the training set's class counts."""
  metrics_fn = metrics.classification_metrics(groups)

  def build(spec: optim.RunSpec) -> train.Train:
    options = ({"class_counts": counts, "exponent": config.oracle_exponent}
               if spec.optimizer == "frequency_oracle" else {})
    return train.make_train(train.classification_objective(model_apply, spec.weighting),
                            optim.injectable(spec.optimizer, spec.momentum, **options),
                            num_steps=config.num_steps, log_every=config.log_every,
                            metrics_fn=metrics_fn)

  return build


def half_loss_steps(steps, group_loss_STG) -> list:
  """Per group, the first logged step where the seed-mean loss is <= half its initial value
  (None if never)."""
  mean_TG = np.mean(np.asarray(group_loss_STG), axis=0)
  reached = mean_TG <= 0.5 * mean_TG[:1]
  return [int(steps[np.argmax(reached[:, g])]) if reached[:, g].any() else None
          for g in range(mean_TG.shape[1])]


def ranking(summary, steps, best) -> dict:
  """Per run: final group losses, steps to half the initial loss, spread; sorted by the
  rarest group's final loss (best first)."""
  rows = {}
  for name, entry in summary.items():
    group = np.asarray(entry["final_group_losses"])
    rows[name] = {"learning_rate": entry["learning_rate"],
                  "final_group_losses": group.tolist(),
                  "rarest_loss": float(group[-1]), "frequent_loss": float(group[0]),
                  "spread": float(group[-1] / max(group[0], 1e-12)),
                  "half_loss_steps": half_loss_steps(steps, best[name]["group_loss"])}
  order = sorted(rows, key=lambda name: rows[name]["rarest_loss"])
  return {"order": order, "runs": rows}


def heatmap(ranked, num_groups):
  names = ranked["order"]
  loss = np.array([ranked["runs"][n]["final_group_losses"] for n in names])
  fig, ax = plt.subplots(figsize=(1.0 + 0.5 * num_groups, 0.9 + 0.32 * len(names)))
  image = ax.imshow(np.log10(np.maximum(loss, 1e-8)), aspect="auto", cmap="viridis")
  ax.set_yticks(range(len(names)), names, fontsize=8)
  ax.set_xticks(range(num_groups), [str(g) for g in range(num_groups)], fontsize=8)
  ax.set_xlabel("frequency group (0 = most frequent)")
  ax.set_title("final training loss per group (log10), tuned step sizes", fontsize=9)
  fig.colorbar(image, ax=ax)
  fig.tight_layout()
  return fig


def run(config, workdir: str) -> dict:
  data_key, init_key = jax.random.split(jax.random.key(config.seed))
  datasets = jax.vmap(lambda k: data.heavy_tailed_labels(k, config.m))(
      jax.random.split(data_key, config.num_seeds))
  model = models.LinearSoftmax(datasets.num_classes)
  params_S = jax.vmap(lambda k: model.init(k, datasets.x[0, :1]))(
      jax.random.split(init_key, config.num_seeds))
  counts = np.asarray(datasets.class_counts[0])
  groups = data.frequency_groups(counts, config.num_groups)
  num_groups = int(groups.max()) + 1
  logging.info("Optimizer catalogue, heavy-tailed labels m=%d: %d classes, %d runs",
               config.m, datasets.num_classes, len(config.runs))
  tuned = ex.tune_runs(config.runs, builder(model.apply, counts, groups, config), params_S,
                       datasets, grid=ex.Grid.from_config(config), store=ex.store(workdir),
                       threshold=config.divergence_threshold,
                       segment_steps=config.segment_steps or None)
  steps, best, rates = tuned.steps, tuned.best_histories(), tuned.learning_rates()
  summary = tuned.summaries()
  ranked = ranking(summary, steps, best)
  figures = {"heatmap.png": heatmap(ranked, num_groups),
             "all_runs.png": plotting.linear.plot_group_grid(steps, best, rates, num_groups)}
  ex.write_outputs(workdir, summary=summary, metrics=tuned.records(), figures=figures,
                   files={"ranking.json": ranked,
                          "dataset.json": {"m": config.m, "class_counts": counts,
                                           "class_to_group": groups}})
  return summary


if __name__ == "__main__":
  ex.launch(CONFIG, run)
