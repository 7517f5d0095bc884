"""Claims of `experiments.curvature_spectra`: the follow-ups' curvature measures on three tasks.

Declared before the binary's first run. The numbers are read from summary.json
(`experiments.curvature_spectra`): per task (``linear``, ``cnn``,
``transformer``) and run (GD, Adam) the measures at every record (index 0 =
initialisation, the same parameters for both runs), and ``class_sweep`` (the
off-diagonal share of the linear model at initialisation for growing C).
"""

import numpy as np

from experiments.claims import Claim, Experiment, Figure, at_least, at_most

TASKS = ("linear", "cnn", "transformer")


def _by_optimizer(run, task: str) -> dict:
  """``{"gd": RunSummary, "adam": RunSummary}`` of ``task`` (the first run of each)."""
  out = {}
  for name, entry in run.runs(task).items():
    out.setdefault(name.split("+")[0].split("@")[0], entry)
  return out


def _offdiag_falls_with_classes(run):
  sweep = run.summary["class_sweep"]
  c, share = np.asarray(sweep["num_classes"], float), np.asarray(sweep["offdiag_share"], float)
  slope = np.polyfit(np.log(c), np.log(share), 1)[0]
  return {"share_largest_over_smallest_C": float(share[-1] / share[0]),
          "num_increases": float(np.sum(np.diff(share) > 0)),
          "loglog_slope": float(slope)}


def _transformer_more_heterogeneous(run):
  cnn = _by_optimizer(run, "cnn")["gd"].heterogeneity[0]
  transformer = _by_optimizer(run, "transformer")["gd"].heterogeneity[0]
  return {"transformer_over_cnn_heterogeneity_init": transformer / cnn}


def _gap_follows_heterogeneity(run):
  gap = {task: _by_optimizer(run, task)["gd"].final_loss / _by_optimizer(run, task)["adam"]
         .final_loss for task in ("cnn", "transformer")}
  return {"transformer_gap_over_cnn_gap": gap["transformer"] / gap["cnn"],
          "transformer_gd_over_adam_final_loss": gap["transformer"]}


def _one_one_ratio(run):
  out = {}
  for task in ("linear", "transformer"):
    runs = _by_optimizer(run, task)
    out[f"{task}_median_one_one_ratio_init"] = runs["gd"].one_one_ratio_median[0]
    out[f"{task}_gd_over_adam_final_loss"] = runs["gd"].final_loss / runs["adam"].final_loss
  return out


EXPERIMENT = Experiment(
    binary="curvature_spectra",
    cpu_runs={"quick": 560.0},  # measured: 9 min 20 s wall, 4.8 min CPU, shared machine at load 5-7
    paper_runs=("paper",),
    notes="per-block Hessian spectra, block heterogeneity, off-diagonal share, (1,1)-norm "
          "along GD and Adam on the linear task, the MNIST+Barcoded CNN and the TinyPTB "
          "transformer",
    test_flags=("--config.m=3", "--config.sweep_m=2,3", "--config.num_bits=1",
                "--config.copies=1", "--config.plain_per_digit=2", "--config.cnn_features=2,2",
                "--config.num_windows=4", "--config.d_model=8", "--config.mlp_dim=8",
                "--config.linear_steps=4", "--config.cnn_steps=4", "--config.transformer_steps=4",
                "--config.log_every=2", "--config.num_records=2", "--config.exponents=-1,0",
                "--config.num_probes=1", "--config.lanczos_steps=2", "--config.top_k=1",
                "--config.one_one_columns=1", "--config.frobenius_probes=1"),
    kill_after=2,  # after the linear task's two sweep rounds (GD, Adam), before its records
    slow_test=True,  # three tasks, each compiling its measures: 2 min of CPU at test_flags
    figures=(
        Figure("ZH", "abstract", "quick", "measures_linear.png",
               "Linear model on heavy-tailed labels: per-group loss of GD and Adam beside "
               "the class blocks' heterogeneity, off-diagonal share and (1,1)-norm ratio"),
        Figure("ZH", "abstract", "quick", "measures_cnn.png",
               "The same for the CNN on MNIST+Barcoded (blocks: the weight arrays)"),
        Figure("ZH", "abstract", "quick", "measures_transformer.png",
               "The same for the 1-layer transformer on TinyPTB (blocks: the weight arrays)"),
        Figure("D", "abstract", "quick", "offdiag_vs_classes.png",
               "Off-diagonal share of the Hessian's Frobenius mass between class blocks of "
               "the linear model at initialisation, against the number of classes C"),
    ),
    claims=(
        Claim("D", "abstract", "As the number of classes C grows the Hessian of the "
              "cross-entropy becomes block-diagonal: the off-diagonal share of its Frobenius "
              "mass between class blocks falls (our criteria: halved over the sweep, never rising, "
              "a log-log slope in C of at most -1/2).", "quick",
              _offdiag_falls_with_classes,
              (at_most("share_largest_over_smallest_C", 0.5), at_most("num_increases", 0.0),
               at_most("loglog_slope", -0.5))),
        Claim("ZH", "abstract", "The spectra of a transformer's parameter blocks differ more "
              "from each other (block heterogeneity, the mean pairwise JS distance of their "
              "densities at initialisation) than a CNN's.", "quick",
              _transformer_more_heterogeneous,
              (at_least("transformer_over_cnn_heterogeneity_init", 1.0),)),
        Claim("ZH", "abstract", "Where the blocks are heterogeneous (the transformer) GD falls "
              "further behind Adam than where they are not (the CNN).", "quick",
              _gap_follows_heterogeneity,
              (at_least("transformer_gap_over_cnn_gap", 1.0),
               at_least("transformer_gd_over_adam_final_loss", 1.0))),
        Claim("X", "abstract", "Adam beats GD where the Hessian's (1,1)-norm is small against "
              "n_b times its spectral norm (median over blocks at initialisation below 1), "
              "on the linear heavy-tailed task and on the transformer.", "quick",
              _one_one_ratio,
              (at_most("linear_median_one_one_ratio_init", 1.0),
               at_most("transformer_median_one_one_ratio_init", 1.0),
               at_least("linear_gd_over_adam_final_loss", 1.0),
               at_least("transformer_gd_over_adam_final_loss", 1.0))),
    ),
)
