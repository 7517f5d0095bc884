"""Claims of `experiments.bigram_scaling`: Kunstner & Bach's rates on the linear bigram model.

Declared before the binary's first run. The sign-descent criterion concerns the
"reach and stay below eps" count of `imbalance_jax.theory.bigram` (a pilot NumPy
computation before this declaration found that sign descent's *first hitting*
time is dimension-free on this problem, because the tail coordinates sit on 0 at
every even step; docs/theory.md says so).
"""

from experiments.claims import Claim, Experiment, Figure, at_least, at_most


def _exponents(run):
  fits = run.summary["exponents"]
  gd = {float(a): fit["slope"] for a, fit in fits["gd"].items()}
  sign = {float(a): fit["slope"] for a, fit in fits["sign_descent"].items()}
  others = [v for a, v in gd.items() if a != 1.0]
  return {"gd_exponent_alpha1": gd[1.0],
          "gd_alpha1_margin": gd[1.0] - max(others),  # >= 0: alpha = 1 is the largest
          "gd_exponent_alpha2": gd[2.0],
          "sign_descent_exponent_alpha1": sign[1.0]}


EXPERIMENT = Experiment(
    binary="bigram_scaling",
    cpu_runs={"quick": 125.0},
    paper_runs=("paper",),
    notes="linear bigram under Zipf(alpha): iterations to eps vs vocabulary size, GD and sign "
          "descent",
    test_flags=("--config.sizes=20,40,80", "--config.alphas=1.0,2.0",
                "--config.sign_max_steps=200", "--config.num_factors=5"),
    kill_after=1,
    slow_test=True,  # resumes through experiment.Progress, as theory_figures does in CI
    figures=(
        Figure("KB", "Fig 1", "quick", "bigram_scaling.png",
               "Iterations to relative error eps vs vocabulary size d per Zipf exponent alpha "
               "(GD at step 1/pi_1, sign descent at its best constant step), and the fitted "
               "exponent of d against alpha beside the rate curves"),
    ),
    claims=(
        Claim("KB", "Fig 1", "alpha = 1 (Zipf) is the worst case for gradient descent: the "
              "number of iterations to a small relative error grows almost linearly with d, "
              "faster than at any other alpha.", "quick", _exponents,
              (at_least("gd_alpha1_margin", 0.0), at_least("gd_exponent_alpha1", 0.8),
               at_most("gd_exponent_alpha1", 1.2))),
        Claim("KB", "Fig 1", "Under Zipf's law (alpha = 1) sign descent's iterations scale with "
              "the square root of d.", "quick", _exponents,
              (at_least("sign_descent_exponent_alpha1", 0.4),
               at_most("sign_descent_exponent_alpha1", 0.6))),
        Claim("KB", "Sec 3", "For alpha > 1 the problem is effectively finite-dimensional for "
              "gradient descent: its iteration count barely grows with d.", "quick", _exponents,
              (at_most("gd_exponent_alpha2", 0.3),)),
    ),
)
