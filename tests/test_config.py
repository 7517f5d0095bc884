"""The experiment layer: fields declared once, presets, typed values, outputs, tuned runs."""

import json
import os

import jax
import numpy as np
import pytest

from imbalance_jax import data, experiment as ex, models, optim
from imbalance_jax.experiment import fields

CONFIG = ex.Config(
    presets={"quick": dict(m=7), "paper": dict(m=11, runs="gd+m,adam+m")},
    fields=dict(m=fields.Int(minimum=1, maximum=20, help="levels"),
                runs=fields.Runs(default="gd,adam"),
                exponents=fields.Exponents(default=""),
                widths=fields.IntList(minimum=1, default="4,8"),
                kind=fields.Choice(("a", "b"), default="a"),
                lr=fields.Positive(default=0.1),
                flag=fields.Bool(default=False),
                data_dir=fields.Directory()))


def test_preset_fills_unset_fields_and_user_values_win():
  assert CONFIG.resolve().m == 7 and CONFIG.resolve().preset == "quick"
  assert CONFIG.resolve({"m": 9}).m == 9
  paper = CONFIG.resolve({"preset": "paper"})
  assert paper.m == 11 and [s.name for s in paper.runs] == ["gd+m", "adam+m"]
  assert CONFIG.resolve({"preset": "paper", "runs": "gd"}).runs[0].name == "gd"


def test_values_are_typed_and_read_only():
  values = CONFIG.resolve({"exponents": "0,-2", "widths": "16,32"})
  assert values.exponents == (-2.0, 0.0) and values.widths == (16, 32)
  assert isinstance(values.runs[0], optim.RunSpec) and values.runs[1].optimizer == "adam"
  assert values.raw.exponents == "0,-2" and values.raw.m == 7  # what config.json holds
  assert CONFIG.resolve().exponents == tuple(float(e) for e in range(-6, 2))
  with pytest.raises(AttributeError, match="read-only"):
    values.m = 3
  with pytest.raises(AttributeError, match="config has no field 'n'"):
    values.n  # noqa: B018


def test_defaults_are_the_command_line_config():
  defaults = CONFIG.defaults()
  assert sorted(defaults.keys()) == sorted(["preset", *CONFIG.fields])
  # A field some preset sets is a placeholder (a command-line value wins over the preset).
  assert defaults.preset == "quick" and defaults.m is None and defaults.runs is None
  assert defaults.kind == "a" and CONFIG.resolve().runs[1].name == "adam"  # quick: the default
  assert "m (from the preset): levels" in CONFIG.help()
  assert "runs ('gd,adam' unless the preset sets it)" in CONFIG.help()


@pytest.mark.parametrize("overrides,match", [
    ({"preset": "huge"}, "config.preset must be one of"),
    ({"mm": 1}, r"unknown config field --config.mm \(did you mean --config.m\?\)"),
    ({"m": 21}, r"config.m must be an integer in \[1, 20\], got 21"),
    ({"m": "7"}, "config.m must be an integer"),
    ({"lr": 0.0}, "config.lr must be a finite number > 0, got 0.0"),
    ({"lr": float("inf")}, "config.lr must be a finite number > 0"),
    ({"kind": "c"}, r"config.kind must be one of \('a', 'b'\)"),
    ({"widths": "4,-8"}, "config.widths must be a comma-separated list"),
    ({"runs": "gd,gd"}, "config.runs must be .*duplicates"),
    ({"runs": "lbfgs"}, "config.runs must be .*optimizer must be one of"),
    ({"exponents": "0,0"}, "config.exponents must be .*duplicate"),
    ({"exponents": "-1,x"}, "config.exponents must be .*expected numbers"),
    ({"data_dir": "/no/such/dir"}, "config.data_dir must be an existing directory or ''"),
    ({"flag": "yes"}, "config.flag must be True or False"),
])
def test_bad_values_name_the_field_and_range(overrides, match):
  with pytest.raises(ValueError, match=match):
    CONFIG.resolve(overrides)


