"""Claims of `experiments.heavy_tailed_linear`: GD vs sign-like methods on heavy-tailed labels."""

from experiments.claims import Claim, Experiment, Figure, at_least, at_most, group_losses


def _gd_vs_adam(run):
  gd_frequent, gd_rare = group_losses(run.summary["gd"])
  adam_frequent, adam_rare = group_losses(run.summary["adam"])
  return {"gd_rare_over_adam_rare": gd_rare / adam_rare,
          "gd_rare_over_gd_frequent": gd_rare / gd_frequent,
          "adam_rare_over_adam_frequent": adam_rare / adam_frequent}


def _with_momentum(run):
  gd_rare = group_losses(run.summary["gd+m"])[1]
  return {"gd+m_rare_over_adam+m_rare": gd_rare / group_losses(run.summary["adam+m"])[1],
          "gd+m_rare_over_sign_descent+m_rare":
              gd_rare / max(group_losses(run.summary["sign_descent+m"])[1], 1e-12)}


def _reweighting(run):
  plain = group_losses(run.summary["gd+m"])[1]
  return {"gd+m_rare_over_gd+m@inverse_rare": plain / group_losses(run.summary["gd+m@inverse"])[1],
          "gd+m_rare_over_gd+m@inverse_sqrt_rare":
              plain / group_losses(run.summary["gd+m@inverse_sqrt"])[1]}


def _horizons(run):
  frequent, rare = group_losses(run.summary["gd"])
  return {"gd_rare_final": rare, "gd_frequent_final": frequent}


EXPERIMENT = Experiment(
    binary="heavy_tailed_linear",
    cpu_runs={"quick": 320.0, "fig22": 190.0, "fig16": 170.0},
    paper_runs=("paper", "fig16", "fig22"),
    figures=(
        Figure("H", "Fig 4", "quick", "overview.png",
               "Linear softmax model on Random Heavy-Tailed Labels (m=7, 127 classes): class "
               "frequencies and per-group training loss of GD and Adam at tuned step sizes"),
        Figure("H", "Fig 19", "quick", "all_runs.png",
               "All eight runs (GD, normalized GD, sign descent, Adam; with and without "
               "momentum), per-group training loss"),
        Figure("H", "Fig 16", "fig16", "horizons.png",
               "GD at one step size for 10,000 steps: the per-group losses seen at growing "
               "horizons (every group's loss eventually falls)"),
        Figure("H", "Fig 22", "fig22", "all_runs.png",
               "Reweighted losses (1/pi_k and 1/sqrt(pi_k)) with GD+momentum vs GD and Adam"),
    ),
    claims=(
        Claim("H", "Fig 4", "On heavy-tailed labels GD makes little progress on rare classes "
              "while Adam fits them; GD's loss is ordered by class frequency.", "quick",
              _gd_vs_adam,
              (at_least("gd_rare_over_adam_rare", 5.0), at_least("gd_rare_over_gd_frequent", 3.0),
               at_most("adam_rare_over_adam_frequent", 1.0))),
        Claim("H", "Fig 19", "With momentum too, sign descent and Adam end far lower than GD "
              "on the rarest classes.", "quick", _with_momentum,
              (at_least("gd+m_rare_over_adam+m_rare", 10.0),
               at_least("gd+m_rare_over_sign_descent+m_rare", 10.0))),
        Claim("H", "Fig 16", "GD is not stuck: run long enough, its loss falls on every group, "
              "the rare groups last.", "fig16", _horizons,
              (at_most("gd_rare_final", 2.0), at_most("gd_frequent_final", 0.5))),
        Claim("H", "Fig 22", "Reweighting the loss by 1/pi_k or 1/sqrt(pi_k) lets GD make "
              "progress on the rare classes.", "fig22", _reweighting,
              (at_least("gd+m_rare_over_gd+m@inverse_rare", 2.0),
               at_least("gd+m_rare_over_gd+m@inverse_sqrt_rare", 1.5))),
    ),
)
