"""Claims of `experiments.transformer_last_layer`: paper H Fig 5, GD vs Adam vs normalized GD
vs sign descent on the last layer of a frozen one-layer transformer (TinyPTB)."""

from experiments.claims import Claim, Experiment, Figure, at_least, at_most


def _rare(run, name):
  """Final loss of ``name`` on the rarest ~10% of the tokens."""
  return run.runs()[name].rarest_loss


def _gd_vs_adam(run):
  gd, adam = run.runs()["gd"], run.runs()["adam"]
  return {"gd_rarest_final": gd.rarest_loss,
          "gd_rarest_initial": gd.initial_group_losses[-1],
          "gd_rarest_final_over_initial": gd.rarest_loss / gd.initial_group_losses[-1],
          "adam_rarest_final_over_initial": adam.rarest_loss / adam.initial_group_losses[-1],
          "gd_rarest_over_adam_rarest": gd.rarest_loss / adam.rarest_loss}


def _direction_vs_magnitude(run):
  numbers = {}
  for m in ("", "+m"):
    sign, adam, norm = (_rare(run, f"{name}{m}")
                        for name in ("sign_descent", "adam", "normalized_gd"))
    numbers[f"sign{m}_over_adam{m}_rarest"] = sign / adam
    numbers[f"normalized_gd{m}_over_sign{m}_rarest"] = norm / sign
  ratios = [numbers["sign_over_adam_rarest"], numbers["sign+m_over_adam+m_rarest"]]
  return {**numbers,
          "sign_vs_adam_max_factor": max(max(r, 1 / r) for r in ratios),
          "normalized_gd_over_sign_min": min(numbers["normalized_gd_over_sign_rarest"],
                                             numbers["normalized_gd+m_over_sign+m_rarest"])}


EXPERIMENT = Experiment(
    binary="transformer_last_layer",
    cpu_runs={"quick": 200.0},
    paper_runs=("paper",),
    notes="last layer of a 1-layer transformer, all eight runs",
    # 2 saved units (one tuning round per run): killed after gd's, before adam's.
    test_flags=("--config.corpus=tinyptb", "--config.num_windows=10", "--config.seq_len=6",
                "--config.d_model=8", "--config.num_steps=10", "--config.log_every=5",
                "--config.runs=gd,adam", "--config.exponents=-1,0", "--config.num_groups=3",
                "--config.num_seeds=2"),
    kill_after=1,
    slow_test=True,  # store + sweep segments, as heavy_tailed_linear does in CI
    figures=(
        Figure("H", "Fig 5", "quick", "overview.png",
               "Last layer of a frozen simplified one-layer transformer on TinyPTB, full batch: "
               "class distribution in ~10% frequency groups, overall training loss, per-group "
               "loss of GD+m and Adam+m. CPU scale: 64 windows of 35 tokens (vocabulary "
               "compacted to the types they contain), width 32, one seed, 100 steps, step "
               "sizes tuned on 10^-4..10^1 (paper: 1,024 windows, width 1,200, 3 seeds, "
               "1,000 steps)"),
        Figure("H", "Fig 5", "quick", "all_runs.png",
               "Per-group training loss of all eight runs (GD, normalized GD, sign descent, "
               "Adam, each with and without momentum), same CPU-scale setting"),
    ),
    claims=(
        Claim("H", "Fig 5", "GD makes almost no progress on the rarest tokens (their loss ends "
              "above 90% of its initial value) while Adam more than halves it; GD's "
              "rarest-group loss ends at least 3x Adam's.", "quick", _gd_vs_adam,
              (at_least("gd_rarest_final_over_initial", 0.9),
               at_most("adam_rarest_final_over_initial", 0.5),
               at_least("gd_rarest_over_adam_rarest", 3.0))),
        Claim("H", "Fig 5", "Sign descent recovers Adam's behaviour on the rare tokens (with and "
              "without momentum, rarest-group losses within 2x of each other), while changing "
              "only the magnitude of the update (normalized GD) leaves the rarest-group loss at "
              "least 2x higher than sign descent's.", "quick", _direction_vs_magnitude,
              (at_most("sign_vs_adam_max_factor", 2.0),
               at_least("normalized_gd_over_sign_min", 2.0))),
    ),
)