def test_every_invalid_example_of_every_kind_is_refused():
  for name, field in CONFIG.fields.items():
    for value in field.invalid_examples():
      with pytest.raises(ValueError, match=f"config.{name}"):
        CONFIG.resolve({name: value})
  assert fields.Names(("x", "y")).check("config.n", "y,x") == ("y", "x")
  assert fields.Runs(allow_all=True).check("config.r", "all")[-1].name == "adam+m"
  assert fields.Runs(allow_empty=True).check("config.r", " ") == ()


def test_badly_declared_configs_are_refused():
  with pytest.raises(ValueError, match=r"preset 'quick' does not set \['m'\]"):
    ex.Config(presets={"quick": {}}, fields={"m": fields.Int()})
  with pytest.raises(ValueError, match=r"preset 'quick' sets undeclared fields \['n'\]"):
    ex.Config(presets={"quick": {"m": 1, "n": 2}}, fields={"m": fields.Int()})
  with pytest.raises(ValueError, match="'preset' is declared by Config itself"):
    ex.Config(presets={"quick": {}}, fields={"preset": fields.Text(default="x")})


def test_cross_field_validate_runs_on_typed_values():
  def validate(values):
    if values.m > len(values.widths):
      raise ValueError(f"config.m={values.m} exceeds the {len(values.widths)} widths")
  config = ex.Config(presets={"quick": dict(m=2)},
                     fields=dict(m=fields.Int(minimum=1), widths=fields.IntList(default="4,8")),
                     validate=validate)
  assert config.resolve().m == 2
  with pytest.raises(ValueError, match="config.m=3 exceeds the 2 widths"):
    config.resolve({"m": 3})


def test_grid_from_config():
  values = ex.config.Values({"learning_rate": 0.01, "refine_rounds": 1, "exponents": (-1.0,)},
                            None)
  assert ex.Grid.from_config(values) == ex.Grid((-2.0,), 0)
  values = ex.config.Values({"learning_rate": 0.0, "refine_rounds": 2, "exponents": (-1.0,)},
                            None)
  assert ex.Grid.from_config(values) == ex.Grid((-1.0,), 2)


def test_write_outputs_writes_summary_last_and_run_summaries_read_it(tmp_path):
  import matplotlib.pyplot as plt
  order = []
  original = ex.outputs.results.write_json
  entry = {"learning_rate": 0.1, "final_loss": 0.5, "final_group_losses": [0.25, 2.0],
           "diverged": []}
  try:
    ex.outputs.results.write_json = lambda path, obj: (order.append(os.path.basename(path)),
                                                       original(path, obj))
    ex.write_outputs(str(tmp_path), summary={"mnist": {"gd": entry}, "eps": 0.1},
                     metrics=[{"run": "gd", "step": 0}], figures={"f.png": plt.figure()},
                     arrays={"a.npz": {"x": np.arange(3)}}, files={"dataset.json": {"n": 3}})
  finally:
    ex.outputs.results.write_json = original
  assert order == ["dataset.json", "summary.json"]
  assert sorted(os.listdir(tmp_path)) == ["a.npz", "dataset.json", "f.png", "metrics.jsonl",
                                          "summary.json"]
  summary = json.loads((tmp_path / "summary.json").read_text())
  runs = ex.run_summaries(summary, "mnist")
  assert runs["gd"].rarest_loss == 2.0 and runs["gd"].frequent_loss == 0.25
  assert runs["gd"].diverged == [] and runs["gd"].to_json() == entry
  with pytest.raises(AttributeError, match="run summary has no 'spearman'"):
    runs["gd"].spearman  # noqa: B018
  with pytest.raises(KeyError, match="lacks"):
    ex.RunSummary.from_json({"learning_rate": 0.1})


