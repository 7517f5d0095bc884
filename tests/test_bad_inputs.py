"""Bad input is a ValueError naming the argument, raised before any work.

Experiment configs go through their binary's ``CONFIG.resolve`` (unknown
fields, preset, every field's check, the binary's ``validate``) and
`experiment.prepare_workdir` in-process, exactly as `experiment.start` runs
them; public API calls are made directly. Every case checks that the message
names the offending field or argument. Besides the hand-written cases, every
registered binary (`experiments.claims.BINARIES`, new ones included) gets each
value its fields' kinds refuse, and a bad ``--config`` field on its command line.
"""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import claims
from imbalance_jax import _checks, data, losses, make_dataset, metrics, models, optim, train
from imbalance_jax import experiment as ex
from imbalance_jax.experiment import fields

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARIES = claims.BINARIES


def binary(name):
  return claims.binary_module(name)


def resolve(name, **overrides):
  return binary(name).CONFIG.resolve(overrides)


# (binary, overrides, text the message must contain). Sizes flagged "memory" are
# far beyond any machine (e.g. m=40: n = 40 * 2^40 examples).
CONFIG_CASES = [
    # a derived value (the UFM's step count) is refused as the field the user set
    ("theory_figures", dict(figures="ufm_dynamics", ufm_lr=100.0),
     r"config.ufm_lr=100.0 \(with config.ufm_R=10, config.ufm_delta=8.0\): .* use lr <= 0.168"),
    ("imagenet_resnet", dict(max_per_class=0), "config.max_per_class"),
    ("unigram_scaling", dict(sizes="500"), "config.sizes needs at least two sizes"),
    # data directories are checked at resolve, before any work
    ("token_frequencies", dict(corpus="wikitext2", corpus_dir="/"),
     r"config.corpus_dir='/' \(config.corpus='wikitext2'\): data_dir='/' does not hold"),
    ("barcoded_mnist", dict(data_dir="/"), r"config.data_dir='/': No mnist data for split"),
    # a network whose feature map pools to nothing
    ("barcoded_mnist", dict(cnn_features="4,8,8,8,8"),
     r"config.cnn_features has 5 conv \+ pool layers, but a 28x28 input allows at most 4"),
    ("curvature_cnn", dict(cnn_features="4,8,8,8,8"), "allows at most 4"),
    ("heavy_tailed_linear", dict(num_seeds=0), "config.num_seeds must be >= 1"),
    ("heavy_tailed_linear", dict(learning_rate=float("nan")), "config.learning_rate must be"),
    ("heavy_tailed_linear", dict(learning_rate=-1.0), "config.learning_rate must be"),
    ("heavy_tailed_linear", dict(divergence_threshold=0.5), "config.divergence_threshold must be"),
    ("heavy_tailed_linear", dict(divergence_threshold=float("inf")), "config.divergence_threshold"),
    ("heavy_tailed_linear", dict(m=40), "config.m=40.*lower config.m"),  # memory
    ("heavy_tailed_linear", dict(m=0), "config.m must be"),
    ("heavy_tailed_linear", dict(num_steps=0), "config.num_steps"),
    ("heavy_tailed_linear", dict(log_every=7), "config.log_every=7 must divide"),
    ("heavy_tailed_linear", dict(segment_steps=7), "config.segment_steps=7"),
    ("heavy_tailed_linear", dict(refine_rounds=-1), "config.refine_rounds"),
    ("heavy_tailed_linear", dict(runs="gd,lbfgs"), "config.runs"),
    ("heavy_tailed_linear", dict(runs="gd,gd"), "config.runs"),
    ("heavy_tailed_linear", dict(loss_weighting="inverse_cube"), "config.loss_weighting"),
    ("heavy_tailed_linear", dict(input_dist="cauchy"), "config.input_dist"),
    ("heavy_tailed_linear", dict(init_scheme="xavier"), "config.init_scheme"),
    ("heavy_tailed_linear", dict(num_groups=0), "config.num_groups"),
    ("heavy_tailed_linear", dict(seed=-1), "config.seed"),
    ("heavy_tailed_linear", dict(preset="huge"), "config.preset must be one of"),
    ("heavy_tailed_linear", dict(foo=1), r"unknown config field --config.foo; valid fields: .*m,"),
    ("heavy_tailed_linear", dict(num_sedes=1), "did you mean --config.num_seeds"),
    ("curvature_linear", dict(m=1), "config.m must be"),
    ("curvature_linear", dict(m=40), "config.m=40.*lower config.m"),  # memory
    ("curvature_linear", dict(adam_lr=0.0), "config.adam_lr must be a finite number > 0"),
    ("curvature_linear", dict(gd_lr=float("inf")), "config.gd_lr"),
    ("curvature_linear", dict(snapshot_steps="0,10,5000"), "config.snapshot_steps must lie in"),
    ("curvature_linear", dict(snapshot_steps="0,ten"), "config.snapshot_steps"),
    ("curvature_linear", dict(map_classes=200), r"config.map_classes must be in \[2, 127\]"),
    ("curvature_linear", dict(map_dims=5000), r"config.map_dims must be in \[1, 1024\]"),
    ("curvature_linear", dict(adam_run="adamw"), "config.adam_run"),
    ("curvature_linear", dict(num_steps=301), "config.log_every=10 must divide"),
    ("curvature_cnn", dict(model="vit"), "config.model must be one of"),
    ("curvature_cnn", dict(cnn_features="16,0"), "config.cnn_features"),
    ("curvature_cnn", dict(cnn_features="4,4,4,4,4"), "at most 4"),
    ("curvature_cnn", dict(num_bits=11), "config.num_bits"),
    ("curvature_cnn", dict(num_probes=0), "config.num_probes"),
    ("curvature_cnn", dict(groups="three"), "config.groups must be one of"),
    ("curvature_cnn", dict(mlp_hidden=""), "config.mlp_hidden"),
    ("curvature_cnn", dict(plain_per_digit=400), "config.plain_per_digit=400 exceeds"),
    ("curvature_cnn", dict(num_probes=10**6), "config.num_probes=1000000.*lower config.num_bits"),
    ("curvature_cnn", dict(map_classes=1), "config.map_classes"),
    ("theory_figures", dict(simple_classes=1), "config.simple_classes"),
    ("theory_figures", dict(simple_classes=30), "config.simple_classes=30.*lower"),  # memory
    ("theory_figures", dict(unigram_max_log10_d=0), "config.unigram_max_log10_d"),
    ("theory_figures", dict(unigram_max_log10_d=12), "lower config.unigram_max_log10_d"),
    ("theory_figures", dict(ufm_hidden_dim=2), "config.ufm_hidden_dim must be >= 3"),
    ("theory_figures", dict(ufm_lr=0.0), "config.ufm_lr"),
    ("theory_figures", dict(ufm_delta=float("nan")), "config.ufm_delta"),
    ("theory_figures", dict(unigram_eps=-0.01), "config.unigram_eps"),
    ("theory_figures", dict(ufm_delta=1e30), r"config.ufm_delta must be a finite number in \(0, 700\]"),
    ("theory_figures", dict(ufm_lr=1e-300), r"config.ufm_lr=1e-300 .* needs 1.68e\+301 GD steps"),
    ("theory_figures", dict(bar=2.0), "unknown config field --config.bar"),
    ("theory_figures", dict(figures="quadratic,fig99"), "config.figures must be a comma-sep"),
    ("unigram_scaling", dict(sizes="100,10"), "config.sizes must be strictly increasing"),
    ("unigram_scaling", dict(sizes="1,100"), "config.sizes"),
    ("unigram_scaling", dict(sizes="100,1e13"), "config.sizes"),
    ("unigram_scaling", dict(sizes="100,10000000000000"), "lower the largest of config.sizes"),
    ("unigram_scaling", dict(methods="gd,lbfgs"), "config.methods"),
    ("unigram_scaling", dict(max_steps=75), "config.max_steps=75 must be a multiple"),
    ("unigram_scaling", dict(min_exponent=3.0), "config.min_exponent=3.0 must be <="),
    ("unigram_scaling", dict(eps=0.0), "config.eps"),
    ("unigram_scaling", dict(local_step=0.0), "config.local_step"),
    ("unigram_scaling", dict(eps=1.0), "config.eps=1 is met at initialisation"),
    ("unigram_scaling", dict(zipf_exponent=0.0), "config.eps=0.02 is met at initialisation"),
    ("unigram_scaling", dict(zipf_exponent=1e30), "config.zipf_exponent must be"),
    ("unigram_scaling", dict(max_work=1e3), "config.max_work=1000 leaves d=1000000"),
    # absurd network sizes are refused from shapes alone, before XLA's allocator aborts
    ("reweighting_mnist", dict(width=10**9), "config.width=1000000000 .*lower config.width"),
    ("imagenet_resnet", dict(width=10**9), r"config.width=1000000000.*lower config.width"),
    ("imagenet_resnet", dict(batch_size=10**6, eval_chunk_size=64), "lower config.width, .*"
     "config.batch_size"),
    ("barcoded_mnist", dict(cnn_features="1000000,8"), "lower config.num_bits"),
    ("curvature_cnn", dict(model="mlp", mlp_hidden="1000000000"), "mlp widths 1000000000"),
    ("imagenet_resnet", dict(stage_sizes="2,2,100,2"), "config.stage_sizes must be .* in "
     r"\[1, 64\]"),
    ("barcoded_mnist", dict(kernel_size=29), r"config.kernel_size must be an integer in \[1, 28\]"),
    # steps beyond the run, and a field that the other fields make meaningless
    ("reweighting_mnist", dict(snapshot_steps="0,500"), r"has steps \[500\] beyond the run"),
    ("transformer_ptb", dict(accumulation_steps=4), "config.batch_size=0 trains in full batch"),
    ("transformer_ptb", dict(preset="quick_fig17", num_windows=8, batch_size=32),
     "config.batch_size=32 exceeds config.num_windows=8"),
    # a subset that is no longer imbalanced
    ("reweighting_mnist", dict(ratio=1.0), "config.ratio must be"),
    # DRW at or beyond the run's last step, a profile whose rarest class is empty, no data
    ("long_tail_losses", dict(drw_fraction=1.0), r"config.drw_fraction=1.0 puts DRW at step 300"),
    ("long_tail_losses", dict(max_per_class=50), "config.max_per_class=50 / config.ratio=100"),
    ("long_tail_losses", dict(dataset="fashion_mnist"), "config.dataset='fashion_mnist' has no"),
    # curvature_spectra: sizes beyond the data or the memory, refused at resolve
    *[("curvature_spectra", {f: 10**9}, rf"config\.{f}=1000000000.*lower .*config\.{f}")
      for f in ("copies", "d_model", "mlp_dim", "linear_steps", "cnn_steps", "transformer_steps",
                "num_probes", "one_one_columns", "frobenius_probes")],
    ("curvature_spectra", dict(cnn_features="1000000000"),
     r"config.cnn_features=1000000000, .*lower .*config.cnn_features"),
    ("curvature_spectra", dict(kernel_size=10**9), r"config.kernel_size must be an integer in "
     r"\[1, 28\]"),
    ("curvature_spectra", dict(plain_per_digit=10**9), "config.plain_per_digit=1000000000 "
     "exceeds the ~320 training digits"),
    ("curvature_spectra", dict(num_windows=10**9), "config.num_windows=1000000000 exceeds the "
     "2095 windows"),
    ("curvature_spectra", dict(seq_len=10**9), "config.seq_len=1000000000 leaves no window"),
    ("curvature_spectra", dict(blocks_at_once=-1), "config.blocks_at_once must be >= 0"),
]


