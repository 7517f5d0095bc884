"""Claims of `experiments.unigram_scaling`: paper S's rates as the vocabulary grows."""

from experiments.claims import Claim, Experiment, Figure, at_least, at_most


def _slopes(run):
  slopes = run.summary["slopes"]
  return {"normalized_gd_slope": slopes["normalized_gd"]["slope"],
          "sign_descent_slope": slopes["sign_descent"]["slope"]}


EXPERIMENT = Experiment(
    binary="unigram_scaling",
    cpu_runs={"quick": 310.0},
    paper_runs=("paper",),
    notes="iterations to eps vs vocabulary size",
    # Killed after d=20; d=60 then searches around d=20's restored best step size.
    test_flags=("--config.sizes=20,60", "--config.methods=gd", "--config.eps=0.05",
                "--config.max_steps=100", "--config.segment_steps=50"),
    kill_after=1,
    slow_test=True,  # resumes through experiment.Progress, as theory_figures does in CI
    figures=(
        Figure("S", "rates", "quick", "unigram_scaling.png",
               "Iterations to reach eps vs vocabulary size d (Zipf frequencies), each method at "
               "its best step size and at the theory step size"),
    ),
    claims=(
        Claim("S", "rates", "Sign descent needs O(log(d)^2) iterations to reach eps while "
              "normalized GD needs O(d): on a log-log plot against d the iteration counts of "
              "normalized GD grow with a slope near 1 and those of sign descent stay nearly flat.",
              "quick", _slopes,
              (at_least("normalized_gd_slope", 0.7), at_most("sign_descent_slope", 0.3))),
    ),
)
