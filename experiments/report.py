"""The reproduction report: what each paper figure and claim gave in our runs.

`write` renders ``report.md`` and a self-contained ``report.html`` (figures
embedded as data URIs) from a `experiments.reproduce` work directory: every
figure, number and verdict comes from the runs' files and the claims in
`experiments.claims`; the corrections to the papers are quoted from
``docs/theory.md`` and ``docs/curvature.md``, where they are derived.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import platform
import re
import shutil
from collections.abc import Mapping, Sequence

import jax
import markdown
from absl import app, flags

from experiments import claims as claims_lib
from imbalance_jax import results

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
_MARK = {"held": "✔ held", "did not hold": "✘ did not hold", "not run": "○ not run",
         "could not measure": "⚠ could not measure"}
_COLOR = {"held": "#1a7f37", "did not hold": "#cf222e", "not run": "#6e7781",
          "could not measure": "#9a6700"}


def load_run(workdir: str, binary: str, preset: str) -> claims_lib.RunResult | None:
  path = os.path.join(workdir, binary, preset)
  summary_path = os.path.join(path, "summary.json")
  if not os.path.exists(summary_path):
    return None
  try:
    with open(summary_path) as f:
      return claims_lib.RunResult(preset, json.load(f), path)
  except (OSError, ValueError) as error:
    raise ValueError(f"cannot read {summary_path} ({error}); rerun `python -m "
                     f"experiments.reproduce --workdir={workdir}`, which sets a damaged summary "
                     "aside and redoes that run from its checkpoints") from error


def _figure_order(figure: str) -> tuple:
  numbers = [int(n) for n in re.findall(r"\d+", figure)]
  return (not figure.startswith("Fig"), numbers or [10**6], figure)


def corrections(docs_dir: str = DOCS) -> list[tuple[str, str]]:
  """(source, markdown) of every correction to a paper documented in the docs.

  ``docs/theory.md``: each paragraph that opens with ``**Correction`` or
  ``*Typo:*``, up to the next evidence table, figure note or heading.
  ``docs/curvature.md``: its section "Where we differ from the paper".
  ``docs/language.md``: its section "Where we differ from the authors' code".
  """
  found = []
  with open(os.path.join(docs_dir, "theory.md")) as f:
    lines = f.read().splitlines()
  i = 0
  while i < len(lines):
    line = lines[i]
    start = line.find("*Typo:*")
    if line.startswith("**Correction") or start >= 0:
      block = [line[max(start, 0):]]
      i += 1
      stop = ("#", "Evidence", "Tests", "Figure", "**", "*Typo")
      while i < len(lines) and not lines[i].startswith(stop):
        block.append(lines[i])
        i += 1
      found.append(("docs/theory.md", "\n".join(block).strip()))
    else:
      i += 1
  with open(os.path.join(docs_dir, "curvature.md")) as f:
    text = f.read()
  section = re.search(r"^## Where we differ from the paper.*?\n(.*?)(?=^## )", text, re.S | re.M)
  if section:
    found.append(("docs/curvature.md", section.group(1).strip()))
  with open(os.path.join(docs_dir, "language.md")) as f:
    text = f.read()
  section = re.search(r"^## Where we differ from the authors' code.*?\n(.*?)(?=^## |\Z)", text,
                      re.S | re.M)
  if section:
    found.append(("docs/language.md", section.group(1).strip()))
  return found


def _format_number(value) -> str:
  if value is None:
    return "n/a"
  if value == 0 or 1e-3 <= abs(value) < 1e4:
    return f"{value:.4g}"
  return f"{value:.3e}"


def _header(experiments, state, sessions, verdicts) -> list[str]:
  counts = {s: sum(v.status == s for _, _, v in verdicts) for s in _MARK}
  finished = {k: v for k, v in state.items() if v.get("status") == "done"}
  total = sum(v["seconds"] for v in finished.values())
  scales = sorted({v.get("scale", "cpu") for v in finished.values()}) or ["none"]
  out = ["# Reproduction report", ""]
  out += [f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} by "
          "`python -m experiments.reproduce`; scale: " + ", ".join(scales) + ". "
          f"{len(finished)} runs finished; their wall times add up to {total / 60:.1f} min"
          + "".join(f"; invocation {i + 1} made {len(s['runs'])} runs, {s['jobs']} at a time, in "
                    f"**{s['seconds'] / 60:.1f} min**" for i, s in enumerate(sessions))
          + f" ({os.cpu_count()} CPU cores, {platform.machine()}, JAX {jax.__version__} on "
          f"{jax.devices()[0].platform}). Every number below is read from the runs' "
          "`summary.json` files; each criterion is declared in `experiments/claims/<binary>.py`.",
          ""]
  out += ["**Verdicts:** " + ", ".join(f"{n} {_MARK[s]}" for s, n in counts.items() if n), ""]
  out += ["| paper | figure | claim | run | verdict |", "|---|---|---|---|---|"]
  out += [f"| {c.paper} | {c.figure} | {c.statement} | `{e.binary}/{c.run}` | "
          f"{_MARK[v.status]} |" for e, c, v in verdicts]
  return out + [""]


def _by_figure(experiments, verdicts, paper: str) -> dict[str, dict[str, list]]:
  """``{figure: {"figures": [(e, fig)], "claims": [(e, c, v)], "gpu": [e]}}`` of one paper."""
  figures = {}
  entry = lambda figure: figures.setdefault(  # noqa: E731
      figure, {"figures": [], "claims": [], "gpu": []})
  for e in experiments:
    for fig in e.figures:
      if fig.paper == paper:
        entry(fig.figure)["figures"].append((e, fig))
    for ident in e.gpu_only:
      p, _, figure = ident.partition(" ")
      if p == paper:
        entry(figure)["gpu"].append(e)
  for e, c, v in verdicts:
    if c.paper == paper:
      entry(c.figure)["claims"].append((e, c, v))
  return figures


def _figure_section(workdir, state, paper, figure, entry) -> list[str]:
  out = [f"### {paper} {figure}", ""]
  for e, fig in entry["figures"]:
    rel = os.path.join(e.binary, fig.run, fig.file)
    if os.path.exists(os.path.join(workdir, rel)):
      out += [f"![{fig.caption}]({rel})", "", f"*{fig.caption}* (`{rel}`)", ""]
    else:
      out += [f"*{fig.caption}*: not produced (`{rel}` is missing; run "
              f"`{e.binary}` preset `{fig.run}`).", ""]
  for e, c, v in entry["claims"]:
    seconds = state.get(f"{e.binary}/{c.run}", {}).get("seconds")
    took = f", {seconds / 60:.1f} min" if seconds is not None else ""
    out += [f"**Claim.** {c.statement}", "",
            f"- Run: `{e.binary}` preset `{c.run}`{took}",
            "- Criterion: " + "; ".join(f"`{k}`" for k in map(str, c.criteria)),
            "- Numbers: " + (", ".join(f"`{k}` = {_format_number(x)}"
                                      for k, x in v.numbers.items()) or "none"),
            f"- Verdict: **{_MARK[v.status]}**"
            + (f" (failed: {', '.join(v.failed)})" if v.failed else "")
            + (f" ({v.error})" if v.error else ""), ""]
  for e in entry["gpu"]:
    out += [f"GPU scale only: `{e.binary}` at `--scale=paper` "
            f"(presets {', '.join(e.paper_runs)}); not run here.", ""]
  return out


def render_markdown(workdir: str, experiments: Sequence[claims_lib.Experiment],
                    state: Mapping[str, Mapping], sessions: Sequence[Mapping] = ()) -> str:
  """The report as markdown; image paths are relative to ``workdir``."""
  runs = {(e.binary, p): load_run(workdir, e.binary, p)
          for e in experiments for p in {*e.cpu_runs, *e.paper_runs}}
  verdicts = [(e, c, c.evaluate(runs[(e.binary, c.run)])) for e in experiments for c in e.claims]
  out = _header(experiments, state, sessions, verdicts)
  for paper, title in claims_lib.PAPERS.items():
    figures = _by_figure(experiments, verdicts, paper)
    if figures:
      out += [f"## Paper {paper}: {title}", ""]
      for figure in sorted(figures, key=_figure_order):
        out += _figure_section(workdir, state, paper, figure, figures[figure])
  out += ["## Runs", "", "| run | status | wall time |", "|---|---|---|"]
  for e in experiments:
    for preset in {**{p: None for p in e.cpu_runs}, **{p: None for p in e.paper_runs}}:
      entry = state.get(f"{e.binary}/{preset}")
      if entry:
        out.append(f"| `{e.binary}/{preset}` | {entry['status']} | {entry['seconds'] / 60:.1f} min |")
  out += ["", "## Corrections to the papers", "",
          "Quoted from the docs, where each is derived and tested against a simulation.", ""]
  for source, text in corrections():
    out += [f"From `{source}`:", "", text, ""]
  return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
line-height:1.45;color:#222}img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top}code{background:#f4f4f4}
pre{background:#f4f4f4;padding:.5rem;overflow-x:auto}"""