@pytest.mark.parametrize("name,overrides,match", CONFIG_CASES,
                         ids=[f"{c[0]}-{next(iter(c[1]))}={next(iter(c[1].values()))}"
                              for c in CONFIG_CASES])
def test_bad_config_field_is_named(name, overrides, match):
  with pytest.raises(ValueError, match=match):
    resolve(name, **overrides)


@pytest.mark.parametrize("name", BINARIES)
def test_every_preset_is_valid(name, monkeypatch, tmp_path):
  config = binary(name).CONFIG
  assert sorted(config.defaults().keys()) == sorted(["preset", *config.fields])
  monkeypatch.setattr(_checks, "available_memory_bytes", lambda: 2**50)  # 1 PiB
  for split, files in data.images.IDX_FILES.items():  # a directory that holds (tiny) MNIST
    data.write_idx(tmp_path / files[0], np.zeros((2, 28, 28), np.uint8))
    data.write_idx(tmp_path / files[1], np.zeros(2, np.uint8))
  for split in ("train", "valid", "test"):  # ... and (tiny) WikiText files
    (tmp_path / f"wiki.{split}.tokens").write_text(" a b c \n")
  directories = {field_name: str(tmp_path) for field_name, field in config.fields.items()
                 if isinstance(field, fields.Directory)}
  for preset in config.presets:
    try:
      values = resolve(name, preset=preset)
    except ValueError as error:  # a paper preset presumes the data set's directory
      assert directories, error
      values = resolve(name, preset=preset, **directories)
    assert values.preset == preset


