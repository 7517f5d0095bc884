"""Claims of `experiments.curvature_cnn`: paper H Fig 24, a CNN on MNIST+Barcoded."""

from experiments.claims import Claim, Experiment, Figure, at_least


def _adam(run):
  spearman = run.summary["spearman"]
  return {"spearman_adam_end": spearman["adam_end"],
          "gain_over_init": spearman["adam_end"] - spearman["adam_init"]}


def _frequent_classes_curvier(run):
  adam = next(v for k, v in run.runs("runs").items() if k.startswith("adam"))
  plain, barcoded = adam.final_group_mean_trace[:2]
  return {"plain_over_barcoded_mean_trace": plain / barcoded,
          "diag_to_offdiag_trace_ratio": run.summary["diag_to_offdiag_trace_ratio"]}


EXPERIMENT = Experiment(
    binary="curvature_cnn",
    cpu_runs={"quick": 80.0},
    paper_runs=("paper",),
    notes="CNN on MNIST+Barcoded, Hutchinson traces",
    test_flags=("--config.num_bits=1", "--config.copies=2", "--config.plain_per_digit=4",
                "--config.cnn_features=2,4", "--config.num_steps=10", "--config.log_every=5",
                "--config.num_probes=4", "--config.snapshot_steps=0,10", "--config.map_classes=4"),
    kill_after=1,  # after the Adam run is saved, before GD's
    slow_test=True,  # resume with -m slow: heavy_tailed_linear checks saved-run resume in CI
    figures=(
        Figure("H", "Fig 24", "quick", "fig24_adam_scatter.png",
               "CNN on MNIST+Barcoded (4-bit barcodes, CPU scale): per-class gradient norm vs "
               "Hessian trace (Hutchinson) of the last layer along Adam"),
        Figure("H", "Fig 24", "quick", "fig24_gd_scatter.png", "The same along GD"),
    ),
    claims=(
        Claim("H", "Fig 24", "On a CNN trained on MNIST+Barcoded the per-class gradient norm and "
              "Hessian trace of the last layer become correlated along Adam, as on the linear "
              "model.", "quick", _adam,
              (at_least("spearman_adam_end", 0.8), at_least("gain_over_init", 0.3))),
        Claim("H", "Fig 24", "Frequent classes (plain digits) carry more curvature than the rare "
              "barcoded ones, and the Hessian is dominated by its diagonal blocks.", "quick",
              _frequent_classes_curvier,
              (at_least("plain_over_barcoded_mean_trace", 1.5),
               at_least("diag_to_offdiag_trace_ratio", 10.0))),
    ),
)