def render_html(markdown_text: str, workdir: str) -> str:
  """Self-contained HTML: every ``<img>`` of a local PNG becomes a data URI."""
  body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])

  def embed(match):
    path = os.path.join(workdir, match.group(1))
    if not os.path.exists(path):
      return match.group(0)
    with open(path, "rb") as f:
      data = base64.b64encode(f.read()).decode("ascii")
    return f'src="data:image/png;base64,{data}"'

  body = re.sub(r'src="([^"]+\.png)"', embed, body)
  for status, mark in _MARK.items():
    body = body.replace(mark, f'<span style="color:{_COLOR[status]};font-weight:600">{mark}</span>')
  return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Reproduction report"
          f"</title><style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def write(workdir: str, experiments: Sequence[claims_lib.Experiment], state: Mapping,
          sessions: Sequence[Mapping] = (), publish: str | None = None) -> list[str]:
  """Writes ``report.md`` and ``report.html`` into ``workdir`` (atomically).

  With ``publish``, also copies ``report.md`` and the figures it shows there,
  under the same relative paths (for a committed copy).
  """
  text = render_markdown(workdir, experiments, state, sessions)
  written = []
  for name, content in (("report.md", text), ("report.html", render_html(text, workdir))):
    path = os.path.join(workdir, name)
    with results.atomic_path(path) as tmp, open(tmp, "w") as f:
      f.write(content)
    written.append(path)
  if publish:
    for rel in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
      target = os.path.join(publish, rel)
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.copyfile(os.path.join(workdir, rel), target)
    path = os.path.join(publish, "report.md")
    with results.atomic_path(path) as tmp, open(tmp, "w") as f:
      f.write(text)
    written.append(path)
  return written


def main(argv):
  del argv
  if not flags.FLAGS.docs_index:
    raise app.UsageError("report.write is called by experiments.reproduce; this command only "
                         "has --docs_index")
  claims_lib.write_docs_index(os.path.join(DOCS, "index.md"))
  print(f"Wrote the experiments table of {os.path.join(DOCS, 'index.md')}")


if __name__ == "__main__":
  flags.DEFINE_bool("docs_index", False, "Regenerate the experiments table of docs/index.md "
                    "from experiments/claims (a test checks it is current).")
  app.run(main)