def _field_cases():
  """(binary, field, value) for every value the kind of every field of every binary refuses."""
  cases = []
  for name in BINARIES:
    for field_name, field in binary(name).CONFIG.fields.items():
      cases += [(name, field_name, value) for value in field.invalid_examples()]
  return cases


FIELD_CASES = _field_cases()


@pytest.mark.parametrize("name,field,value", FIELD_CASES,
                         ids=[f"{n}-{f}={v!r}" for n, f, v in FIELD_CASES])
def test_every_field_refuses_what_its_kind_refuses(name, field, value):
  with pytest.raises(ValueError, match=rf"config\.{field}\b"):
    resolve(name, **{field: value})


@pytest.mark.parametrize("name", BINARIES)
def test_unknown_field_and_wrong_type_are_named(name):
  config = binary(name).CONFIG
  first = next(iter(config.fields))
  with pytest.raises(ValueError, match=rf"unknown config field --config.{first}x \(did you mean "
                                       rf"--config.{first}\?\)"):
    resolve(name, **{first + "x": 1})
  with pytest.raises(ValueError, match="config.preset must be one of"):
    resolve(name, preset="no_such_preset")
  for field_name, field in config.fields.items():  # a value of the wrong type
    wrong = "not a number" if field.type in (int, float, bool) else 12345
    with pytest.raises(ValueError, match=rf"config\.{field_name}\b"):
      resolve(name, **{field_name: wrong})


