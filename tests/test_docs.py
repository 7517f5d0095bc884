"""The tutorial runs as written, and the API page names only things that exist."""

import importlib
import importlib.util
import os
import re


DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def python_blocks(name):
  with open(os.path.join(DOCS, name)) as f:
    return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_tutorial_executes(capsys):
  namespace = {}
  for block in python_blocks("tutorial.md"):
    exec(compile(block, "docs/tutorial.md", "exec"), namespace)
  tuned = namespace["tuned"]
  rarest = {name: t.best_history["group_loss"][:, -1, -1].mean() for name, t in tuned.items()}
  # The claim the tutorial makes in prose.
  assert rarest["gd"] > 3.0 and rarest["sign_descent"] < 0.5 and rarest["adam"] < 0.5
  out = capsys.readouterr().out
  assert "saved" in out
  runs = namespace["runs"]  # section 7: the study in one file, run through experiment.run_in
  assert runs["gd"].rarest_loss > runs["adam"].rarest_loss
  assert "config.m must be an integer in [1, 12], got 0" in out and "all_runs.png" in out


def resolve(dotted):
  if dotted.startswith("experiments.") and dotted.count(".") == 1:
    # Binaries define absl flags on import; importing two would clash.
    if importlib.util.find_spec(dotted) is None:
      raise ImportError(dotted)
    return dotted
  parts = dotted.split(".")
  obj = importlib.import_module(parts[0])
  for i, part in enumerate(parts[1:], start=1):
    try:
      obj = getattr(obj, part)
    except AttributeError:
      obj = importlib.import_module(".".join(parts[:i + 1]))
  return obj


def test_api_page_names_exist():
  with open(os.path.join(DOCS, "api.md")) as f:
    names = set(re.findall(r"`((?:imbalance_jax|experiments)(?:\.\w+)+)", f.read()))
  assert len(names) > 30
  missing = []
  for name in sorted(names):
    try:
      resolve(name)
    except (ImportError, AttributeError):
      missing.append(name)
  assert not missing, missing
