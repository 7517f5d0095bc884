"""Theory experiment configs resolve, and the scaling figure copes with censored runs."""

import importlib

import pytest

from imbalance_jax import config as config_util
from imbalance_jax import plotting


@pytest.mark.parametrize("name", ["theory_figures", "unigram_scaling"])
@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_fill_every_placeholder(name, preset):
  module = importlib.import_module(f"experiments.configs.{name}")
  config = module.get_config()
  config.preset = preset
  resolved = config_util.resolve_preset(config, module.PRESETS)
  assert all(value is not None for value in resolved.values())


def test_scaling_figure_with_censored_and_skipped_runs(tmp_path):
  from imbalance_jax.theory import unigram_scaling
  records = [
      {"method": "sign_descent", "d": 100, "eps": 0.1, "iterations": 5, "censored": False,
       "steps_run": 50, "theory_bound": None},
      {"method": "sign_descent", "d": 1000, "eps": 0.1, "iterations": 8, "censored": False,
       "steps_run": 50, "theory_bound": None},
      {"method": "normalized_gd@theory", "d": 100, "eps": 0.1, "iterations": None,
       "censored": True, "steps_run": 500, "theory_bound": 900.0},
      {"method": "normalized_gd@theory", "d": 1000, "eps": 0.1, "iterations": None,
       "censored": True, "steps_run": 0, "theory_bound": 9e4},
  ]
  slopes = unigram_scaling.scaling_slopes(records)
  assert slopes["normalized_gd@theory"]["slope"] is None
  path = plotting.save_figure(plotting.theory.unigram_scaling_figure(records, slopes),
                              tmp_path / "scaling.png")
  assert (tmp_path / "scaling.png").stat().st_size > 10_000 and str(path).endswith(".png")
