"""The heavy-tailed linear binary end to end on a tiny config.

Its kill-and-resume (summary.json, metrics.jsonl and npz equal to an uninterrupted
run's, only the unsaved units redone) is tests/test_resume.py's; a bad field on its
command line stopping it before any work is tests/test_bad_inputs.py's.
"""

import collections
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from imbalance_jax import data, models, optim, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--config.m=3", "--config.num_seeds=2", "--config.num_steps=20", "--config.log_every=5",
        "--config.num_groups=3",
        "--config.runs=gd,sign_descent+m,adam+m@inverse_sqrt"]


def run_binary(workdir, *extra):
  cmd = [sys.executable, "-m", "experiments.heavy_tailed_linear", f"--workdir={workdir}", *ARGS,
         *extra]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_writes_results(tmp_path):
  out = run_binary(tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert set(summary) == {"gd", "sign_descent+m", "adam+m@inverse_sqrt"}
  for entry in summary.values():
    assert entry["learning_rate"] > 0 and entry["final_loss"] >= 0
    assert len(entry["final_group_losses"]) == 3  # m=3: 7 classes, three groups
    assert all(isinstance(lr, float) for lr in entry["diverged"])
  config = json.loads((tmp_path / "config.json").read_text())
  assert config["m"] == 3 and config["preset"] == "quick"
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  record = json.loads(lines[0])
  assert {"run", "learning_rate", "seed", "step", "loss", "group_loss"} <= set(record)
  assert len(lines) == 3 * (8 + 2) * 2 * 5  # runs x step sizes x seeds x logged steps
  for name in ("overview.png", "all_runs.png"):
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert "step sizes in" in out.stderr  # progress is printed
  records = [json.loads(line) for line in lines]
  check_summary_against_records(summary, records)
  check_gd_against_a_direct_sweep(summary, records)


def test_fixed_step_size_and_horizons(tmp_path):
  out = run_binary(tmp_path, "--config.runs=gd", "--config.learning_rate=0.5",
                   "--config.num_steps=1000", "--config.log_every=100", "--config.num_seeds=1")
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["gd"]["learning_rate"] == 0.5 and list(summary["gd"]["scores"]) == ["0.5"]
  assert (tmp_path / "horizons.png").exists()


# Other bad values (run names, presets, input distributions) are unit-tested where
# they are parsed; the command line path (a bad field stops the binary, nothing written)
# is tests/test_bad_inputs.py::test_bad_command_line_stops_every_binary_before_any_work.
@pytest.mark.parametrize("field,value,match", [("m", 0, "m must"),
                                               ("learning_rate", -1.0, "learning_rate")])
def test_bad_config_is_a_clear_error(field, value, match):
  from experiments import claims
  with pytest.raises(ValueError, match=match):
    claims.binary_module("heavy_tailed_linear").CONFIG.resolve({field: value})


def members(records, run):
  """``{(learning_rate, seed): [records by step]}`` of one run."""
  out = collections.defaultdict(list)
  for r in records:
    if r["run"] == run:
      out[(r["learning_rate"], r["seed"])].append(r)
  return {k: sorted(v, key=lambda r: r["step"]) for k, v in out.items()}


def check_summary_against_records(summary, records):
  """summary.json is what the per-step records in metrics.jsonl say."""
  for run, entry in summary.items():
    by_member = members(records, run)
    rates = sorted({lr for lr, _ in by_member})
    flagged = {}
    for (lr, seed), history in by_member.items():
      assert [r["step"] for r in history] == [0, 5, 10, 15, 20]
      assert len({r["diverged"] for r in history}) == 1  # one verdict per member
      flagged[lr, seed] = history[0]["diverged"]
      losses = [r["loss"] for r in history]
      if None in losses or max(losses) > 1.5 * losses[0]:
        assert flagged[lr, seed], (run, lr, seed)  # a visible blow-up is always flagged
    assert entry["diverged"] == pytest.approx([lr for lr in rates
                                               if flagged[lr, 0] or flagged[lr, 1]])
    for lr in rates:
      score = max(by_member[lr, s][0]["loss"] if flagged[lr, s] else by_member[lr, s][-1]["loss"]
                  for s in (0, 1))
      assert entry["scores"][f"{lr:.6g}"] == pytest.approx(score, rel=1e-6)
    best = [by_member[entry["learning_rate"], s][-1] for s in (0, 1)]
    assert not any(flagged[entry["learning_rate"], s] for s in (0, 1))
    assert entry["final_loss"] == pytest.approx(np.mean([r["loss"] for r in best]), rel=1e-6)
    assert entry["final_loss_max_over_seeds"] == pytest.approx(max(r["loss"] for r in best),
                                                               rel=1e-6)
    np.testing.assert_allclose(entry["final_group_losses"],
                               np.mean([r["group_loss"] for r in best], 0), rtol=1e-6)


def check_gd_against_a_direct_sweep(summary, records):
  """The gd run recomputed here, every step logged: divergence verdicts, losses, group losses."""
  key = jax.random.key(0)  # config.seed
  data_key, init_key = jax.random.split(key)
  ds = jax.vmap(lambda k: data.heavy_tailed_labels(k, 3))(jax.random.split(data_key, 2))
  model = models.LinearSoftmax(ds.num_classes)
  params_S = jax.vmap(lambda k: model.init(k, ds.x[0, :1]))(jax.random.split(init_key, 2))
  by_member = members(records, "gd")
  rates = np.array(sorted({lr for lr, _ in by_member}))
  run = train.make_train(train.classification_objective(model.apply), optim.injectable("gd", 0.0),
                         num_steps=20, log_every=1)
  result = jax.device_get(train.Sweep(run)(params_S, ds, rates))
  losses = np.asarray(result.history["loss"], np.float64)  # [S, L, 21]
  with np.errstate(invalid="ignore"):
    diverged = ~np.all(np.isfinite(losses), -1) | (np.nanmax(losses, -1) > 1.5 * losses[..., 0])
  assert diverged.any() and not diverged.all()  # both verdicts are checked
  for (lr, seed), history in by_member.items():
    i = int(np.argmin(np.abs(rates - lr)))
    assert history[0]["diverged"] == diverged[seed, i], (lr, seed)
    if not diverged[seed, i]:
      np.testing.assert_allclose([r["loss"] for r in history], losses[seed, i, ::5], rtol=1e-4)
  entry = summary["gd"]
  i = int(np.argmin(np.abs(rates - entry["learning_rate"])))
  assert entry["diverged"] == pytest.approx(rates[diverged.any(0)].tolist())
  groups = data.frequency_groups(np.asarray(ds.class_counts[0]), 3)
  by_hand = []
  for s in range(2):
    head = result.params["params"]["head"]
    logits = (np.asarray(ds.x[s], np.float64) @ head["kernel"][s, i].astype(np.float64)
              + head["bias"][s, i])
    loss_N = (np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
              - logits[np.arange(len(logits)), np.asarray(ds.y[s])])
    group_N = groups[np.asarray(ds.y[s])]
    by_hand.append([loss_N[group_N == g].mean() for g in range(3)])
  np.testing.assert_allclose(entry["final_group_losses"], np.mean(by_hand, 0), rtol=1e-4)
