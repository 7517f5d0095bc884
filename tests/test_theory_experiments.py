"""Theory experiment configs resolve, and the scaling figure copes with censored runs."""

import importlib

import pytest

from imbalance_jax import _checks, plotting


@pytest.mark.parametrize("name", ["theory_figures", "unigram_scaling"])
@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_fill_every_field(name, preset, monkeypatch):
  monkeypatch.setattr(_checks, "available_memory_bytes", lambda: 2**50)  # 1 PiB
  config = importlib.import_module(f"experiments.{name}").CONFIG.resolve({"preset": preset})
  assert config.preset == preset
  assert all(config[key] is not None for key in config.keys())
  assert all(value is not None for value in config.raw.values())


def test_theory_figures_subset_keeps_the_given_order():
  from experiments import theory_figures
  config = theory_figures.CONFIG.resolve({"figures": "ufm_spectrum,quadratic"})
  assert config.figures == ("ufm_spectrum", "quadratic")
  assert theory_figures.FIGURES == tuple(theory_figures.STUDIES)


def test_unigram_scaling_reads_typed_sizes_and_methods():
  from experiments import unigram_scaling
  config = unigram_scaling.CONFIG.resolve({"sizes": "20,60", "methods": "gd,adam"})
  assert config.sizes == (20, 60) and config.methods == ("gd", "adam")
  with pytest.raises(ValueError, match="config.sizes must be strictly increasing"):
    unigram_scaling.CONFIG.resolve({"sizes": "60,20"})


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