def test_tune_runs_equals_tune_sweep_of_each_spec(tmp_path):
  """tune_runs is the loop a binary would write: same selections and histories as calling
  train.tune_sweep per spec; a rerun with the store loads every round."""
  from imbalance_jax import train
  keys = jax.random.split(jax.random.key(0), 2)
  data_S = jax.vmap(lambda k: data.heavy_tailed_labels(k, m=3))(keys)
  model = models.LinearSoftmax(data_S.num_classes)
  params_S = jax.vmap(lambda k: model.init(k, data_S.x[0, :1]))(keys)
  groups = data.frequency_groups(np.asarray(data_S.class_counts[0]), 2)
  build = ex.train_builder(model.apply, num_steps=10, log_every=5, groups=groups)
  specs = optim.parse_runs("gd,adam+m@inverse")
  grid = ex.Grid((-1.0, 0.0), 0)
  tuned = ex.tune_runs(specs, build, params_S, data_S, grid=grid,
                       store=train.ResultStore(tmp_path), log=lambda *a: None)
  assert list(tuned) == ["gd", "adam+m@inverse"] and tuned.steps.tolist() == [0, 5, 10]
  for spec in specs:
    expected = train.tune_sweep(train.Sweep(build(spec)), params_S, data_S,
                                exponents=grid.exponents, refine_rounds=0, log=lambda line: None)
    assert tuned[spec.name].selection == expected.selection
    np.testing.assert_array_equal(tuned[spec.name].best_history["group_loss"],
                                  expected.best_history["group_loss"])
  assert tuned.summaries()["gd"]["learning_rate"] == tuned.learning_rates()["gd"]
  records = list(tuned.records(data="x"))
  assert len(records) == 2 * 2 * 2 * 3 and records[0]["data"] == "x"
  lines = []
  again = ex.tune_runs(specs, build, params_S, data_S, grid=grid,
                       store=train.ResultStore(tmp_path), log=lambda *a: lines.append(a[0]))
  assert any("restored from checkpoint" in line for line in lines)
  assert again.summaries() == tuned.summaries()


def test_tune_runs_passes_drop_decided_to_tune_sweep():
  """drop_decided=False: each round one compiled program; the same selection and history
  as with diverged members dropped (step size 1e2 diverges)."""
  keys = jax.random.split(jax.random.key(1), 2)
  data_S = jax.vmap(lambda k: data.heavy_tailed_labels(k, m=3))(keys)
  model = models.LinearSoftmax(data_S.num_classes)
  params_S = jax.vmap(lambda k: model.init(k, data_S.x[0, :1]))(keys)
  build = ex.train_builder(model.apply, num_steps=10, log_every=5)
  specs, grid = optim.parse_runs("gd"), ex.Grid((-1.0, 2.0), 0)
  tuned = {}
  for drop in (True, False):
    lines = []
    tuned[drop] = ex.tune_runs(specs, build, params_S, data_S, grid=grid, drop_decided=drop,
                               log=lambda *a, lines=lines: lines.append(str(a[0])))
    assert any("in one compiled program" in line for line in lines) is not drop
  assert tuned[True]["gd"].selection == tuned[False]["gd"].selection
  np.testing.assert_allclose(tuned[False]["gd"].best_history["loss"],
                             tuned[True]["gd"].best_history["loss"], rtol=1e-6)


def test_network_bytes_counts_parameters_and_module_outputs_from_shapes():
  """Against the parameters of a real init and the sizes of every module's output."""
  model = models.SmallCNN(7, features=(3, 5), kernel_size=3)
  x = np.zeros((1, 28, 28, 1), np.float32)
  params = model.init(jax.random.key(0), x)
  num_params = sum(leaf.size for leaf in jax.tree.leaves(params))
  _, state = model.apply(params, x, capture_intermediates=True, mutable=["intermediates"])
  outputs = sum(leaf.size for leaf in jax.tree.leaves(state["intermediates"]))
  got = ex.network_bytes(model, (28, 28, 1), members=3, examples=10)
  assert got == ex.float_bytes() * 3 * (4 * num_params + 2 * 10 * outputs)
  # an absurd width is sized, not allocated
  huge = ex.network_bytes(models.SmallCNN(7, features=(10**9,)), (28, 28, 1), members=1,
                          examples=0)
  assert huge >= ex.float_bytes() * 4 * 9 * 10**9
