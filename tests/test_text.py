"""Corpora, tokenizers, vocabularies, next-token windows and Zipf fits (imbalance_jax.data:
corpora, tokenizers, vocabulary, windows, zipf)."""

import collections
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import curvature, data
from imbalance_jax.data import vocabulary

SMALL = ("The cat sat on the mat.\nThe dog sat on the log!\n\n"
         "A cat and a dog (and a bird) sat; then: nothing.\n")


@pytest.mark.parametrize("line, expected", [
    ("Hello, World!", ["hello", ",", "world", "!"]),
    ('He said: "Don\'t (ever) stop?"', ["he", "said", "don", "'", "t", "(", "ever", ")", "stop",
                                         "?"]),
    ("U.S. stocks fell 3.5%; bonds rose.", ["u", ".", "s", ".", "stocks", "fell", "3", ".", "5%",
                                            "bonds", "rose", "."]),
    ("line one<br />line two", ["line", "one", "line", "two"]),
    ("  tabs\tand\nnewlines  ", ["tabs", "and", "newlines"]),
    ("<unk> costs $ 5,000 -- mr. <unk>'s", ["<unk>", "costs", "$", "5", ",", "000", "--", "mr",
                                           ".", "<unk>", "'", "s"]),
    ("state-of-the-art a/b x&y", ["state-of-the-art", "a/b", "x&y"]),
    ("", []),
])
def test_basic_english_rules(line, expected):
  assert data.basic_english(line) == expected


def test_whole_text_split_equals_basic_english_per_line():
  corpus = data.load_corpus("ptb")["valid"][:40_000] + "\n" + SMALL + 'x "quoted": <br />(y)!'
  reference = [t for line in corpus.split("\n") for t in data.basic_english(line)]
  assert vocabulary._word_split(corpus, None) == reference
  chunks = list(vocabulary._line_chunks(corpus, chunk_chars=1000))
  assert "".join(chunks) == corpus and len(chunks) > 30
  assert all(c.endswith("\n") for c in chunks[:-1])
  word_chunks = vocabulary._word_chunks(corpus, None, chunk_chars=1000)
  assert [t for c in word_chunks for t in c] == reference
  with_eos = vocabulary._word_split(SMALL, "<eos>")
  assert with_eos.count("<eos>") == 3 and with_eos[-1] == "<eos>"  # the empty line gets none


def test_vocabulary_order_matches_brute_force():
  rng = np.random.default_rng(0)
  words = [f"w{int(k)}" for k in rng.zipf(1.3, size=3000) if k < 200] + ["<unk>"] * 7
  vocab = data.build_vocabulary(words)
  counts = collections.Counter(words)
  expected = sorted(counts, key=lambda w: (-counts[w], w))
  assert list(vocab.tokens) == expected
  assert vocab.counts.tolist() == [counts[w] for w in expected]
  assert vocab.tokens[vocab.unk_id] == "<unk>"
  np.testing.assert_array_equal(vocab.lookup(["w1", "never-seen"]),
                                [vocab.tokens.index("w1"), vocab.unk_id])


def test_vocabulary_ties_min_frequency_max_size_and_specials():
  vocab = data.build_vocabulary(list("bbbaaccd"), min_frequency=2)
  assert vocab.tokens == ("b", "a", "c", "<unk>") and vocab.counts.tolist() == [3, 2, 2, 1]
  vocab = data.build_vocabulary(list("bbbaaccd"), max_size=3)
  # A tie, broken alphabetically: "<" < "b".
  assert vocab.tokens == ("<unk>", "b", "a") and vocab.counts.tolist() == [3, 3, 2]
  vocab = data.build_vocabulary(list("bbbaaccde"), max_size=3, specials=("e",))
  assert set(vocab.tokens) == {"b", "e", "<unk>"} and vocab.counts.sum() == 9
  vocab = data.build_vocabulary(list("ab"))
  assert vocab.tokens[-1] == "<unk>" and vocab.counts[-1] == 0  # never seen: last


def test_word_tokenizer_ids_are_frequency_ranks():
  tok = data.train_tokenizer("word", SMALL)
  ids = tok.encode(SMALL)
  counts = np.bincount(ids, minlength=tok.vocab_size)
  assert np.all(np.diff(counts) <= 0)
  np.testing.assert_array_equal(counts, tok.counts)
  assert tok.tokens[0] == "the" and tok.encode("THE zebra").tolist() == [
      tok.tokens.index("the"), tok.vocabulary.unk_id]
  eos = data.train_tokenizer("word", SMALL, eos_token="<eos>")
  assert eos.split("a b\nc")[-1] == "<eos>" and "<eos>" in eos.tokens