@pytest.mark.parametrize("name,field", [("heavy_tailed_linear", "config.m or config.num_seeds"),
                                        ("curvature_linear", "config.m"),
                                        ("curvature_cnn", "config.num_bits, config.plain_per_digit"),
                                        ("theory_figures", "preset=quick"),
                                        ("unigram_scaling", "config.sizes")])
@pytest.mark.float64  # the estimates count 8-byte floats under x64
def test_memory_check_names_what_to_lower(name, field, monkeypatch):
  monkeypatch.setattr(_checks, "available_memory_bytes", lambda: 1024)
  with pytest.raises(ValueError, match=rf"needs about .* but 1 KiB is available; lower .*"
                                       rf"{field}"):
    resolve(name)


@pytest.mark.float64
def test_heavy_tailed_memory_estimate_counts_data_and_members():
  config = resolve("heavy_tailed_linear", m=3, num_seeds=2, learning_rate=0.5)
  n, d, c = 24, 32, 7
  itemsize = 8 if jax.config.jax_enable_x64 else 4
  assert binary("heavy_tailed_linear").estimate_bytes(config) == itemsize * (
      2 * n * d + 2 * (3 * n * c + 4 * c * (d + 1)))


def test_workdir_checks(tmp_path):
  config = resolve("heavy_tailed_linear", m=3)
  a_file = tmp_path / "results.txt"
  a_file.write_text("x")
  with pytest.raises(ValueError, match="--workdir=.*results.txt names an existing file"):
    ex.prepare_workdir(str(a_file), config)
  with pytest.raises(ValueError, match="--workdir=.* cannot be created: .*results.txt is a file"):
    ex.prepare_workdir(str(a_file / "sub"), config)
  with pytest.raises(ValueError, match="--workdir must name a directory"):
    ex.prepare_workdir("", config)
  workdir = str(tmp_path / "run")
  assert ex.prepare_workdir(workdir, config) == workdir
  assert json.loads((tmp_path / "run" / "config.json").read_text())["m"] == 3
  assert ex.prepare_workdir(workdir, config) == workdir  # same config: resumes
  assert ex.prepare_workdir("~/../" + workdir, config) == workdir  # ~ and .. resolved
  other = resolve("heavy_tailed_linear", m=4)
  with pytest.raises(ValueError, match=r"holds results of a different config \(m: 3 -> 4\)"):
    ex.prepare_workdir(workdir, other)
  (tmp_path / "run" / "config.json").write_text("{truncated")
  with pytest.raises(ValueError, match="--workdir=.*cannot read its config.json"):
    ex.prepare_workdir(workdir, config)


