"""Claims of `experiments.theory_figures`: closed forms of papers H, S and R vs simulation."""

from experiments.claims import Claim, Experiment, Figure, at_least, at_most


def _quadratic(run):
  q = run.summary["quadratic"]
  return {"gd_rel_err": q["gd_max_rel_err_closed_form_vs_optax"],
          "sign_abs_err": q["sign_max_abs_err_closed_form_vs_optax"]}


def _simple_setting(run):
  s = run.summary["simple_setting"]
  gd, sign, pi = s["time_to_loss_0.1"]["gd"], s["time_to_loss_0.1"]["sign"], s["pi"]
  return {"gd_time_ratio_over_pi_ratio": (gd[-1] / gd[0]) / (pi[0] / pi[-1]),
          "sign_time_ratio": sign[-1] / sign[0],
          "sign_rel_err_vs_corrected_lemma7": s["max_rel_err_sign_vs_closed_form"]}


def _smoothness(run):
  rows = run.summary["unigram_smoothness"]["rows"]
  return {"l2_iterations_growth":
              rows[-1]["theory_iterations_l2"] / rows[0]["theory_iterations_l2"],
          "linf_iterations_growth":
              rows[-1]["theory_iterations_linf"] / rows[0]["theory_iterations_linf"],
          "vocabulary_growth": rows[-1]["d"] / rows[0]["d"]}


def _ufm_times(run):
  times = run.summary["ufm_dynamics"]
  erm, rw = times["erm"]["half_times_over_delta"], times["reweighted"]["half_times_over_delta"]
  return {"erm_min_min_over_maj_maj": erm["min_min"] / erm["maj_maj"],
          "reweighted_slowest_over_fastest": max(rw.values()) / min(rw.values())}


def _ufm_confusion(run):
  c = run.summary["ufm_confusion"]
  return {"erm_minority_over_majority_time":
              c["erm"]["minority_learned_at"] / c["erm"]["majority_learned_at"],
          "reweighted_minority_over_majority_time":
              c["reweighted"]["minority_learned_at"] / c["reweighted"]["majority_learned_at"]}


def _reweighted_limit(run):
  t = run.summary["ufm_learning_times"]
  return {"max_reweighted_spread_limit": max(abs(x) for x in t["spread_limit_reweighted"]),
          "max_erm_spread_limit": max(t["spread_limit_erm"])}


EXPERIMENT = Experiment(
    binary="theory_figures",
    cpu_runs={"quick": 30.0},
    paper_runs=("paper",),
    notes="closed forms over simulations; R Fig 1 is a small-scale UFM analogue",
    # Killed after the first of the two figures is saved.
    test_flags=("--config.figures=quadratic,ufm_spectrum", "--config.quadratic_classes=10",
                "--config.quadratic_steps=20", "--config.ufm_R=2"),
    kill_after=1,
    figures=(
        Figure("H", "Fig 6", "quick", "quadratic.png",
               "Weighted quadratic: GD per class (closed form and optax) vs sign descent"),
        Figure("H", "Thm 3", "quick", "simple_setting.png",
               "Simple imbalanced setting: per-class loss of GD and sign descent, closed forms "
               "over simulations (Lemma 7 as corrected)"),
        Figure("S", "smoothness", "quick", "unigram_smoothness.png",
               "Softmax unigram model: l2 vs l-infinity smoothness and distance as d grows"),
        Figure("R", "Fig 2", "quick", "ufm_spectrum.png",
               "UFM with STEP labels: the three singular values (maj-maj, maj-min, min-min)"),
        Figure("R", "Fig 5", "quick", "ufm_dynamics.png",
               "UFM dynamics per mode, ERM vs reweighted, exact curves over GD"),
        Figure("R", "Fig 1", "quick", "ufm_confusion.png",
               "Small-scale analogue of Fig 1/4: confusion along training, ERM vs reweighted"),
        Figure("R", "Fig 6", "quick", "ufm_learning_times.png",
               "Learning times and their spread vs R, with the printed and corrected formulas"),
    ),
    claims=(
        Claim("H", "Fig 6", "On the weighted quadratic the closed forms of GD and sign descent "
              "match the optimizers.", "quick", _quadratic,
              (at_most("gd_rel_err", 1e-6), at_most("sign_abs_err", 1e-6))),
        Claim("H", "Thm 3", "GD needs time proportional to 1/pi_k to fit class k; sign descent "
              "fits every class at the same rate (Lemma 7, with its rate corrected to e^-2t).",
              "quick", _simple_setting,
              (at_least("gd_time_ratio_over_pi_ratio", 0.8),
               at_most("gd_time_ratio_over_pi_ratio", 1.25), at_most("sign_time_ratio", 1.01),
               at_most("sign_rel_err_vs_corrected_lemma7", 1e-6))),
        Claim("S", "smoothness", "Under Zipf frequencies the l-infinity smoothness stays bounded "
              "while l2 geometry degrades, so the sign-descent iteration bound grows far more "
              "slowly with the vocabulary size d than the GD bound.", "quick", _smoothness,
              (at_least("l2_iterations_growth", 100.0), at_most("linf_iterations_growth", 100.0))),
        Claim("R", "Fig 5", "Under ERM the minority-minority mode is learned last, much later "
              "than the majority mode; reweighting with gamma = 1/2 learns all modes at nearly "
              "the same time.", "quick", _ufm_times,
              (at_least("erm_min_min_over_maj_maj", 2.0),
               at_most("reweighted_slowest_over_fastest", 1.25))),
        Claim("R", "Fig 1", "Under ERM minority classes are classified correctly later than "
              "majority classes; reweighting brings them forward.", "quick", _ufm_confusion,
              (at_least("erm_minority_over_majority_time", 2.0),
               at_most("reweighted_minority_over_majority_time", 1.25))),
        Claim("R", "Fig 6", "Reweighting bounds the spread of learning times (our derivation: "
              "in the vanishing-init limit it removes the spread entirely; see the corrections).",
              "quick", _reweighted_limit,
              (at_most("max_reweighted_spread_limit", 1e-9),
               at_least("max_erm_spread_limit", 1.0))),
    ),
)