def test_embedded_ptb_word_vocabulary():
  corpus = data.load_corpus("ptb")
  assert set(corpus.splits) == {"train", "valid", "test"}
  tok = data.train_tokenizer("word", corpus["train"])
  assert tok.vocab_size == 9922  # paper H reports 9,920; see docs/language.md
  assert tok.tokens[:3] == ("the", "<unk>", "n")  # PTB's N (numbers) lower-cased to n
  assert tok.encode(corpus["train"]).size == 924_412
  tiny = data.load_corpus("tinyptb")
  assert tiny["train"] == corpus["valid"] and tiny["valid"] == corpus["test"]


def test_subword_tokenizers_frequency_order_and_size():
  corpus = data.load_corpus("ptb")["valid"][:60_000]
  for kind in ("bpe", "unigram"):
    tok = data.train_tokenizer(kind, corpus, vocab_size=600, eos_token="<eos>")
    ids = tok.encode(corpus)
    assert ids.dtype == np.int32 and ids.max() < tok.vocab_size
    counts = np.bincount(ids, minlength=tok.vocab_size)
    assert np.all(np.diff(counts) <= 0), kind
    np.testing.assert_array_equal(counts, tok.counts)
    assert "<unk>" in tok.tokens and "<eos>" in tok.tokens
    assert tok.decode(tok.encode("the market\nfell sharply")) == "the market fell sharply"
    assert tok.split("the")[-1] == "<eos>"
    if kind == "bpe":
      assert tok.vocab_size == 600
    else:
      assert 100 < tok.vocab_size <= 600


def test_vocabulary_larger_than_corpus_is_an_error():
  with pytest.raises(ValueError, match="max_size=50 is larger than the corpus"):
    data.train_tokenizer("word", SMALL, vocab_size=50)
  # Refused before the tokenizer library is called (alphabet + one piece per possible merge) ...
  with pytest.raises(ValueError, match="vocab_size=5000 is larger than the corpus supports: its "
                                       "training text has 16 distinct words and 23 distinct "
                                       "characters, so BPE makes at most 87 pieces"):
    data.train_tokenizer("bpe", SMALL, vocab_size=5000)
  # ... and a size under that bound that the merges still do not reach, after the call.
  with pytest.raises(ValueError, match="vocab_size=87 is larger than the corpus supports: "
                                       "BPE runs out of merges at"):
    data.train_tokenizer("bpe", SMALL, vocab_size=87)
  with pytest.raises(ValueError, match="vocab_size=5000 is larger than the corpus"):
    data.train_tokenizer("unigram", SMALL, vocab_size=5000)
  with pytest.raises(ValueError, match="vocab_size is required"):
    data.train_tokenizer("bpe", SMALL)
  with pytest.raises(ValueError, match="kind must be one of"):
    data.train_tokenizer("chars", SMALL)


def test_empty_corpus_is_an_error(tmp_path):
  with pytest.raises(ValueError, match="text is empty"):
    data.train_tokenizer("word", " \n\n ")
  with pytest.raises(ValueError, match="tokens is empty"):
    data.build_vocabulary([])
  path = tmp_path / "empty.txt"
  path.write_text("\n  \n")
  with pytest.raises(ValueError, match="train split is empty"):
    data.load_corpus(f"text:{path}")


def test_ptb_and_text_files(tmp_path):
  for split in ("train", "valid", "test"):
    (tmp_path / f"ptb.{split}.txt").write_text(f" {split} words here \n more {split} \n")
  corpus = data.load_corpus("ptb", str(tmp_path))
  assert corpus["valid"].startswith(" valid") and corpus.source == str(tmp_path)
  (tmp_path / "plain.txt").write_text(SMALL)
  assert data.load_corpus(f"text:{tmp_path / 'plain.txt'}").splits == {"train": SMALL}
  os.remove(tmp_path / "ptb.test.txt")
  with pytest.raises(ValueError, match=r"put ptb.train.txt, ptb.valid.txt and ptb.test.txt.*"
                                       r"Missing: \[.*ptb.test.txt'\]"):
    data.load_corpus("ptb", str(tmp_path))
  with pytest.raises(ValueError, match="no such text file"):
    data.load_corpus(f"text:{tmp_path / 'nope.txt'}")
  with pytest.raises(ValueError, match="name must be one of"):
    data.load_corpus("wikitext3")
  with pytest.raises(ValueError, match="split must be one of"):
    corpus["dev"]


