"""The language binaries (paper H Figs 5, 17, 18, 20, 22, 26) end to end on tiny configs,
their resume, and the frozen-feature shortcut of the last-layer study."""

import importlib
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import claims, language_data
from experiments.language_data import curvature_diagnostics, frozen_features, head_params
from imbalance_jax import curvature, data, metrics, models, optim, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_binary(name, workdir, *flags):
  cmd = [sys.executable, "-m", f"experiments.{name}", f"--workdir={workdir}", *flags]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)


def zipf_text(num_lines=60, vocab=80, seed=0):
  rng = np.random.default_rng(seed)
  p = 1.0 / np.arange(1, vocab + 1)
  words = [f"w{chr(97 + k % 26)}{chr(97 + k // 26 % 26)}" for k in range(vocab)]
  draws = rng.choice(vocab, size=(num_lines, 10), p=p / p.sum())
  return "\n".join(" ".join(words[k] for k in row) for row in draws) + "\n"


@pytest.fixture(scope="module")
def ptb_dir(tmp_path_factory):
  """A tiny corpus in PTB's layout (TinyPTB trains on its valid split)."""
  path = tmp_path_factory.mktemp("ptb")
  for i, split in enumerate(("train", "valid", "test")):
    text = zipf_text(seed=i)
    if split == "train":
      text = "wzz <unk>\n" + text  # a type absent from the other splits, and <unk>
    (path / f"ptb.{split}.txt").write_text(text)
  return path


