"""Pieces shared by the language binaries (transformer_last_layer, transformer_ptb).

`load_windows` tokenizes a corpus with the word tokenizer (or BPE/Unigram) and
cuts every split into next-token windows; `compact_vocabulary` renumbers the
classes to the token types that occur in the training windows, so CPU-scale
runs on a few windows do not pay for a softmax over the whole vocabulary.
`frozen_features` / `head_params` turn a frozen transformer body into a linear
softmax problem (Fig 5); `curvature_diagnostics` records the classifier's
block gradient norms and Hessian traces (Fig 26). What both binaries write
beyond the experiment layer's standard entries: `summary_entries` (initial
and validation group losses), `group_statistics` (dataset.json's class and
group counts), `log_summary`.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from absl import logging

from imbalance_jax import curvature, data, metrics, models, train


def corpus_dir_for(name: str, corpus_dir: str) -> str | None:
  """PTB is read from ``corpus_dir`` only if it holds ptb.train.txt, else from the package."""
  if not corpus_dir:
    return None
  if name in ("ptb", "tinyptb") and not os.path.isfile(os.path.join(corpus_dir, "ptb.train.txt")):
    return None
  return corpus_dir


def check_corpus_files(corpora, corpus_dir: str, layout: str = "auto") -> None:
  """Before any work: each corpus's files are where `load_windows` will look (or a clear
  ValueError naming config.corpus_dir)."""
  for name in corpora:
    try:
      data.corpus_files(name, corpus_dir_for(name, corpus_dir), layout=layout)
    except ValueError as error:
      raise ValueError(f"config.corpus_dir={corpus_dir!r} (config.corpus={name!r}): {error}"
                       ) from None


def compact_vocabulary(windows: dict[str, data.TokenWindows], unk_token_id: int | None = None
                       ) -> dict[str, data.TokenWindows]:
  """Keeps only the token types present in ``windows["train"]`` (inputs or targets),
  and ``unk_token_id`` if given.

  New class ids are ordered by decreasing count as a *target* in the training
  windows (ties by old id), so id 0 is still the most frequent class. Tokens of
  other splits outside the kept types become ``unk_token_id`` (which must then
  be kept), or raise if it is None.

  Example:
    >>> w = data.next_token_windows(np.array([7, 3, 7, 3, 7]), 2, num_classes=9)
    >>> c = compact_vocabulary({"train": w})["train"]
    >>> c.num_classes, c.x.tolist(), c.y.tolist()
    (2, [[1, 0], [1, 0]], [[0, 1], [0, 1]])
  """
  train = windows["train"]
  x, y = np.asarray(train.x), np.asarray(train.y)
  extra = [] if unk_token_id is None else [unk_token_id]
  kept = np.unique(np.concatenate([x.ravel(), y.ravel(), extra]).astype(np.int64))
  counts = np.asarray(train.class_counts)[kept]
  kept = kept[np.lexsort((kept, -counts))]  # by count, then old id
  old_to_new = np.full(train.num_classes, -1, np.int64)
  old_to_new[kept] = np.arange(kept.size)
  out = {}
  for split, w in windows.items():
    new_x, new_y = old_to_new[np.asarray(w.x)], old_to_new[np.asarray(w.y)]
    if (new_x < 0).any() or (new_y < 0).any():
      if unk_token_id is None:
        raise ValueError(f"split {split!r} has tokens outside the training windows and no kept "
                         "unk_token_id to map them to")
      new_x = np.where(new_x < 0, old_to_new[unk_token_id], new_x)
      new_y = np.where(new_y < 0, old_to_new[unk_token_id], new_y)
    out[split] = data.TokenWindows(
        x=jnp.asarray(new_x, jnp.int32), y=jnp.asarray(new_y, jnp.int32),
        class_counts=jnp.asarray(np.bincount(new_y.ravel(), minlength=kept.size), jnp.int32),
        num_classes=int(kept.size))
  return out


# Real subword vocabularies stay below this (GPT-2: 50,257; the largest LLM vocabularies ~256k);
# a cap declared by the binaries' fields keeps absurd sizes from reaching the tokenizer library.
MAX_SUBWORD_VOCAB = 2**20


def fit_tokenizer(kind: str, train_text: str, vocab_size: int | None, **kwargs):
  """`data.train_tokenizer` whose size errors name the binaries' ``config.subword_vocab_size``."""
  try:
    return data.train_tokenizer(kind, train_text,
                                vocab_size=None if kind == "word" else vocab_size, **kwargs)
  except ValueError as error:
    if kind == "word" or "vocab_size" not in str(error):
      raise
    raise ValueError(f"config.subword_vocab_size={vocab_size} is too large for {kind}: "
                     f"{error}") from error


