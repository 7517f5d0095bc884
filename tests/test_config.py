import pytest
from ml_collections import config_dict

from experiments.configs import heavy_tailed_linear
from imbalance_jax.config import resolve_preset


def make(preset="quick"):
  config = config_dict.ConfigDict()
  config.preset = preset
  config.m = config_dict.placeholder(int)
  config.seed = 0
  return config


def test_preset_fills_unset_fields_and_user_values_win():
  assert resolve_preset(make(), {"quick": {"m": 7}}).m == 7
  config = make()
  config.m = 9
  assert resolve_preset(config, {"quick": {"m": 7}}).m == 9


def test_bad_presets():
  with pytest.raises(ValueError, match="config.preset must be one of"):
    resolve_preset(make("huge"), {"quick": {"m": 7}})
  with pytest.raises(ValueError, match="unknown config field"):
    resolve_preset(make(), {"quick": {"m": 7, "typo": 1}})
  with pytest.raises(ValueError, match=r"\['m'\] are unset"):
    resolve_preset(make(), {"quick": {}})


@pytest.mark.parametrize("preset", sorted(heavy_tailed_linear.PRESETS))
def test_heavy_tailed_linear_presets_resolve(preset):
  config = heavy_tailed_linear.get_config()
  config.preset = preset
  resolved = resolve_preset(config, heavy_tailed_linear.PRESETS)
  assert all(v is not None for v in resolved.values())
