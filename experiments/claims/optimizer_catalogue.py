"""Claims of `experiments.optimizer_catalogue`: which optimizers fix the tail (issue 19).

Declared before the first run, from the papers behind each optimizer (see
docs/optimizers.md); the thresholds are issue 19's. Claims Z, W, X, H and F are on
the linear task (declared with the linear-only binary); the last-layer claim on
the transformer task was declared with the CNN and transformer tasks, before their
first run.
"""

import math

from experiments.claims import Claim, Experiment, Figure, at_least, at_most

SIGN_LIKE = ("sign_descent+m", "signum+m", "lion+m", "adam+m", "adagrad")


def _rare(run, name, task="linear"):
  return max(run.runs(task)[name].rarest_loss, 1e-12)


def _ranking(run, task="linear"):
  return run.read_json("ranking.json")[task]["runs"]


def _sign_like(run):
  gd = _rare(run, "gd+m")
  return {f"gd+m_rare_over_{name}_rare": gd / _rare(run, name) for name in SIGN_LIKE}


def _muon(run):
  ranking = _ranking(run)
  return {"muon+m_spread_over_adam+m_spread":
          ranking["muon+m"]["spread"] / ranking["adam+m"]["spread"]}


def _rotation(run):
  gd, adam = _rare(run, "gd+m"), _rare(run, "adam+m")
  rot_gd, rot_adam = _rare(run, "rotated_gd+m"), _rare(run, "rotated_adam+m")
  return {"rotated_adam_share_of_adam_log_advantage":
          math.log(gd / rot_adam) / max(math.log(gd / adam), 1e-12),
          "rotated_gd_rare_relative_change": abs(rot_gd / gd - 1.0)}


def _oracle(run):
  ranking = _ranking(run)
  return {"frequency_oracle_spread": ranking["frequency_oracle"]["spread"],
          "gd+m_spread_over_frequency_oracle_spread":
              ranking["gd+m"]["spread"] / ranking["frequency_oracle"]["spread"]}


def _last_layer(run):
  gd, adam = _rare(run, "gd+m", "transformer"), _rare(run, "adam+m", "transformer")
  last = _rare(run, "adam_last_layer+m", "transformer")
  return {"transformer_gd+m_rare_over_adam+m_rare": gd / adam,
          "adam_last_layer_share_of_gd_adam_rare_gap": (gd - last) / (gd - adam)}


def _per_class_normalized(run):
  return {"gd+m_rare_over_per_class_normalized_gd+m_rare":
          _rare(run, "gd+m") / _rare(run, "per_class_normalized_gd+m")}


EXPERIMENT = Experiment(
    binary="optimizer_catalogue",
    # Three tasks from a fresh workdir: 9 min 10 s wall, 307 s user CPU, on the shared 2-core
    # machine at load average 4.4-7.6 (session 3's 17-run quick preset: 1164 s at load 6-11).
    cpu_runs={"quick": 550.0},
    paper_runs=("paper",),
    notes="the optimizer catalogue (docs/optimizers.md) on the linear task (13 runs), the "
          "CNN on MNIST+Barcoded (3) and the 1-layer transformer on TinyPTB (3) at the quick "
          "preset; every optimizer on every task at the paper preset",
    # After 2 of the 4 segments of the linear task's first run; the transformer task after.
    test_flags=("--config.m=3", "--config.num_seeds=2", "--config.num_steps=40",
                "--config.log_every=5", "--config.segment_steps=10", "--config.refine_rounds=0",
                "--config.num_groups=3", "--config.runs=adam+m,frequency_oracle",
                "--config.tasks=linear,transformer", "--config.transformer_runs=sophia+m",
                "--config.transformer_num_steps=10", "--config.transformer_exponents=-2"),
    kill_after=2,
    slow_test=True,  # resume with -m slow: heavy_tailed_linear checks its segment path in CI
    figures=(
        Figure("H", "Fig 19", "quick", "heatmap_linear.png",
               "The optimizer catalogue on Random Heavy-Tailed Labels (m=7), each at its tuned "
               "step size: final training loss per frequency group (log10), best rarest group "
               "first"),
        Figure("H", "Fig 19", "quick", "all_runs_linear.png",
               "Per-group training loss of every catalogue run on the linear task"),
        Figure("H", "Fig 21", "quick", "heatmap_cnn.png",
               "The catalogue's CNN subset on MNIST+Barcoded (group 0: the 10 plain digits, "
               "group 1: the barcoded classes): final loss per group (log10)"),
        Figure("H", "Fig 21", "quick", "all_runs_cnn.png",
               "Per-group training loss of the CNN runs"),
        Figure("H", "Fig 20", "quick", "heatmap_transformer.png",
               "The catalogue's transformer subset on TinyPTB (10 frequency groups): final "
               "loss per group (log10)"),
        Figure("H", "Fig 20", "quick", "all_runs_transformer.png",
               "Per-group training loss of the transformer runs"),
    ),
    claims=(
        Claim("Z", "Sec 3", "Every sign-like or per-coordinate-adaptive method (sign descent, "
              "Signum, Lion, Adam, AdaGrad) ends its rarest group at least 5x below GD on the "
              "linear task.", "quick", _sign_like,
              tuple(at_least(f"gd+m_rare_over_{name}_rare", 5.0) for name in SIGN_LIKE)),
        Claim("W", "Sec 4", "Muon learns the tail at least as evenly as Adam: its group spread "
              "(rarest / most frequent final loss) is at most Adam's.", "quick", _muon,
              (at_most("muon+m_spread_over_adam+m_spread", 1.0),)),
        Claim("X", "Sec 3", "A random rotation of the parameter basis removes most of Adam's "
              "rare-class advantage (less than half of its log-advantage over GD remains) while "
              "GD's result is unchanged.", "quick", _rotation,
              (at_most("rotated_adam_share_of_adam_log_advantage", 0.5),
               at_most("rotated_gd_rare_relative_change", 0.01))),
        Claim("H", "Thm 3", "The frequency oracle (classifier row k scaled by 1/pi_k) equalises "
              "the groups: its spread is at most 2, at least 5x smaller than GD's.", "quick",
              _oracle, (at_most("frequency_oracle_spread", 2.0),
                        at_least("gd+m_spread_over_frequency_oracle_spread", 5.0))),
        Claim("Z", "Sec 4", "On the 1-layer transformer (TinyPTB), Adam on the last layer "
              "alone (the classifier head and the LayerNorms; GD elsewhere) closes most of the "
              "GD-Adam gap on the rarest frequency group: at least half of the difference "
              "between GD's and Adam's rarest-group final losses (both with momentum), where "
              "Adam's is below GD's.", "quick", _last_layer,
              (at_least("transformer_gd+m_rare_over_adam+m_rare", 1.0),
               at_least("adam_last_layer_share_of_gd_adam_rare_gap", 0.5))),
        Claim("F", "Sec 5", "Per-class normalised GD (classifier rows) makes progress on the rare "
              "classes: its rarest group ends at least 2x below GD's.", "quick",
              _per_class_normalized,
              (at_least("gd+m_rare_over_per_class_normalized_gd+m_rare", 2.0),)),
    ),
)