def test_unknown_field_on_the_command_line_is_refused_before_any_work(tmp_path):
  out = subprocess.run([sys.executable, "-m", "experiments.theory_figures",
                        f"--workdir={tmp_path / 'run'}", "--config.ufm_dleta=3.0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode != 0
  assert ("ValueError: unknown config field --config.ufm_dleta (did you mean "
          "--config.ufm_delta?); valid fields:") in out.stderr
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", BINARIES)
def test_bad_command_line_stops_every_binary_before_any_work(name, tmp_path):
  """A field outside its range on the command line: non-zero exit, the field named, nothing
  written (the binary's own command line, not just its Config)."""
  field_name, field, value = next((f, k, k.invalid_examples()[0])
                                  for f, k in binary(name).CONFIG.fields.items()
                                  if k.invalid_examples() and k.type is not float)
  out = subprocess.run([sys.executable, "-m", f"experiments.{name}",
                        f"--workdir={tmp_path / 'run'}", f"--config.{field_name}={value}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode != 0
  assert f"ValueError: config.{field_name}" in out.stderr, out.stderr[-2000:]
  assert not (tmp_path / "run").exists()


def _tiny():
  return data.heavy_tailed_labels(jax.random.key(0), 3)


def _binary_file():
  import tempfile
  path = os.path.join(tempfile.mkdtemp(), "binary.txt")
  with open(path, "wb") as f:
    f.write(b"\xff\xfe\x00 not text")
  return path


def _aux(ds):
  return {"loss_N": jnp.zeros(ds.y.shape), "prediction_N": ds.y, "logits": None}


API_CASES = [
    (lambda: make_dataset(np.ones((3, 2)), np.array([0, 1, 5]), 3), "y must lie in"),
    (lambda: make_dataset(np.ones((3, 2)), np.array([0, 1]), 3), "x and y disagree"),
    (lambda: make_dataset(np.full((2, 2), np.nan), np.array([0, 1]), 2), "x contains NaN"),
    (lambda: make_dataset(np.ones((2, 2)), np.array([0, 1]), 0), "num_classes"),
    (lambda: make_dataset(np.ones((2, 2)), np.array([0.0, 1.0]), 2), "y must hold integer"),
    (lambda: train.make_train(lambda p, d: (0.0, {}), optim.injectable("gd", 0.0), num_steps=0),
     "num_steps"),
    (lambda: train.make_train(lambda p, d: (0.0, {}), optim.injectable("gd", 0.0), num_steps=10,
                              log_every=3), "log_every=3 must divide num_steps=10"),
    (lambda: train.check_learning_rates([]), "learning_rates must be a non-empty"),
    (lambda: train.check_learning_rates([0.1, float("nan")]), "learning_rates must be finite"),
    (lambda: train.check_learning_rates([-0.1]), "learning_rates must be finite and positive"),
    (lambda: optim.gd(-1.0), "learning_rate"),
    (lambda: optim.gd(0.1, momentum=1.0), "momentum"),
    (lambda: optim.adam(0.1, b2=1.5), "b2"),
    (lambda: optim.adam(0.1, eps=0.0), "eps"),
    (lambda: optim.injectable("lbfgs", 0.0), "optimizer must be one of"),
    (lambda: optim.parse_run("sgd+m"), "run 'sgd\\+m': optimizer"),
    (lambda: optim.parse_runs(""), "runs must name at least one run"),
    (lambda: losses.class_weights(jnp.array([3, 1]), "inverse_cube"), "weighting"),
    (lambda: losses.class_weights(jnp.array([3, -1]), "inverse"), "class_counts_C must be"),
    (lambda: losses.class_weights(jnp.array([0, 0]), "inverse"), "with a positive total"),
    (lambda: metrics.confusion_matrix(jnp.array([0, 5]), jnp.array([0, 1]), 3),
     r"labels_N must be integer class ids in \[0, 3\)"),
    (lambda: data.frequency_groups(np.array([np.nan, 1.0])), "class_counts must be finite"),
    (lambda: data.take(make_dataset(np.ones((3, 2)), np.array([0, 1, 1]), 2), [7]),
     r"indices must lie in \[-3, 3\)"),
    (lambda: models.MLP(3, hidden=(4, 0)).init(jax.random.key(0), jnp.ones((1, 2))),
     r"hidden widths must be >= 1, got \(4, 0\)"),
    (lambda: losses.long_tail.logit_adjusted_loss(jnp.zeros((2, 3)), jnp.array([0.0, 1.0]),
                                                  jnp.array([3, 2, 1])), "labels_N must hold int"),
    (lambda: losses.long_tail.vs_loss(jnp.zeros((2, 3)), jnp.array([0, 1]), jnp.array([3, 2])),
     r"class_counts_C must have shape \[C=3\]"),
    (lambda: losses.long_tail.ldam_loss(jnp.zeros((2, 3)), jnp.array([0, 1]),
                                        jnp.array([3, -2, 1])), "class_counts_C must be finite"),
    (lambda: losses.long_tail.ldam_loss(jnp.zeros((2, 3)), jnp.array([0, 1]), jnp.array([3, 2, 1]),
                                        max_margin=-1.0), "max_margin must be finite >= 0"),
    (lambda: losses.long_tail.logit_adjusted_loss(jnp.zeros((2, 3)), jnp.array([0, 1]),
                                                  jnp.array([3, 2, 1]), tau=float("nan")),
     "tau must be finite"),
    (lambda: losses.long_tail.focal_loss(jnp.zeros((2, 3)), jnp.array([0, 1]), -1.0),
     "gamma must be finite >= 0"),
    (lambda: metrics.per_class_mean(jnp.ones(2), jnp.array([0, 3]), 3),
     r"labels_N must be integer class ids in \[0, 3\)"),
    (lambda: data.frequency_groups([4, 2, 1], num_groups=0), "num_groups"),
    (lambda: data.frequency_groups([4, -2, 1]), "class_counts"),
    (lambda: data.heavy_tailed_labels(jax.random.key(0), 0), r"m must be an integer in \[1, 26\]"
     ),
    (lambda: data.heavy_tailed_labels(jax.random.key(0), 40), r"m must be an integer in \[1, 26\]"
     ),
    (lambda: data.heavy_tailed_labels(jax.random.key(0), 20), r"m=20 .* of memory .* lower m"),
    (lambda: data.heavy_tailed_labels(jax.random.key(0), 3, "cauchy"), "input_dist"),
    (lambda: data.heavy_tailed_images(jax.random.key(0), 3, image_size=2), "image_size"),
    (lambda: data.zipf_distribution(0), "num_classes"),
    (lambda: models.LinearSoftmax(3, init_scheme="xavier").init(jax.random.key(0),
                                                                jnp.ones((1, 2))),
     "init_scheme"),
    (lambda: train.select({}), "stats must hold at least one"),
    (lambda: train.tune(lambda e: {}, refine_rounds=-1), "refine_rounds must be >= 0"),
    (lambda: metrics.classification_metrics(np.zeros(3, np.int32))(None, None, _aux(_tiny()),
                                                                    _tiny()),
     "class_to_group"),
    (lambda: metrics.classification_metrics(np.array([0, -1])), "class_to_group"),
    (lambda: _checks.check_int_list("cnn_features", "16,x", minimum=1), "cnn_features"),
    (lambda: train.classification_objective(lambda p, x: x)(
        None, dataclasses.replace(_tiny(), y=_tiny().y.astype(jnp.float32))),
     "data.y must hold integer class ids, got float32"),
    (lambda: train.classification_objective(lambda p, x: x[:, :2])(None, _tiny()),
     r"the model's logits \(24, 2\) do not match data.y \(24,\) and data.num_classes=7"),
    (lambda: train.classification_objective(lambda p, x: x[:, 0])(None, _tiny()),
     r"the model's logits \(24,\) do not match"),
    (lambda: models.SmallCNN(3, features=(2,) * 4).init(jax.random.key(0), jnp.ones((1, 12, 12))),
     r"SmallCNN features=\(2, 2, 2, 2\) has 4 conv \+ pool layers, but a 12x12 input allows "
     "at most 3"),
    (lambda: models.LinearSoftmax(0).init(jax.random.key(0), jnp.ones((1, 2))),
     r"num_classes must be >= 1, got 0"),
    (lambda: data.corpus_files("wikitext2", "/"), r"data_dir='/' does not hold WikiText-2"),
    (lambda: data.load_corpus(f"text:{_binary_file()}"),
     r"binary.txt is not UTF-8 text \(byte 0: invalid start byte\)"),
    # bounded before the tokenizer library is called: a huge size used to abort the process
    (lambda: data.train_tokenizer("bpe", "ab ab abc", vocab_size=10**9),
     "vocab_size=1000000000 is larger than the corpus supports: .* BPE makes at most 10 pieces"),
    (lambda: data.train_tokenizer("unigram", "ab ab abc", vocab_size=10**9),
     "vocab_size=1000000000 is larger than the corpus"),
]


@pytest.mark.parametrize("call,match", API_CASES, ids=[str(i) for i in range(len(API_CASES))])
def test_bad_public_api_argument_is_named(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_subword_size_errors_name_the_binaries_field():
  from experiments import language_data
  with pytest.raises(ValueError, match=r"config.subword_vocab_size=1000 is too large for bpe"):
    language_data.fit_tokenizer("bpe", "ab ab abc", 1000)


def test_memory_advice_names_the_vocabulary_when_the_logits_dominate(monkeypatch):
  monkeypatch.setattr(_checks, "available_memory_bytes", lambda: 2**30)
  with pytest.raises(ValueError, match=r"vocabulary 1048576\) needs about .* lower "
                                       r"config.subword_vocab_size \(the logits dominate\)"):
    resolve("transformer_ptb", preset="fig17", tokenizer="bpe", subword_vocab_size=2**20)


def test_at_least_forty_bad_inputs():
  assert len(CONFIG_CASES) + len(API_CASES) >= 40
  assert {c[0] for c in FIELD_CASES} == set(BINARIES)


def test_damaged_summary_is_set_aside_by_reproduce_and_named_by_the_report(tmp_path):
  from experiments import report, reproduce
  path = tmp_path / "heavy_tailed_linear" / "quick"
  path.mkdir(parents=True)
  (path / "summary.json").write_text('{"gd": {"learning_rate": 0.')  # a partial copy
  state = {"heavy_tailed_linear/quick": {"status": "done"}}
  with pytest.raises(ValueError, match=r"cannot read .*quick/summary.json .*rerun `python -m "
                                       r"experiments.reproduce"):
    report.load_run(str(tmp_path), "heavy_tailed_linear", "quick")
  assert not reproduce.is_done(state, str(tmp_path), "heavy_tailed_linear", "quick")
  assert (path / "summary.json.damaged").exists() and not (path / "summary.json").exists()
  (path / "summary.json").write_text('{"gd": {}}')
  assert reproduce.is_done(state, str(tmp_path), "heavy_tailed_linear", "quick")