def test_wikitext_layouts(tmp_path):
  raw = tmp_path / "wikitext-2-raw"
  raw.mkdir()
  for split in ("train", "valid", "test"):
    (raw / f"wiki.{split}.raw").write_text(f" = Title = \n\n Raw {split} text , here . \n")
  corpus = data.load_corpus("wikitext2", str(tmp_path))
  assert "Raw valid" in corpus["valid"] and corpus.source == str(raw)
  for split in ("train", "valid", "test"):
    (tmp_path / f"wiki.{split}.tokens").write_text(f" = Title = \n\n tokens {split} <unk> . \n")
  assert "tokens train" in data.load_corpus("wikitext2", str(tmp_path))["train"]  # auto: tokens
  assert "Raw train" in data.load_corpus("wikitext2", str(tmp_path), layout="raw")["train"]
  partial = tmp_path / "partial"
  partial.mkdir()
  (partial / "wiki.train.tokens").write_text("only the training split")
  assert "tokens test" in data.load_corpus("wikitext2", str(tmp_path), layout="tokens")["test"]
  with pytest.raises(ValueError, match=(
      r"put wiki.train.tokens, wiki.valid.tokens, wiki.test.tokens \(tokenized layout, "
      r"wikitext-103-v1.zip\) or wiki.train.raw, wiki.valid.raw, wiki.test.raw \(raw layout, "
      r"wikitext-103-raw-v1.zip\) in one of .*found there: \['wiki.train.tokens'\]$")):
    data.load_corpus("wikitext103", str(partial))
  with pytest.raises(ValueError, match="data_dir is required"):
    data.load_corpus("wikitext103")
  with pytest.raises(ValueError, match="layout must be one of"):
    data.load_corpus("wikitext2", str(tmp_path), layout="parquet")


def test_windows_target_is_the_next_token():
  rng = np.random.default_rng(1)
  ids = rng.integers(0, 13, size=200)
  windows = data.next_token_windows(ids, seq_len=7, num_classes=13)
  n = (ids.size - 1) // 7
  assert windows.x.shape == windows.y.shape == (n, 7)
  for i in range(n):
    for t in range(7):
      assert windows.x[i, t] == ids[7 * i + t]
      assert windows.y[i, t] == ids[7 * i + t + 1]
  stream = data.next_token_windows(np.arange(50), seq_len=5, num_classes=50)
  assert np.all(stream.y == stream.x + 1)  # never the current token
  np.testing.assert_array_equal(windows.class_counts, np.bincount(np.asarray(windows.y).ravel(),
                                                                  minlength=13))
  assert windows.num_examples == n and windows.num_tokens == 7 * n and windows.seq_len == 7
  np.testing.assert_array_equal(windows.flat_targets(), np.asarray(windows.y).ravel())
  assert data.next_token_windows(ids, 7, 13, max_windows=3).x.shape == (3, 7)
  groups = data.frequency_groups(windows.class_counts, num_groups=4)
  assert groups.shape == (13,) and groups.max() <= 3


def test_per_token_dataset_flattens_positions():
  windows = data.next_token_windows(np.arange(30) % 7, seq_len=4, num_classes=7)
  features = np.random.default_rng(0).normal(size=(7, 4, 3))
  ds = data.per_token_dataset(windows, features)
  assert ds.x.shape == (28, 3) and ds.num_examples == 28 and ds.num_classes == 7
  for i in range(7):
    for t in range(4):
      np.testing.assert_allclose(ds.x[4 * i + t], features[i, t], rtol=1e-6)
      assert ds.y[4 * i + t] == windows.y[i, t]
  np.testing.assert_array_equal(ds.class_counts, np.bincount(np.asarray(ds.y), minlength=7))
  with pytest.raises(ValueError, match=r"features_NTD must have shape \[n, T, d\]"):
    data.per_token_dataset(windows, features[:, :3])


def test_windows_bad_inputs():
  with pytest.raises(ValueError, match="seq_len must be >= 2"):
    data.next_token_windows(np.arange(10), seq_len=1, num_classes=10)
  with pytest.raises(ValueError, match="needs at least 6"):
    data.next_token_windows(np.arange(5), seq_len=5, num_classes=10)
  with pytest.raises(ValueError, match="needs at least"):
    data.next_token_windows(np.array([], np.int32), seq_len=5, num_classes=10)
  with pytest.raises(ValueError, match=r"token_ids must lie in \[0, num_classes=4\)"):
    data.next_token_windows(np.arange(10), seq_len=3, num_classes=4)
  with pytest.raises(ValueError, match="token_ids must be integers"):
    data.next_token_windows(np.linspace(0, 1, 10), seq_len=3, num_classes=4)
  with pytest.raises(ValueError, match="max_windows must be >= 1"):
    data.next_token_windows(np.arange(10), seq_len=3, num_classes=10, max_windows=0)


def test_language_model_data_splits():
  corpus = data.Corpus("toy", {"train": SMALL, "valid": "the cat sat on the log ."}, "test")
  tok = data.train_tokenizer("word", corpus["train"])
  splits = data.language_model_data(corpus, tok, seq_len=3)
  assert set(splits) == {"train", "valid"} and splits["valid"].x.shape == (2, 3)
  assert splits["train"].num_classes == tok.vocab_size
  assert set(data.language_model_data(corpus, tok, seq_len=3, splits=["valid"])) == {"valid"}


