"""experiments.reproduce: the registry covers every binary and every documented figure;
claims decide verdicts; one real run end to end, resumed without rerunning."""

import json
import os
import re
import subprocess
import sys

import pytest

from experiments import claims, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS_DIR = os.path.join(ROOT, "experiments")
_FIGURE = re.compile(r"\b([A-Z]{1,3}) ((?:Fig|Thm|Prop|Sec|Table) \d+(?: / (?:Fig|Thm) \d+)?"
                     r"|abstract|smoothness|rates)( \(GPU\))?")


def _binaries_on_disk():
  """Every experiments/<name>.py that is an experiment binary (it launches a Config)."""
  found = []
  for name in sorted(os.listdir(EXPERIMENTS_DIR)):
    if name.endswith(".py"):
      with open(os.path.join(EXPERIMENTS_DIR, name)) as f:
        if "ex.launch(CONFIG, run)" in f.read():
          found.append(name[:-3])
  return found


def test_every_binary_is_registered_with_reproduce():
  """The registry is derived from experiments/claims/: every binary has its claims module,
  every claims module its binary."""
  on_disk = _binaries_on_disk()
  assert len(on_disk) >= 11
  assert sorted(claims.BINARIES) == on_disk
  assert "reproduce" not in on_disk and "report" not in on_disk


def test_binaries_run_cheapest_first():
  cost = [sum(claims.load(b).cpu_runs.values()) for b in claims.BINARIES]
  assert cost == sorted(cost)


@pytest.mark.parametrize("binary", claims.BINARIES)
def test_registered_presets_exist(binary):
  experiment = claims.load(binary)
  module = claims.binary_module(binary)
  for preset in [*experiment.cpu_runs, *experiment.paper_runs]:
    assert preset in module.CONFIG.presets, f"{binary}: preset {preset!r} is not in its CONFIG"
  assert experiment.cpu_runs and experiment.claims and experiment.test_flags
  for claim in experiment.claims:
    assert claim.run in experiment.cpu_runs or claim.run in experiment.paper_runs
    assert claim.paper in claims.PAPERS and claim.criteria
  # The tiny flags of the binary's tests name its fields with valid values.
  overrides = dict(flag.removeprefix("--config.").split("=", 1) for flag in experiment.test_flags)
  assert set(overrides) <= {"preset", *module.CONFIG.fields}, overrides


def test_docs_index_table_is_the_generated_one():
  """docs/index.md's experiments table is `claims.docs_table()` (regenerate it with
  ``python -m experiments.report --docs_index``)."""
  with open(os.path.join(ROOT, "docs", "index.md")) as f:
    text = f.read()
  assert claims.docs_table() in text


def _index_figures():
  """(binary, paper, figure, gpu) for every figure in docs/index.md's experiment table."""
  with open(os.path.join(ROOT, "docs", "index.md")) as f:
    rows = [line for line in f if line.startswith("| `")]
  found = []
  for row in rows:
    binary = re.match(r"\| `(\w+)`", row).group(1)
    for paper, figure, gpu in _FIGURE.findall(row.split("|")[2]):
      found.append((binary, paper, figure, bool(gpu)))
  return found


def test_every_documented_figure_maps_to_a_binary_or_is_gpu_scale():
  documented = _index_figures()
  assert {b for b, *_ in documented} == set(claims.BINARIES)
  for binary, paper, figure, gpu in documented:
    experiment = claims.load(binary)
    produced = ({(f.paper, f.figure) for f in experiment.figures}
                | {(c.paper, c.figure) for c in experiment.claims})
    if gpu:
      assert f"{paper} {figure}" in experiment.gpu_only, (binary, paper, figure)
    else:
      assert (paper, figure) in produced, (binary, paper, figure)


def test_claim_verdicts():
  claim = claims.Claim("H", "Fig 4", "GD lags on rare classes", "quick",
                       lambda run: {"ratio": run.summary["gd"] / run.summary["adam"]},
                       (claims.at_least("ratio", 5.0), claims.at_most("ratio", 100.0)))
  held = claim.evaluate(claims.RunResult("quick", {"gd": 3.0, "adam": 0.3}))
  assert held.status == "held" and held.numbers == {"ratio": pytest.approx(10.0)}
  failed = claim.evaluate(claims.RunResult("quick", {"gd": 1.0, "adam": 0.5}))
  assert failed.status == "did not hold" and failed.failed == ("ratio ≥ 5",)
  too_big = claim.evaluate(claims.RunResult("quick", {"gd": 1000.0, "adam": 1.0}))
  assert too_big.failed == ("ratio ≤ 100",)
  assert claim.evaluate(None).status == "not run"
  broken = claim.evaluate(claims.RunResult("quick", {"gd": 1.0}))
  assert broken.status == "could not measure" and "adam" in broken.error
  nan = claim.evaluate(claims.RunResult("quick", {"gd": float("nan"), "adam": 1.0}))
  assert nan.status == "did not hold"
  with pytest.raises(ValueError, match="Criterion.op"):
    claims.Criterion("x", "=>", 1.0)


