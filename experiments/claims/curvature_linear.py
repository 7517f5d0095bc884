"""Claims of `experiments.curvature_linear`: paper H's gradient / Hessian block diagnostics."""

from experiments.claims import Claim, Experiment, Figure, at_least, at_most

EXPERIMENT = Experiment(
    binary="curvature_linear",
    cpu_runs={"quick": 30.0},
    paper_runs=("paper",),
    notes="exact block traces",
    test_flags=("--config.m=3", "--config.num_steps=20", "--config.log_every=5",
                "--config.snapshot_steps=0,5,20", "--config.map_classes=4", "--config.map_dims=2",
                "--config.num_groups=3"),
    kill_after=1,  # after the Adam run is saved, before GD's
    slow_test=True,  # resumes through its ResultStore, as heavy_tailed_linear does in CI
    figures=(
        Figure("H", "Fig 7", "quick", "fig07_fig23b_adam_scatter.png",
               "Per-class gradient norm vs Hessian trace along Adam (linear model)"),
        Figure("H", "Fig 8", "quick", "fig08_block_traces_log_uniform.png",
               "Block traces |Tr(H_kk')| on 40 log-uniformly sampled classes"),
        Figure("H", "Fig 23", "quick", "fig23a_gd_scatter.png",
               "Per-class gradient norm vs Hessian trace along GD"),
        Figure("H", "Fig 23", "quick", "fig23c_group_probability.png",
               "Mean true-class probability per frequency group, GD and Adam"),
        Figure("H", "Fig 27", "quick", "fig27_negated_path_scatter.png",
               "The same diagnostics along -W_t (no frequency-driven correlation)"),
        Figure("H", "Fig 28", "quick", "fig28_hessian_entries_log_uniform.png",
               "Entrywise Hessian magnitudes on sampled classes and input dimensions"),
        Figure("H", "Prop 2", "quick", "prop2_along_adam.png",
               "Prop. 2's predicted traces and ratios vs the measured ones along Adam"),
    ),
    claims=(
        Claim("H", "Fig 7", "Along Adam the per-class gradient norm and Hessian trace become "
              "strongly correlated across classes.", "quick",
              lambda run: {"spearman_adam_end": run.summary["spearman"]["adam_end"],
                           "gain_over_init": run.summary["spearman"]["adam_end"]
                           - run.summary["spearman"]["adam_init"]},
              (at_least("spearman_adam_end", 0.9), at_least("gain_over_init", 0.3))),
        Claim("H", "Fig 8", "The Hessian is dominated by its diagonal (same-class) blocks.",
              "quick", lambda run: {"diag_to_offdiag_trace_ratio":
                                    run.summary["diag_to_offdiag_trace_ratio"]},
              (at_least("diag_to_offdiag_trace_ratio", 10.0),)),
        Claim("H", "Fig 27", "Along -W_t, which is not driven by class frequency, there is no "
              "such positive correlation.", "quick",
              lambda run: {"spearman_negated_path": run.summary["spearman"]["negated_path_end"],
                           "spearman_adam_end": run.summary["spearman"]["adam_end"]},
              (at_most("spearman_negated_path", 0.5),)),
        Claim("H", "Prop 2", "Once classes are fitted, the trace predicted by Prop. 2 orders the "
              "classes like the measured trace.", "quick",
              lambda run: {"trace_spearman_end": list(run.summary["prop2_along_adam"].values())[-1]
                           ["trace_spearman"]},
              (at_least("trace_spearman_end", 0.95),)),
    ),
)
