"""The token-frequency binary (paper H Fig 9) end to end on tiny corpora."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import token_frequencies
from imbalance_jax import experiment as ex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_binary(workdir, *flags):
  cmd = [sys.executable, "-m", "experiments.token_frequencies", f"--workdir={workdir}", *flags]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def zipf_text(num_lines=400, vocab=300, seed=0):
  rng = np.random.default_rng(seed)
  p = 1.0 / np.arange(1, vocab + 1)
  words = [f"w{chr(97 + k % 26)}{chr(97 + k // 26 % 26)}" for k in range(vocab)]
  draws = rng.choice(vocab, size=(num_lines, 12), p=p / p.sum())
  return "\n".join(" ".join(words[k] for k in row) for row in draws) + "\n"


def test_token_frequencies_binary(tmp_path):
  corpus_dir = tmp_path / "ptb"
  corpus_dir.mkdir()
  for split in ("train", "valid", "test"):
    (corpus_dir / f"ptb.{split}.txt").write_text(zipf_text(seed=len(split)))
  (tmp_path / "book.txt").write_text(zipf_text(seed=9).upper())
  out = run_binary(tmp_path / "out", f"--config.corpus=ptb,text:{tmp_path / 'book.txt'}",
                   f"--config.corpus_dir={corpus_dir}", "--config.subword_vocab_size=120",
                   "--config.num_groups=4")
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  book = f"text:{tmp_path / 'book.txt'}"
  assert set(summary) == {"ptb", book}
  for corpus, entries in summary.items():
    assert set(entries) == {"word", "bpe", "unigram"}
    for kind, entry in entries.items():
      assert entry["num_tokens"] > 4000 and entry["vocab_size"] > 50
      assert -1.6 < entry["slope"] < -0.5, (corpus, kind, entry["slope"])
      assert len(entry["classes_per_group"]) <= 4 and entry["classes_per_group"][0] >= 1
    assert entries["word"]["vocab_size"] <= 301 and entries["bpe"]["vocab_size"] == 120
    assert entries["word"]["source"] == (str(corpus_dir) if corpus == "ptb" else book[5:])
  assert summary[book]["word"]["top_tokens"][0][0] == "waa"  # basic_english lower-cases
  counts = np.load(tmp_path / "out" / "counts.npz")
  assert counts["ptb/word"].sum() == summary["ptb"]["word"]["num_tokens"]
  for name in ("token_frequencies.png", "token_groups.png"):
    with open(tmp_path / "out" / name, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_token_frequencies_bad_config(tmp_path):
  out = run_binary(tmp_path / "a", "--config.tokenizers=word,chars")
  assert out.returncode != 0 and "config.tokenizers must be a comma-separated subset" in out.stderr
  assert not (tmp_path / "a").exists()  # refused before any work
  out = run_binary(tmp_path / "b", "--config.corpus=wikitext2", f"--config.corpus_dir={tmp_path}")
  assert out.returncode != 0 and "wiki.train.tokens" in out.stderr


def test_min_frequency_that_leaves_one_token_is_named(tmp_path):
  with pytest.raises(ValueError, match=r"config.min_frequency=1000000000 leaves 1 observed"):
    ex.run_in(token_frequencies, str(tmp_path), min_frequency=10**9, tokenizers="word")
  assert not (tmp_path / "summary.json").exists()
