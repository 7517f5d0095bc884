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


def test_field_specs_name_the_field_and_range():
  from imbalance_jax import config as config_lib
  config = config_dict.ConfigDict({"m": 3, "lr": 0.1, "kind": "a", "widths": "4,8", "flag": True})
  fields = {"m": config_lib.Int(minimum=1, maximum=5), "lr": config_lib.Positive(),
            "kind": config_lib.Choice(["a", "b"]), "widths": config_lib.IntList(minimum=1),
            "flag": config_lib.Bool()}
  assert config_lib.check_fields(config, fields)["widths"] == (4, 8)
  for key, value, match in [("m", 6, r"config.m must be an integer in \[1, 5\], got 6"),
                            ("lr", 0.0, "config.lr must be a finite number > 0, got 0.0"),
                            ("lr", float("inf"), "config.lr must be a finite number > 0"),
                            ("kind", "c", r"config.kind must be one of \('a', 'b'\)"),
                            ("widths", "4,-8", "config.widths must be a comma-separated list")]:
    bad = config_dict.ConfigDict(config.to_dict())
    bad[key] = value
    with pytest.raises(ValueError, match=match):
      config_lib.check_fields(bad, fields)
  with pytest.raises(ValueError, match=r"config fields \['flag'\] have no declared type"):
    config_lib.check_fields(config, {k: v for k, v in fields.items() if k != "flag"})
  interval = config_lib.Real(minimum=0.0, maximum=1.0, open_maximum=True)
  with pytest.raises(ValueError, match=r"config.p must be a finite number in \[0, 1\), got 1.0"):
    interval.check("config.p", 1.0)
