"""Closed forms from papers H, S and R, each with a simulator it is tested against.

* `quadratic`: paper H's weighted quadratic (Sec. 3.1, Fig. 6).
* `simple_setting`: paper H's one-hot setting (Thm. 3, Lemmas 4-7).
* `unigram`, `unigram_scaling`: paper S's softmax unigram model.
* `ufm_spectrum`, `ufm_dynamics`: paper R's STEP labels and UFM dynamics.
* `simulate`: optimizer paths (optax in ``lax.scan``) and gradient flows
  (``solve_ivp``) used as references.
* `studies` (imported on demand): the data of each theory figure, closed form
  next to simulation; `imbalance_jax.plotting.theory` draws it.

docs/theory.md states every formula as implemented and the corrections to the
papers.
"""

from imbalance_jax.theory.quadratic import (gd_quadratic_path, sign_descent_quadratic_path,
                                            simulate_quadratic, weighted_quadratic)
from imbalance_jax.theory.simple_setting import (per_class_loss, simple_setting_class_loss,
                                                 simple_setting_gd_asymptote, simple_setting_margin,
                                                 simple_setting_ode, simple_setting_time_to_loss,
                                                 simple_setting_weights,
                                                 simulate_simple_setting, softmax_model_loss)
from imbalance_jax.theory.simulate import gradient_flow_path, optimizer_path
from imbalance_jax.theory.ufm_dynamics import (UFMProblem, corollary_c3_times, maj_min_half_time,
                                               maj_min_path, mode_strengths, random_init,
                                               saxe_half_time, saxe_strength, simulate_ufm,
                                               svd_aligned_init, time_spread, ufm_growth_rates,
                                               ufm_half_times, ufm_learning_times, ufm_loss,
                                               ufm_mode_paths, ufm_problem)
from imbalance_jax.theory.ufm_spectrum import (GROUPS, step_label_spectrum, step_label_svd,
                                               step_sample_weights)
from imbalance_jax.theory.unigram import (distance_to_minimizers, l2_smoothness,
                                          l2_smoothness_bounds, linf_smoothness,
                                          linf_smoothness_bounds, theory_iterations,
                                          theory_step_size, unigram_grad, unigram_hessian,
                                          unigram_hvp, unigram_loss, unigram_minimizer,
                                          unigram_optimal_value, unigram_suboptimality)
from imbalance_jax.theory.unigram_scaling import (Reach, Tuned, iterations_to_reach,
                                                  loglog_slope, tune_iterations)

__all__ = [
    "GROUPS", "corollary_c3_times", "distance_to_minimizers", "gd_quadratic_path",
    "gradient_flow_path", "iterations_to_reach", "l2_smoothness", "l2_smoothness_bounds",
    "linf_smoothness", "linf_smoothness_bounds", "loglog_slope", "maj_min_half_time",
    "maj_min_path", "mode_strengths", "optimizer_path", "per_class_loss", "random_init", "Reach",
    "saxe_half_time", "saxe_strength", "sign_descent_quadratic_path", "simple_setting_class_loss",
    "simple_setting_gd_asymptote", "simple_setting_margin", "simple_setting_ode",
    "simple_setting_time_to_loss", "simple_setting_weights", "simulate_quadratic",
    "simulate_simple_setting", "simulate_ufm", "softmax_model_loss", "step_label_spectrum",
    "step_label_svd", "step_sample_weights", "svd_aligned_init", "theory_iterations",
    "theory_step_size", "time_spread", "tune_iterations", "Tuned", "ufm_growth_rates",
    "ufm_half_times", "ufm_learning_times", "ufm_loss", "ufm_mode_paths", "ufm_problem",
    "UFMProblem", "unigram_grad", "unigram_hessian", "unigram_hvp", "unigram_loss",
    "unigram_minimizer", "unigram_optimal_value", "unigram_suboptimality", "weighted_quadratic",
]