def test_frozen_features_head_equals_full_model_head_only(x64):
  """Training LinearSoftmax on the frozen features (chunked) = training the whole model with
  `head_only`: same head after Adam steps and the same per-group losses, float64."""
  stream = np.random.default_rng(0).integers(0, 11, 5 * 6 + 1)
  windows = data.next_token_windows(stream, 6, 11)
  model = models.make_transformer("simplified", 11, d_model=8, train_only_head=True,
                                  param_dtype=jnp.float64)
  params_S = jax.vmap(lambda k: model.init(k, windows.x[:1]))(
      jax.random.split(jax.random.key(0), 2))
  features = frozen_features(model, params_S, windows.x, chunk=2)  # 5 windows, chunks of 2
  assert features.shape == (2, 5, 6, 8)
  groups = data.frequency_groups(np.asarray(windows.class_counts), 3)
  metrics_fn = metrics.classification_metrics(groups)

  slow_run = jax.jit(train.make_train(
      train.classification_objective(model.apply),
      lambda lr: models.head_only(optim.adam(lr, momentum=0.9)), num_steps=6, log_every=3,
      metrics_fn=metrics_fn))
  head = models.LinearSoftmax(11, param_dtype=jnp.float64)
  fast_run = jax.jit(train.make_train(
      train.classification_objective(head.apply), optim.injectable("adam", 0.9), num_steps=6,
      log_every=3, metrics_fn=metrics_fn, batching=train.FullBatch(chunk_size=7)))
  for s in range(2):
    params = jax.tree.map(lambda a: a[s], params_S)  # noqa: B023
    slow = slow_run(params, windows, 0.05)
    quick = fast_run(head_params(params), data.per_token_dataset(windows, features[s]), 0.05)
    for name in ("kernel", "bias"):
      np.testing.assert_allclose(quick.params["params"]["head"][name],
                                 slow.params["params"]["head"][name], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(quick.history["group_loss"], slow.history["group_loss"],
                               rtol=1e-10)
    assert np.all(slow.params["params"]["embed"]["embedding"]
                  == params["params"]["embed"]["embedding"])


def test_curvature_diagnostics_against_exact_head_quantities(x64):
  """Fig 26 records: gradient norms equal the head gradient's columns; Hutchinson traces
  match the exact last-layer traces (a linear model on the features) within their error."""
  stream = np.random.default_rng(1).integers(0, 7, 4 * 5 + 1)
  windows = data.next_token_windows(stream, 5, 7)
  model = models.make_transformer("two_layer", 7, d_model=4, num_heads=2, mlp_dim=4,
                                  param_dtype=jnp.float64)
  params = model.init(jax.random.key(0), windows.x[:1])["params"]
  groups = data.frequency_groups(np.asarray(windows.class_counts), 2)
  out = curvature_diagnostics(model, windows, groups, key=jax.random.key(3),
                              num_probes=1000)(params)
  logits, feats = model.apply({"params": params}, windows.x, return_features=True)
  logits, feats = logits.reshape(-1, 7), feats.reshape(-1, 4)
  y = windows.flat_targets()
  p = jax.nn.softmax(logits)
  residual = (p - jax.nn.one_hot(y, 7)) / y.size  # d loss / d logits
  grad_w, grad_b = feats.T @ residual, residual.sum(0)
  np.testing.assert_allclose(out["grad_norm_C"], np.sqrt((grad_w**2).sum(0) + grad_b**2),
                             rtol=1e-10)
  exact = curvature.linear_block_traces(logits, feats, bias=True)
  assert np.all(np.abs(out["trace_C"] - exact) < 5 * out["trace_stderr_C"] + 1e-12)
  np.testing.assert_allclose(out["loss"], -jnp.mean(jnp.log(p[jnp.arange(y.size), y])),
                             rtol=1e-10)
  np.testing.assert_allclose(out["class_prob_C"][y[0]],
                             p[jnp.arange(y.size), y][y == y[0]].mean(), rtol=1e-10)


def test_compact_vocabulary():
  ids = np.array([5, 2, 5, 2, 5, 9, 5, 2, 5])
  w = data.next_token_windows(ids, 4, 12)
  valid = data.next_token_windows(np.array([5, 7, 2, 0, 5]), 4, 12)  # 7 is unseen
  out = language_data.compact_vocabulary({"train": w, "valid": valid}, unk_token_id=9)
  tr = out["train"]
  # kept types 2, 5, 9, ordered by their counts as targets: 5 (4 times), 2 (3), 9 (1)
  old = np.array([5, 2, 9])
  assert tr.num_classes == 3
  np.testing.assert_array_equal(old[np.asarray(tr.x)], np.asarray(w.x))
  np.testing.assert_array_equal(old[np.asarray(tr.y)], np.asarray(w.y))
  np.testing.assert_array_equal(tr.class_counts, np.bincount(np.asarray(tr.y).ravel(), None, 3))
  assert np.all(np.diff(np.asarray(tr.class_counts)) <= 0)
  np.testing.assert_array_equal(old[np.asarray(out["valid"].x)], [[5, 9, 2, 9]])  # 7, 0 -> unk
  with pytest.raises(ValueError, match="unk_token_id"):
    language_data.compact_vocabulary({"train": w, "valid": valid})


# The tiny flags of the binaries' kill-and-resume test (`Experiment.test_flags`).
LAST_LAYER = list(claims.load("transformer_last_layer").test_flags)


@pytest.mark.slow  # ~35 s of compiles; run with -m slow (docs/testing.md)
def test_last_layer_binary_writes_results_and_resumes(tmp_path, ptb_dir):
  args = [*LAST_LAYER, f"--config.corpus_dir={ptb_dir}"]
  out = run_binary("transformer_last_layer", tmp_path, *args)
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert set(summary) == {"gd", "adam"}
  for entry in summary.values():
    assert entry["learning_rate"] in (0.1, 1.0) and entry["final_loss"] > 0
    assert len(entry["final_group_losses"]) == 3 == len(entry["initial_group_losses"])
  dataset = json.loads((tmp_path / "dataset.json").read_text())
  assert dataset["num_windows"] == 10 and dataset["seq_len"] == 6
  counts = np.asarray(dataset["class_counts"])
  assert counts.sum() == 60 and np.all(np.diff(counts) <= 0)  # compacted, by frequency
  assert dataset["num_classes"] == counts.size < dataset["tokenizer_vocab_size"]
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == 2 * 2 * 2 * 3  # runs x step sizes x seeds x logged steps
  for name in ("overview.png", "all_runs.png"):
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  again = run_binary("transformer_last_layer", tmp_path, *args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stderr.count("restored from checkpoint") == 2
  assert json.loads((tmp_path / "summary.json").read_text()) == summary


PTB = list(claims.load("transformer_ptb").test_flags)


@pytest.mark.slow  # ~75 s of compiles; run with -m slow (docs/testing.md)
def test_ptb_binary_minibatch_validation_curvature_and_resume(tmp_path, ptb_dir):
  args = [*PTB, f"--config.corpus_dir={ptb_dir}"]
  out = run_binary("transformer_ptb", tmp_path, *args)
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert set(summary) == {"gd+m", "adam+m@inverse_sqrt"}
  for entry in summary.values():
    assert entry["learning_rate"] == 0.01
    assert len(entry["final_group_losses"]) == 3 == len(entry["final_valid_group_losses"])
    assert entry["final_valid_loss"] > 0
    curv = entry["curvature"]
    assert curv["steps"] == [0, 2, 4] and len(curv["spearman"]) == 3
    assert np.isclose(curv["loss"][0], entry["initial_group_losses"][0], rtol=0.5)
  npz = np.load(tmp_path / "curvature.npz")
  grad, trace = npz["gd+m/grad_norm_C"], npz["gd+m/trace_C"]
  dataset = json.loads((tmp_path / "dataset.json").read_text())
  assert grad.shape == trace.shape == (3, dataset["num_classes"])
  assert np.all(grad >= 0) and np.isfinite(trace).all()
  for name in ("overview.png", "all_runs.png", "validation.png", "curvature_gd+m.png"):
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  again = run_binary("transformer_ptb", tmp_path, *args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stderr.count("restored from checkpoint") == 2
  assert json.loads((tmp_path / "summary.json").read_text()) == summary


# The binaries' own command lines are checked for every binary in test_bad_inputs.py; these
# run `CONFIG.resolve`, the binaries' first step, in process.
@pytest.mark.parametrize("binary,field,value,match", [
    ("transformer_ptb", "log_every", 7, "config.log_every=7 must divide"),
    ("transformer_ptb", "runs", "gd,rmsprop", "config.runs must be"),
    ("transformer_last_layer", "exponents", "-1,x", "config.exponents must be"),
    ("transformer_ptb", "corpus", "wikitext103", "config.corpus_dir is required"),
])
def test_bad_config_field_is_refused_by_resolve(binary, field, value, match):
  module = importlib.import_module(f"experiments.{binary}")
  with pytest.raises(ValueError, match=re.escape(match)):
    module.CONFIG.resolve({field: value})


def test_width_not_divisible_by_heads_is_refused_by_resolve():
  module = importlib.import_module("experiments.transformer_last_layer")
  with pytest.raises(ValueError, match="divisible"):
    module.CONFIG.resolve({"d_model": 30, "num_heads": 4})
