"""Result files: strict JSON (NaN/inf -> null) and atomic replacement."""

import json
import math
import os

import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import config_dict

from imbalance_jax import results


def strict_load(text):
  """json.loads that refuses the NaN/Infinity tokens Python's json would accept."""
  return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON token {c}"))


class Boom(Exception):
  pass


class Unconvertible:
  def __array__(self, dtype=None, copy=None):
    raise Boom


def test_to_jsonable_converts_numbers_arrays_and_containers():
  config = config_dict.ConfigDict({"lr": 0.5, "runs": "gd"})
  value = {"f": np.float32(0.25), "i": np.int64(3), "b": np.bool_(True), "nan": float("nan"),
           "inf": np.float64(np.inf), "ninf": -math.inf, "arr": np.array([[1.0, np.nan], [2, 3]]),
           "jax": jnp.array([1.5, jnp.inf]), "scalar": jnp.array(7), "tuple": (1, np.int32(2)),
           "config": config, 4: "int key", "s": "text"}
  out = results.to_jsonable(value)
  assert out == {"f": 0.25, "i": 3, "b": True, "nan": None, "inf": None, "ninf": None,
                 "arr": [[1.0, None], [2.0, 3.0]], "jax": [1.5, None], "scalar": 7,
                 "tuple": [1, 2], "config": {"lr": 0.5, "runs": "gd"}, "4": "int key",
                 "s": "text"}
  assert type(out["i"]) is int and type(out["b"]) is bool and type(out["f"]) is float
  json.dumps(out, allow_nan=False)  # really plain JSON


def test_write_json_and_jsonl_roundtrip_with_null_for_nan(tmp_path):
  path = tmp_path / "sub" / "summary.json"  # parent directories are created
  results.write_json(path, {"loss": np.float32(np.nan), "groups": np.array([1.0, np.inf])})
  assert strict_load(path.read_text()) == {"loss": None, "groups": [1.0, None]}
  # Readable: two-space indents, keys in the order given.
  results.write_json(path, {"z": 1, "a": [2]})
  assert path.read_text() == '{\n  "z": 1,\n  "a": [\n    2\n  ]\n}\n'
  records = [{"step": np.int32(s), "loss": np.float64(v)} for s, v in [(0, 2.0), (5, np.nan)]]
  results.write_jsonl(tmp_path / "m.jsonl", records)
  lines = (tmp_path / "m.jsonl").read_text().splitlines()
  assert [strict_load(line) for line in lines] == [{"step": 0, "loss": 2.0},
                                                   {"step": 5, "loss": None}]
  assert results.read_jsonl(tmp_path / "m.jsonl") == [{"step": 0, "loss": 2.0},
                                                      {"step": 5, "loss": None}]


def test_write_npz_roundtrip(tmp_path):
  results.write_npz(tmp_path / "a.npz", x=np.arange(3.0), y=jnp.ones((2, 2), jnp.int32))
  with np.load(tmp_path / "a.npz") as f:
    np.testing.assert_array_equal(f["x"], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(f["y"], np.ones((2, 2)))
  assert os.listdir(tmp_path) == ["a.npz"]


def _failing_records():
  yield {"step": 0, "loss": 1.0}
  raise Boom


@pytest.mark.parametrize("write,name", [
    (lambda p: results.write_json(p, {"ok": 1, "bad": Unconvertible()}), "summary.json"),
    (lambda p: results.write_json(p, {"ok": 1, "bad": object()}), "summary.json"),
    (lambda p: results.write_jsonl(p, _failing_records()), "metrics.jsonl"),
    (lambda p: results.write_npz(p, x=np.ones(3), y=Unconvertible()), "arrays.npz"),
])
def test_failure_while_writing_keeps_the_previous_file_and_no_temporary(tmp_path, write, name):
  path = tmp_path / name
  path.write_bytes(b"previous contents\n")
  with pytest.raises((Boom, TypeError)):
    write(path)
  assert path.read_bytes() == b"previous contents\n"
  assert os.listdir(tmp_path) == [name]  # no .tmp-* file left behind


def test_failure_on_first_write_leaves_nothing(tmp_path):
  with pytest.raises(Boom):
    results.write_jsonl(tmp_path / "metrics.jsonl", _failing_records())
  assert os.listdir(tmp_path) == []


def test_atomic_path_replaces_only_on_success(tmp_path):
  target = tmp_path / "out.txt"
  target.write_text("old")
  with results.atomic_path(target) as tmp:
    assert os.path.dirname(tmp) == str(tmp_path) and tmp != str(target)
    with open(tmp, "w") as f:
      f.write("new")
    assert target.read_text() == "old"  # not visible before the block ends
  assert target.read_text() == "new"
  assert os.listdir(tmp_path) == ["out.txt"]


def test_written_files_get_the_usual_permissions(tmp_path):
  umask = os.umask(0o022)
  try:
    results.write_json(tmp_path / "summary.json", {"a": 1})
  finally:
    os.umask(umask)
  assert (os.stat(tmp_path / "summary.json").st_mode & 0o777) == 0o644
