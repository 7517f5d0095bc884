"""experiment.plan and `reproduce --plan`: XLA's FLOPs of a lowered step agree with the
analytic counts; the tuning's member count is what paper H's rule evaluates; the plan's
arithmetic and files; the GPU check's degraded CPU mode."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import heavy_tailed_linear, transformer_ptb
from imbalance_jax import experiment as ex, models
from imbalance_jax.experiment import plan
from imbalance_jax.train import selection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("m", [6, 8])
def test_linear_step_flops_match_the_matmul_count(m):
  """Logits and weight gradient: 2 n d c each; softmax, metrics and Adam (O(n c + c d))
  add a few percent at m=6, under 1% at m >= 7."""
  config = plan.preset_values(heavy_tailed_linear.CONFIG, "quick", m=m, runs="adam")
  [step] = heavy_tailed_linear.plan_steps(config)
  n, d, c = m * 2**m, (m + 1) * 2**m, 2**m - 1
  assert step.analytic_flops == 4 * n * d * c
  measured = plan.measure(step, memory=False)
  assert measured.parameters == c * (d + 1)
  np.testing.assert_allclose(measured.step_flops, 4 * n * d * c, rtol=0.03)
  assert measured.mean_flops >= measured.step_flops  # the logged step also records metrics


def test_transformer_step_flops_match_flops_per_token():
  """A mini-batch step of 4 micro-batches: XLA counts a loop body once, the plan lowers the
  step in one pass; its FLOPs are models.flops_per_token x tokens (matmuls) within 10%."""
  config = plan.preset_values(transformer_ptb.CONFIG, "quick_fig17", num_windows=64,
                              batch_size=16, accumulation_steps=4, d_model=64, mlp_dim=64)
  [step] = transformer_ptb.plan_steps(config)
  vocab = transformer_ptb.CORPUS_TOKENS["ptb"][2]
  arch = {**models.TRANSFORMER_CONFIGS[config.model], "d_model": 64, "mlp_dim": 64}
  expected = models.flops_per_token(vocab, config.seq_len, **arch) * 16 * config.seq_len
  assert step.analytic_flops == pytest.approx(expected)
  measured = plan.measure(step, memory=False)
  np.testing.assert_allclose(measured.step_flops, expected, rtol=0.1)
  looped = plan._flops(plan.lowered_step(step, False))  # as the run compiles it
  assert looped < 0.5 * measured.step_flops


@pytest.mark.parametrize("refine_rounds", [0, 1, 2])
def test_members_are_what_paper_h_rule_evaluates(refine_rounds):
  """seeds x (grid + 2 per round) when the best step size is interior (selection.tune)."""
  grid, seeds = ex.Grid(refine_rounds=refine_rounds), 3
  def evaluate(exponents):
    return {e: selection.LossStats(initial=np.ones(1), final=np.array([abs(e + 2.3)]),
                                   max=np.ones(1), finite=np.array([True])) for e in exponents}
  _, stats = selection.tune(evaluate, exponents=grid.exponents, refine_rounds=refine_rounds)
  step = plan.StepPlan("x", None, None, None, num_seeds=seeds, grid=grid)
  assert step.members == seeds * len(stats) and step.programs == 1 + refine_rounds


def test_cost_arithmetic():
  step = plan.StepPlan("x", type("T", (), {"num_steps": 100})(), None, None, num_runs=2,
                       num_seeds=3, grid=ex.Grid((-1.0, 0.0), 1), data_per_seed=True)
  measured = plan.Measured(parameters=5, step_flops=1e9, mean_flops=2e9, state_bytes=10**9,
                           temp_bytes=10**9, data_bytes=10**10)
  row = plan.cost(step, measured, peak_flops=1e12, mfu=0.5)
  assert row["members"] == 12 and row["rounds"] == 2 and row["bytes_per_member"] == 2e9
  assert row["members_fit"] == (80e9 - 3e10) // 2e9 == 25
  assert row["total_flops"] == 2e9 * 100 * 12 * 2
  assert row["hours"] == pytest.approx(row["total_flops"] / 0.5e12 / 3600)


def test_reproduce_plan_writes_every_preset(tmp_path):
  """--plan lists every preset of the selected binaries (lowered or with a note)."""
  subprocess.run([sys.executable, "-m", "experiments.reproduce", f"--workdir={tmp_path}",
                  "--plan", "--only=transformer_last_layer,theory_figures"], cwd=ROOT,
                 check=True, capture_output=True, timeout=300)
  with open(tmp_path / "plan.json") as f:
    out = json.load(f)
  presets = {(r["binary"], r["preset"]) for r in out["rows"]}
  assert presets == {("theory_figures", "quick"), ("transformer_last_layer", "quick")}
  lowered = [r for r in out["rows"] if "hours" in r]
  assert len(lowered) == 1 and lowered[0]["members_fit"] > 0 and lowered[0]["runs"] == 8
  assert out["total_hours"] == pytest.approx(sum(r["hours"] for r in lowered))


@pytest.mark.slow  # about 15 s of CPU: two subprocess imports, four compiles
def test_gpu_check_runs_degraded_on_the_cpu(tmp_path):
  out = tmp_path / "check.json"
  subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--platform=cpu", "--tiny",
                  "--only=transformer_last_layer", "--steps=1", f"--out={out}"], cwd=ROOT,
                 check=True, capture_output=True, timeout=300)
  result = json.loads(out.read_text())
  assert result["tiny"]["agree"] and result["rows"][0]["seconds_per_step"] > 0


def test_every_paper_preset_resolves_for_the_plan():
  """No data directory is needed (nor checked for its files) to plan a paper preset."""
  from experiments import claims
  for binary in claims.BINARIES:
    module = claims.binary_module(binary)
    for preset in claims.load(binary).paper_runs:
      assert plan.preset_values(module.CONFIG, preset).preset == preset


def test_hutchinson_probe_batches_are_counted_at_full_flops():
  """curvature_cnn maps its Hutchinson probes in batches (`probes_at_once`): the loop's body
  is counted once by XLA, so the plan reads the FLOPs of the one-vmap step (`flops_train`);
  the logged step's FLOPs do not depend on the batching."""
  from experiments import curvature_cnn
  small = dict(num_bits=1, copies=2, plain_per_digit=4, cnn_features="2,4", num_probes=8,
               log_every=2, num_steps=4, snapshot_steps="0,4", map_classes=4)
  flops = {}
  for probes in (0, 2):
    config = plan.preset_values(curvature_cnn.CONFIG, "quick", probes_at_once=probes,
                                chunk_size=16, **small)
    step = curvature_cnn.plan_steps(config)[0]
    flops[probes] = plan.measure(step, memory=False).mean_flops
    if probes:  # as compiled, the 4 batches of 2 probes count as one batch
      looped, unrolled = (plan._flops(plan.lowered_step(step, True, plan.one_pass(train)))
                          for train in (step.train, step.flops_train))
      assert looped < 0.9 * unrolled
  np.testing.assert_allclose(flops[2], flops[0], rtol=1e-6)


def test_catalogue_plan_lowers_each_costlier_optimizer_on_its_own():
  """optimizer_catalogue: runs with elementwise updates share one program's cost; Muon (its
  Newton-Schulz iterations) is lowered on its own and costs more per step."""
  from experiments import optimizer_catalogue
  config = plan.preset_values(optimizer_catalogue.CONFIG, "quick", tasks="linear", m=4,
                              runs="gd+m,adam+m,muon+m,signum+m")
  steps = optimizer_catalogue.plan_steps(config)
  assert [(s.name, s.num_runs) for s in steps] == [("linear: gd+m and 2 more", 3),
                                                    ("linear: muon+m", 1)]
  gd, muon = (plan.measure(s, memory=False).step_flops for s in steps)
  assert muon > 1.2 * gd


def test_every_binary_is_lowered_or_says_why_not():
  """Every registered binary gives the plan its steps (`plan_steps`) or, training no network,
  a `plan_note`: no paper preset is left out of the plan's hours unexplained."""
  from experiments import claims
  for binary in claims.BINARIES:
    module = claims.binary_module(binary)
    assert hasattr(module, "plan_steps") != hasattr(module, "plan_note"), binary
