"""The curvature binaries end to end on tiny configs."""

import json
import os
import subprocess
import sys

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
  assert set(summary["spearman"]) >= {"adam_init", "adam_end", "gd_end", "negated_path_end"}
  assert all(-1 <= summary["spearman"][k] <= 1 for k in ("adam_init", "adam_end", "gd_end",
                                                          "negated_path_end"))
  assert summary["diag_to_offdiag_trace_ratio"] > 1
  assert len(pngs(tmp_path)) >= 4


def test_curvature_cnn(tmp_path):
  out = run_binary("curvature_cnn", tmp_path, "--config.m=3", "--config.image_size=8",
                   "--config.cnn_features=4,8", "--config.num_steps=10", "--config.log_every=5",
                   "--config.num_probes=4", "--config.snapshot_steps=0,10",
                   "--config.map_classes=4", "--config.num_groups=3")
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary and len(pngs(tmp_path)) >= 2