def load_windows(corpus: str, corpus_dir: str, seq_len: int, *, num_windows: int = 0,
                 compact: bool = False, splits=("train",), tokenizer: str = "word",
                 vocab_size: int | None = None, split_windows: dict[str, int] | None = None
                 ) -> tuple[dict[str, data.TokenWindows], dict]:
  """Windows of ``splits`` (``num_windows`` > 0: the first that many of each split;
  ``split_windows`` overrides it per split, e.g. ``{"valid": 512}``, 0: all).

  Returns:
    ``(windows by split, info)`` with ``info`` = ``{"source", "tokenizer_vocab_size",
    "num_classes", "train_tokens"}``.
  """
  text = data.load_corpus(corpus, corpus_dir_for(corpus, corpus_dir))
  tok = fit_tokenizer(tokenizer, text["train"], vocab_size)
  limits = {split: num_windows for split in splits} | dict(split_windows or {})
  windows = {}
  for split in splits:  # one split at a time: each its own number of windows
    windows.update(data.language_model_data(text, tok, seq_len,
                                            max_windows=limits[split] or None, splits=(split,)))
  if compact:
    unk = tok.tokens.index(data.vocabulary.UNK) if data.vocabulary.UNK in tok.tokens else None
    windows = compact_vocabulary(windows, unk)
  info = {"source": text.source, "tokenizer_vocab_size": tok.vocab_size,
          "num_classes": windows["train"].num_classes,
          "train_tokens": windows["train"].num_tokens}
  return windows, info


def frozen_features(model: models.Transformer, params_S, x_NT, chunk: int = 256):
  """Head inputs ``[S, n, T, d]`` of the frozen body, per seed, ``chunk`` windows at a time."""
  def one_seed(params):
    return jax.lax.map(lambda x: model.apply(params, x, return_features=True)[1],
                       x_NT.reshape((-1, chunk) + x_NT.shape[1:]))
  n = x_NT.shape[0]
  chunk = min(chunk, n)
  pad = (-n) % chunk
  if pad:
    x_NT = np.concatenate([np.asarray(x_NT), np.asarray(x_NT[:pad])])
  feats = jax.jit(jax.vmap(one_seed))(params_S)
  return feats.reshape((feats.shape[0], -1) + feats.shape[3:])[:, :n]


def head_params(params_S):
  """The head of a (per-seed) transformer as `models.LinearSoftmax` parameters."""
  return {"params": {models.transformer.HEAD: params_S["params"][models.transformer.HEAD]}}


def curvature_diagnostics(model, windows: data.TokenWindows, groups, *, key, num_probes: int):
  """``params -> {grad_norm_C, trace_C, trace_stderr_C, class_prob_C, group_prob_G, loss}``.

  Evaluation-mode (no dropout) mean loss over ``windows``; blocks are the
  classifier's output units ``(w_k, b_k)``. The same probes at every record.
  """
  groups = jnp.asarray(groups)
  num_groups = int(groups.max()) + 1
  objective = train.classification_objective(model.apply, stateful=True)
  loss_fn = lambda p: objective(p, windows, {}, None, False)  # noqa: E731

  @jax.jit
  def diagnostics(params):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    head_loss, head = curvature.restrict_to_layer(lambda p: loss_fn(p)[0], params,
                                                  models.transformer.HEAD)
    est = curvature.hutchinson_block_traces(head_loss, head, curvature.dense_block_ids(head),
                                            num_blocks=windows.num_classes, key=key,
                                            num_probes=num_probes)
    prob_N = jnp.exp(-aux["loss_N"])
    return {"loss": loss,
            "grad_norm_C": metrics.block_grad_norms(grads, include_bias=True),
            "trace_C": est.traces, "trace_stderr_C": est.stderr,
            "class_prob_C": metrics.per_class_mean(prob_N, aux["label_N"], windows.num_classes),
            "group_prob_G": metrics.per_class_mean(prob_N, groups[aux["label_N"]], num_groups)}
  return diagnostics


def summary_entries(tuned, *, valid: bool = False) -> dict[str, dict]:
  """Per run of ``tuned`` (`imbalance_jax.experiment.TunedRuns`), its summary entry plus
  ``initial_group_losses`` and, with ``valid``, ``final_valid_loss`` and
  ``final_valid_group_losses`` (means over seeds at the selected step size)."""
  summary = tuned.summaries()
  for name, history in tuned.best_histories().items():
    entry = summary[name]
    entry["initial_group_losses"] = np.mean(history["group_loss"][:, 0], axis=0).tolist()
    if valid:
      entry["final_valid_loss"] = float(np.mean(history["valid/loss"][:, -1]))
      entry["final_valid_group_losses"] = np.mean(history["valid/group_loss"][:, -1],
                                                  axis=0).tolist()
  return summary


def group_statistics(counts, groups) -> dict:
  """dataset.json's ``class_counts``, ``class_to_group``, ``group_share`` (share of the
  targets per group) and ``classes_per_group``.

  Example:
    >>> stats = group_statistics(np.array([6, 3, 1]), np.array([0, 0, 1]))
    >>> stats["group_share"].tolist(), stats["classes_per_group"].tolist()
    ([0.9, 0.1], [2, 1])
  """
  return {"class_counts": counts, "class_to_group": groups,
          "group_share": np.bincount(groups, weights=counts) / counts.sum(),
          "classes_per_group": np.bincount(groups)}


def log_summary(summary: dict[str, dict]) -> None:
  """One line per run: step size, final loss, most frequent and rarest group initial -> final."""
  for name, entry in summary.items():
    logging.info("%-22s lr=%-9.3g final loss=%.4f  most frequent group %.3f -> %.3f  "
                 "rarest group %.3f -> %.3f", name, entry["learning_rate"], entry["final_loss"],
                 entry["initial_group_losses"][0], entry["final_group_losses"][0],
                 entry["initial_group_losses"][-1], entry["final_group_losses"][-1])