def test_corrections_are_quoted_from_the_docs():
  found = report.corrections()
  sources = [s for s, _ in found]
  assert "docs/curvature.md" in sources and sources.count("docs/theory.md") >= 2
  texts = "\n".join(t for _, t in found)
  assert "Lemma 7" in texts and "eq. (14)" in texts and "Sign of the gradient" in texts
  assert "docs/language.md" in sources and "NotImplementedError" in texts


def _reproduce(workdir, *args):
  return subprocess.run([sys.executable, "-m", "experiments.reproduce", f"--workdir={workdir}",
                         *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_unknown_binary_is_refused(tmp_path):
  proc = _reproduce(tmp_path, "--only=theory_figure")
  assert proc.returncode != 0
  assert "--only: unknown binaries ['theory_figure']" in proc.stderr


def test_damaged_state_files_name_the_file_and_the_way_out(tmp_path):
  from experiments import reproduce
  path = tmp_path / reproduce.STATE_FILE
  assert reproduce.read_json(str(path), {}, "run status") == {}
  path.write_text('{"theory_figures/quick": {"status": "do')  # a partial copy
  with pytest.raises(ValueError, match=rf"cannot read {re.escape(str(path))} \(run status\).*"
                                       "remove it to rerun every preset"):
    reproduce.read_json(str(path), {}, "run status")
  path.write_text("[1, 2]")
  with pytest.raises(ValueError, match="holds a list, expected a dict; remove it"):
    reproduce.read_json(str(path), {}, "run status")


def test_reproduce_runs_reports_and_resumes(tmp_path):
  proc = _reproduce(tmp_path, "--only=theory_figures", f"--publish={tmp_path / 'published'}")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert re.search(r"\[1/1\] theory_figures/quick: done in \dm\d\ds \| elapsed", proc.stdout)
  with open(tmp_path / "reproduce.json") as f:
    state = json.load(f)
  assert state["theory_figures/quick"]["status"] == "done"
  with open(tmp_path / "sessions.json") as f:
    (session,) = json.load(f)
  assert session["runs"] == ["theory_figures/quick"] and session["seconds"] > 0

  text = (tmp_path / "report.md").read_text()
  experiment = claims.load("theory_figures")
  run = report.load_run(str(tmp_path), "theory_figures", "quick")
  for claim in experiment.claims:  # the report shows each claim's own verdict and numbers
    verdict = claim.evaluate(run)
    assert verdict.status == "held", (claim.figure, verdict)
    assert claim.statement in text
  assert text.count("✔ held") >= len(experiment.claims)
  assert "○ not run" in text  # the binaries not run here
  assert "invocation 1 made 1 runs" in text
  assert "![" in text and "theory_figures/quick/quadratic.png" in text
  html = (tmp_path / "report.html").read_text()
  assert html.count("data:image/png;base64,") >= len(experiment.figures)
  assert "<table>" in html
  assert (tmp_path / "published" / "report.md").exists()
  assert (tmp_path / "published" / "theory_figures" / "quick" / "quadratic.png").exists()

  again = _reproduce(tmp_path, "--only=theory_figures")
  assert again.returncode == 0, again.stderr
  assert "theory_figures/quick: already done" in again.stdout
  log = (tmp_path / "theory_figures" / "quick" / "log.txt").read_text()
  assert log.count("$ ") == 1  # not rerun


def test_failed_run_is_recorded_and_retried(tmp_path):
  # A run whose binary refuses its workdir fails; reproduce records it, reports and exits 1.
  (tmp_path / "theory_figures").mkdir()
  (tmp_path / "theory_figures" / "quick").mkdir()
  (tmp_path / "theory_figures" / "quick" / "config.json").write_text('{"preset": "other"}')
  proc = _reproduce(tmp_path, "--only=theory_figures")
  assert proc.returncode == 1
  assert "theory_figures/quick: failed in" in proc.stdout
  with open(tmp_path / "reproduce.json") as f:
    assert json.load(f)["theory_figures/quick"]["status"] == "failed"
  assert (tmp_path / "report.md").exists()
