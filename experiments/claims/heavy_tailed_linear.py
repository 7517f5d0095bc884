"""Claims of `experiments.heavy_tailed_linear`: GD vs sign-like methods on heavy-tailed labels."""

from experiments.claims import Claim, Experiment, Figure, at_least, at_most


def _gd_vs_adam(run):
  gd, adam = run.runs()["gd"], run.runs()["adam"]
  return {"gd_rare_over_adam_rare": gd.rarest_loss / adam.rarest_loss,
          "gd_rare_over_gd_frequent": gd.rarest_loss / gd.frequent_loss,
          "adam_rare_over_adam_frequent": adam.rarest_loss / adam.frequent_loss}


def _with_momentum(run):
  runs = run.runs()
  gd_rare = runs["gd+m"].rarest_loss
  return {"gd+m_rare_over_adam+m_rare": gd_rare / runs["adam+m"].rarest_loss,
          "gd+m_rare_over_sign_descent+m_rare":
              gd_rare / max(runs["sign_descent+m"].rarest_loss, 1e-12)}


def _reweighting(run):
  runs = run.runs()
  plain = runs["gd+m"].rarest_loss
  return {"gd+m_rare_over_gd+m@inverse_rare": plain / runs["gd+m@inverse"].rarest_loss,
          "gd+m_rare_over_gd+m@inverse_sqrt_rare": plain / runs["gd+m@inverse_sqrt"].rarest_loss}


def _horizons(run):
  gd = run.runs()["gd"]
  return {"gd_rare_final": gd.rarest_loss, "gd_frequent_final": gd.frequent_loss}


EXPERIMENT = Experiment(
    binary="heavy_tailed_linear",
    cpu_runs={"quick": 320.0, "fig22": 190.0, "fig16": 170.0},
    paper_runs=("paper", "fig16", "fig22"),
    notes="linear model; paper H's Fig. 15 variant: `--config.input_dist=normal_0`",
    # After 2 of the 4 segments of the only round (4 diverged members dropped).
    test_flags=("--config.m=3", "--config.num_seeds=2", "--config.num_steps=40",
                "--config.log_every=5", "--config.segment_steps=10", "--config.refine_rounds=0",
                "--config.num_groups=3", "--config.runs=adam+m"),
    kill_after=2,
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
