"""Claims of `experiments.transformer_ptb`: paper H Figs 17, 18, 22 (PTB panel) and 26 at CPU
scale; Figs 20, 1 and 10 at paper scale only."""

from experiments.claims import Claim, Experiment, Figure, at_least, at_most

_CPU_SCALE = ("CPU scale: the model at width 32 (2 heads, MLP 32), a few windows with the "
              "vocabulary compacted to the types they contain, one seed, step sizes tuned on "
              "10^-4..10^1")


def _separation(gd_name, adam_name):
  """GD's loss grows from the frequent to the rare groups; Adam fits every group."""

  def measure(run):
    gd, adam = run.runs()[gd_name], run.runs()[adam_name]
    return {"gd_rarest": gd.rarest_loss, "gd_most_frequent": gd.frequent_loss,
            "adam_rarest": adam.rarest_loss,
            "gd_rarest_over_adam_rarest": gd.rarest_loss / adam.rarest_loss,
            "gd_rarest_over_gd_most_frequent": gd.rarest_loss / gd.frequent_loss,
            "gd_rarest_final_over_initial": gd.rarest_loss / gd.initial_group_losses[-1],
            "adam_rarest_final_over_initial": adam.rarest_loss / adam.initial_group_losses[-1]}

  return measure


_SEPARATION_CRITERIA = (at_least("gd_rarest_over_adam_rarest", 5.0),
                        at_least("gd_rarest_over_gd_most_frequent", 1.5),
                        at_most("adam_rarest_final_over_initial", 0.2))


def _sqrt_reweighting(run):
  plain, sqrt = run.runs()["gd+m"], run.runs()["gd+m@inverse_sqrt"]
  return {"sqrt_reweighted_rarest": sqrt.rarest_loss,
          "plain_sgd_rarest": plain.rarest_loss,
          "sqrt_over_plain_rarest": sqrt.rarest_loss / plain.rarest_loss,
          "sqrt_over_plain_overall": sqrt.final_loss / plain.final_loss}


def _inverse_reweighting(run):
  plain, inverse = run.runs()["gd+m"], run.runs()["gd+m@inverse"]
  return {"inverse_reweighted_overall": inverse.final_loss,
          "plain_sgd_overall": plain.final_loss,
          "inverse_over_plain_overall": inverse.final_loss / plain.final_loss}


def _curvature(run):
  adam = run.runs()["adam+m"].curvature["spearman"]
  gd = run.runs()["gd+m"].curvature["spearman"]
  return {"spearman_adam_init": adam[0], "spearman_adam_end": adam[-1],
          "adam_gain_over_init": adam[-1] - adam[0],
          "spearman_gd_end": gd[-1], "gd_gain_over_init": gd[-1] - gd[0]}


EXPERIMENT = Experiment(
    binary="transformer_ptb",
    cpu_runs={"quick": 80.0, "quick_fig17": 150.0, "quick_fig22": 320.0, "quick_fig26": 220.0},
    paper_runs=("fig17", "fig18", "fig20", "fig22", "fig26", "gpt2_wikitext103"),
    notes="Figs 1 and 10: GPT2-Small on WikiText-103",
    # 4 saved units: the two tuning rounds, then the two curvature runs; killed after the
    # first curvature run, so the rerun restores both rounds and one curvature run.
    test_flags=("--config.preset=quick_fig26", "--config.corpus=ptb", "--config.num_windows=8",
                "--config.seq_len=6", "--config.batch_size=4", "--config.num_steps=4",
                "--config.log_every=2", "--config.runs=gd+m,adam+m@inverse_sqrt",
                "--config.exponents=-2", "--config.num_groups=3", "--config.valid=True",
                "--config.d_model=8", "--config.mlp_dim=8", "--config.curvature_windows=3",
                "--config.num_probes=2"),
    kill_after=3,
    slow_test=True,
    figures=(
        Figure("H", "Fig 18", "quick", "overview.png",
               "One-layer transformer trained full batch on TinyPTB with GD and Adam: class "
               "distribution in ~10% frequency groups, overall training loss, per-group loss. "
               + _CPU_SCALE + "; 48 windows, 100 steps (paper: width 1,200, all 2,095 "
               "windows, 3 seeds, 1,000 steps)"),
        Figure("H", "Fig 17", "quick_fig17", "overview.png",
               "Two-layer transformer on PTB with mini-batch SGD+m and Adam+m: class "
               "distribution, overall and per-group training loss. " + _CPU_SCALE +
               "; 128 windows, batches of 32 windows, 300 steps (paper: width 1,000, all of "
               "PTB, batches of 512, 5,000 steps)"),
        Figure("H", "Fig 22", "quick_fig22", "all_runs.png",
               "PTB panel of Fig 22: unweighted per-group training loss of SGD+m, Adam+m and "
               "SGD+m on the 1/sqrt(pi_k)- and 1/pi_k-reweighted losses, on the quick_fig17 "
               "problem (CPU scale)"),
        Figure("H", "Fig 26", "quick_fig26", "curvature_adam+m.png",
               "Per-class gradient norm vs Hessian trace (Hutchinson, 16 probes) of the "
               "classifier blocks along Adam+m on the quick_fig17 problem, on 64 training "
               "windows every 20 steps (CPU scale)"),
        Figure("H", "Fig 26", "quick_fig26", "curvature_gd+m.png",
               "The same diagnostics along SGD+m"),
        Figure("H", "Fig 20", "fig20", "all_runs.png",
               "All eight runs (GD, normalized GD, sign descent, Adam, with and without "
               "momentum) training the whole one-layer transformer on TinyPTB; paper scale "
               "only (GPU)"),
    ),
    claims=(
        Claim("H", "Fig 18", "With deterministic (full-batch) updates GD's loss grows from the "
              "frequent to the rare token groups (rarest at least 1.5x the most frequent) and "
              "ends at least 5x Adam's on the rarest group, while Adam brings every group "
              "below a fifth of its initial loss.", "quick", _separation("gd", "adam"),
              _SEPARATION_CRITERIA),
        Claim("H", "Fig 17", "With mini-batches on PTB, SGD (with momentum) lags on the rare "
              "tokens as in Fig 1: its rarest-group loss is at least 1.5x its most-frequent "
              "group's and 5x Adam's, while Adam brings every group below a fifth of its "
              "initial loss.", "quick_fig17", _separation("gd+m", "adam+m"),
              _SEPARATION_CRITERIA),
        Claim("H", "Fig 22", "Reweighting the loss by 1/sqrt(pi_k) improves SGD on the "
              "low-frequency tokens: its unweighted rarest-group loss is at most half of plain "
              "SGD's.", "quick_fig22", _sqrt_reweighting,
              (at_most("sqrt_over_plain_rarest", 0.5),)),
        Claim("H", "Fig 22", "Reweighting by 1/pi_k optimizes a different objective and on PTB "
              "ends with a higher unweighted training loss than plain SGD.", "quick_fig22",
              _inverse_reweighting, (at_least("inverse_over_plain_overall", 1.0),)),
        Claim("H", "Fig 26", "Along Adam the classifier blocks' gradient norm and Hessian trace "
              "become strongly correlated during training (Spearman >= 0.9 at the end, >= 0.3 "
              "above its value at initialisation); along SGD the correlation also emerges.",
              "quick_fig26", _curvature,
              (at_least("spearman_adam_end", 0.9), at_least("adam_gain_over_init", 0.3),
               at_least("gd_gain_over_init", 0.2))),
    ),
    gpu_only=("H Fig 1", "H Fig 10", "H Fig 20"),
)