@pytest.mark.parametrize("exponent", [1.0, 1.5])
def test_zipf_fit_recovers_power_law(exponent):
  counts = np.round(1e7 * np.arange(1, 3001) ** -exponent)
  counts = counts[counts > 0]
  rng = np.random.default_rng(0)
  fit = data.zipf_fit(rng.permutation(np.concatenate([counts, np.zeros(5)])))
  assert fit["slope"] == pytest.approx(-exponent, abs=0.02)
  assert fit["max_rank"] == counts.size
  np.testing.assert_allclose(data.rank_frequencies([1, 0, 3]), [0.75, 0.25])
  with pytest.raises(ValueError, match="^class_counts must have at least two observed classes "
                                       "to fit a slope$"):
    data.zipf_fit([0, 4])
  # Exactly 1 / k on ranks 1..8 with two points (ranks 1 and 8): intercept log(pi_1).
  harmonic = 840 / np.arange(1, 9)
  two = data.zipf_fit(harmonic, num_points=2)
  assert two["num_points"] == 2 and two["slope"] == pytest.approx(-1.0)
  assert two["intercept"] == pytest.approx(np.log(1 / np.sum(1 / np.arange(1, 9))))
  with pytest.raises(ValueError, match="^num_points must be >= 2, got 1$"):
    data.zipf_fit(harmonic, num_points=1)
  np.testing.assert_allclose(data.rank_frequencies([1]), [1.0])  # a total of 1 is fine


def test_unigram_vocabulary_bound_is_exact():
  # 2 distinct words + 2 characters + [UNK] + the word-boundary mark = at most 6 pieces.
  corpus = "ab ab ba\nba ab\n"
  data.train_tokenizer("unigram", corpus, vocab_size=6)
  with pytest.raises(ValueError, match=r"^vocab_size=7 is larger than the corpus: its training "
                                       r"text has 2 distinct words and 2 distinct characters "
                                       r"\(at most 6 pieces\)$"):
    data.train_tokenizer("unigram", corpus, vocab_size=7)


# --- exact messages and bounds ------------------------------------------------------------
# Pinned by mutation testing (docs/testing.md); in 32 bits only (`no_float64`), as written.


@pytest.mark.no_float64
def test_vocabulary_bounds_and_messages():
  tokens = "a a a b b c".split()
  with pytest.raises(ValueError, match="^min_frequency must be >= 1, got 0$"):
    data.build_vocabulary(tokens, min_frequency=0)
  # 3 distinct tokens + <unk> = 4 entries at most; with one special, max_size >= 2.
  assert len(data.build_vocabulary(tokens, max_size=4).tokens) == 4
  with pytest.raises(ValueError, match=r"^max_size=5 is larger than the corpus's vocabulary: it "
                                       r"has 4 distinct tokens including '<unk>'"):
    data.build_vocabulary(tokens, max_size=5)
  with pytest.raises(ValueError, match=r"^max_size must be >= 2, got 1$"):
    data.build_vocabulary(tokens, max_size=1, specials=["<eos>"])
  # <unk> already in the corpus is not counted twice.
  with pytest.raises(ValueError, match=r"has 3 distinct tokens"):
    data.build_vocabulary(["<unk>", "a", "b"], max_size=4)


@pytest.mark.no_float64
def test_token_windows_and_corpus_names(tmp_path):
  with pytest.raises(ValueError, match="^num_classes must be >= 1, got 0$"):
    data.next_token_windows(np.arange(10), seq_len=3, num_classes=0)
  # Classes that never occur still get a count: class_counts has num_classes entries.
  windows = data.next_token_windows(np.arange(9) % 3, seq_len=2, num_classes=6)
  assert windows.class_counts.tolist() == [2, 3, 3, 0, 0, 0]
  path = tmp_path / "one.txt"
  path.write_text("a b c\n")
  assert data.load_corpus(f"text:{path}").name == f"text:{path}"
  path.write_text("  \n")
  with pytest.raises(ValueError, match=rf"^corpus 'text:{path}': the train split is empty "
                                       rf"\(source: {path}\)$"):
    data.load_corpus(f"text:{path}")


@pytest.mark.no_float64
def test_tokenizer_and_trace_arguments_are_named():
  with pytest.raises(ValueError, match="^vocab_size must be >= 2, got 1$"):
    data.train_tokenizer("bpe", "a b c\n", vocab_size=1)
  assert data.train_tokenizer("bpe", "ab ab ba\n", vocab_size=7).kind == "bpe"
  loss = lambda p: jnp.sum(p["w"] ** 2)  # noqa: E731
  params = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="^num_blocks must be >= 1, got 0$"):
    curvature.hutchinson_block_traces(loss, params, {"w": jnp.zeros(2, jnp.int32)},
                                      num_blocks=0, key=jax.random.key(0), num_probes=1)
