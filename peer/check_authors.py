"""Peer check: our models against the authors' PyTorch modules (paper H), float64.

Models: the simplified, 1-layer, 2-layer and GPT2 transformers (tiny), paper H's
MNIST CNN, and the linear softmax model plain and with 1/pi, 1/sqrt(pi) class
weights. Optimizers: GD, normalized GD, sign descent (each -m/+m) and Adam -m/+m.

One command (see peer/README.md) runs two processes:

1. this script under the project's Python (JAX, float64): builds each of our
   models at a tiny size, initialises it, and writes its initial weights in
   PyTorch layout, the inputs and labels, and our logits, gradients and 20-step
   losses per optimizer to a temporary .npz;
2. the same script under ``--peer_python`` (a virtualenv with torch, never a
   dependency of the project) with ``--torch_side``: imports the authors'
   modules from ``--authors_dir`` (their release at commit `AUTHORS_COMMIT`),
   loads our weights into them (``load_state_dict``, strict but for the
   positional-encoding buffer), and computes the same quantities with their
   network, their loss and ``torch.optim`` / their ``NormalizedSGD``, ``SignSGD``.

The first process then prints, per model, the largest absolute differences
of the logits, of any gradient entry, and of the 20 recorded losses of each
optimizer, and exits with status 1 if any exceeds ``--tolerance`` (1e-12).
Dropout is 0 on both sides (the draws cannot match); recording-mode and
dropout differences are documented in docs/language.md.

``--write_reference PATH`` also stores the tiny GPT2's weights (our layout)
and the *authors'* logits and gradients at them, the reference of
tests/test_gpt2.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import types

import numpy as np

AUTHORS_REPO = "https://github.com/fKunstner/class-imbalance-sgd-adam"
AUTHORS_COMMIT = "f67a9fa2094acf66f9bbe519db96a8382400b4df"
V, T, N, STEPS = 23, 6, 3, 20
# name: (our make_transformer name, overrides, learning rates per optimizer)
MODELS = {
    "simplified": ("simplified", dict(d_model=8)),
    "one_layer": ("one_layer", dict(d_model=8, mlp_dim=12, dropout_rate=0.0)),
    "two_layer": ("two_layer", dict(d_model=8, num_heads=2, mlp_dim=12, dropout_rate=0.0)),
    "gpt2_small": ("gpt2_small", dict(num_layers=2, d_model=8, num_heads=2, mlp_dim=32,
                                      dropout_rate=0.0)),
}
# name: (our model, class weighting); C classes with COUNTS examples each (N_CLS in all),
# D features (linear) or 28x28x1 images (the CNN: their head is fixed at 7*7*100 inputs).
CLASSIFIERS = {"cnn": ("cnn", "none"), "linear": ("linear", "none"),
               "linear_1/pi": ("linear", "inverse"), "linear_1/sqrt(pi)": ("linear", "inverse_sqrt")}
COUNTS, D = (5, 3, 2, 1, 1), 7
# name: (our alias in optim.aliases, momentum, learning rate)
OPTIMIZERS = {"gd": ("gd", 0.0, 0.5), "gd+m": ("gd", 0.9, 0.1),
              "ngd": ("normalized_gd", 0.0, 0.1), "ngd+m": ("normalized_gd", 0.9, 0.02),
              "sign": ("sign_descent", 0.0, 1e-3), "sign+m": ("sign_descent", 0.9, 2e-4),
              "adam": ("adam", 0.0, 1e-2), "adam+m": ("adam", 0.9, 1e-2)}


# --------------------------------------------------------------------------- JAX side
def name_map(params) -> list[tuple[tuple[str, str], str, str]]:
  """``[((our module, our leaf), the authors' state_dict name, layout)]`` of a transformer's
  ``params``; layout ``"T"``: their array is our kernel transposed (see `to_torch`)."""
  p = params["params"]
  pairs = [(("embed", "embedding"), "embedding.weight", ""),
           (("head", "kernel"), "classifier_head.weight", "T"),
           (("head", "bias"), "classifier_head.bias", "")]
  for i in sorted(int(k.split("_")[1]) for k in p if k.startswith("attn_")):
    pre = f"transformer_encoder.layers.{i}."
    pairs += [((f"attn_{i}/qkv", "kernel"), pre + "self_attn.in_proj_weight", "T"),
              ((f"attn_{i}/qkv", "bias"), pre + "self_attn.in_proj_bias", ""),
              ((f"attn_{i}/out", "kernel"), pre + "self_attn.out_proj.weight", "T"),
              ((f"attn_{i}/out", "bias"), pre + "self_attn.out_proj.bias", "")]
    for ours, theirs in ((f"mlp_in_{i}", "linear1"), (f"mlp_out_{i}", "linear2")):
      if ours in p:
        pairs += [((ours, "kernel"), pre + theirs + ".weight", "T"),
                  ((ours, "bias"), pre + theirs + ".bias", "")]
    for ours, theirs in ((f"ln_attn_{i}", "norm1"), (f"ln_mlp_{i}", "norm2")):
      if ours in p:
        pairs += [((ours, "scale"), pre + theirs + ".weight", ""),
                  ((ours, "bias"), pre + theirs + ".bias", "")]
  if "ln_final" in p:
    pairs += [(("ln_final", "scale"), "transformer_encoder.norm.weight", ""),
              (("ln_final", "bias"), "transformer_encoder.norm.bias", "")]
  return pairs


def classifier_name_map(params) -> list[tuple[tuple[str, str], str, str]]:
  """`name_map` of our SmallCNN (their SimpleMNISTCNNTorch) or LinearSoftmax (their MLPTorch)."""
  p = params["params"]
  if "conv_0" not in p:
    return [(("head", "kernel"), "model.weight", "T"), (("head", "bias"), "model.bias", "")]
  return [((f"conv_{i}", leaf), f"conv{i + 1}.{name}", layout) for i in (0, 1)
          for leaf, name, layout in (("kernel", "weight", "conv"), ("bias", "bias", ""))] + [
      (("head", "kernel"), "fc1.weight", "hwc"), (("head", "bias"), "fc1.bias", "")]


def to_torch(value: np.ndarray, layout: str) -> np.ndarray:
  """Our array in PyTorch's layout: ``"T"`` transposed, ``"conv"`` HWIO -> OIHW, ``"hwc"`` a
  head over (H, W, C)-flattened features -> over (C, H, W) ones (their ``torch.flatten``).
  Each is a permutation of entries, so gradients map the same way."""
  if layout == "T":
    return value.T
  if layout == "conv":
    return value.transpose(3, 2, 0, 1)
  if layout == "hwc":
    side = int(round((value.shape[0] / 100) ** 0.5))  # SmallCNN's last conv has 100 channels
    return value.reshape(side, side, 100, -1).transpose(3, 2, 0, 1).reshape(value.shape[1], -1)
  return value


def _leaf(params, module: str, leaf: str):
  node = params["params"]
  for part in module.split("/"):
    node = node[part]
  return node[leaf]


def torch_state(params, names=name_map) -> dict:
  """Our Flax params -> the authors' ``state_dict`` names and layouts (`to_torch`)."""
  return {name: to_torch(np.asarray(_leaf(params, module, leaf)), layout)
          for (module, leaf), name, layout in names(params)}


def flax_arrays(params, state: dict) -> dict:
  """The authors' arrays ``state`` (torch names) as ``{"module/leaf": array}`` in our layout."""
  return {f"{module}/{leaf}": (state[name].T if layout == "T" else state[name])
          for (module, leaf), name, layout in name_map(params)}


def our_problem(name: str, key):
  """``(model, params, inputs, labels, class weights or None, name map)`` of model ``name``."""
  import jax
  import jax.numpy as jnp

  from imbalance_jax import losses, models

  key_init, key_data = jax.random.split(key)
  if name in MODELS:
    config, overrides = MODELS[name]
    model = models.make_transformer(config, V, param_dtype=jnp.float64, **overrides)
    tokens = jax.random.randint(key_data, (N, T), 0, V)
    return model, model.init(key_init, tokens), tokens, tokens, None, name_map
  kind, weighting = CLASSIFIERS[name]
  labels = jnp.repeat(jnp.arange(len(COUNTS)), jnp.array(COUNTS), total_repeat_length=sum(COUNTS))
  if kind == "cnn":
    model = models.SmallCNN(num_classes=len(COUNTS), param_dtype=jnp.float64)
    x = jax.random.normal(key_data, (len(labels), 28, 28, 1), jnp.float64)
  else:
    model = models.LinearSoftmax(num_classes=len(COUNTS), param_dtype=jnp.float64)
    x = jax.random.normal(key_data, (len(labels), D), jnp.float64)
  weights = None if weighting == "none" else losses.class_weights(jnp.array(COUNTS), weighting)
  return model, model.init(key_init, x), x, labels, weights, classifier_name_map


def our_side(name: str, seed: int) -> dict:
  """Initial weights (torch layout), inputs, labels, and our logits, grads and losses of
  ``name`` (the class-weighted mean cross-entropy where it has weights)."""
  import jax
  import jax.numpy as jnp
  import optax

  from imbalance_jax import losses, optim

  model, params, inputs, labels, weights, names = our_problem(name, jax.random.key(seed))

  def loss_fn(p):
    logits = model.apply(p, inputs)
    flat = labels.reshape(-1)
    return losses.weighted_mean_loss(
        losses.cross_entropy(logits.reshape(flat.shape[0], -1), flat), flat, weights)

  out = {"inputs": np.asarray(inputs), "labels": np.asarray(labels),
         "logits": np.asarray(model.apply(params, inputs))}
  out.update({f"param/{k}": v for k, v in torch_state(params, names).items()})
  out.update({f"grad/{k}": v for k, v in torch_state(jax.grad(loss_fn)(params), names).items()})
  for opt_name, (opt, momentum, lr) in OPTIMIZERS.items():
    tx = optim.injectable(opt, momentum)(lr)

    def step(carry, _):
      p, s = carry
      loss, g = jax.value_and_grad(loss_fn)(p)
      updates, s = tx.update(g, s, p)
      return (optax.apply_updates(p, updates), s), loss

    _, traj = jax.lax.scan(step, (params, tx.init(params)), None, length=STEPS)
    out[f"losses/{opt_name}"] = np.asarray(traj)
  out["_params_flax"] = params
  return out


# ------------------------------------------------------------------------- torch side
def import_authors(authors_dir: str) -> types.SimpleNamespace:
  """The authors' model, optimizer and loss modules without running their packages'
  ``__init__`` (which import their whole experiment stack: wandb, lightning, datasets).

  ``models/cnn.py`` also imports torchvision and vit_pytorch for its other networks
  (ResNets, ViT); absent ones are registered as empty modules (their CNN uses neither)."""
  src = os.path.join(authors_dir, "code", "src", "optexp")
  if not os.path.isdir(src):
    raise SystemExit(f"--authors_dir={authors_dir!r} has no code/src/optexp (see peer/README.md)")
  for pkg in ("optexp", "optexp.models", "optexp.optimizers", "optexp.problems"):
    module = types.ModuleType(pkg)
    module.__path__ = [os.path.join(src, *pkg.split(".")[1:])]
    sys.modules[pkg] = module
  import importlib
  for missing, attrs in (("torchvision", ()), ("vit_pytorch", ("SimpleViT",))):
    try:
      importlib.import_module(missing)
    except ImportError:
      stub = sys.modules[missing] = types.ModuleType(missing)
      for attr in attrs:
        setattr(stub, attr, None)
  return types.SimpleNamespace(**{
      name: importlib.import_module(f"optexp.{module}") for name, module in (
          ("te", "models.transformer_encoder"), ("cnn", "models.cnn"), ("mlp", "models.mlp"),
          ("opts", "optimizers.normalized_opts"), ("losses", "problems.utils"))})


def accept_is_causal(layer_cls):
  """torch >= 2.0's ``TransformerEncoder`` passes ``is_causal=`` to every layer; the authors'
  own layers (written for torch 1.x) do not take it. Their mask is passed as well, so
  dropping the flag changes nothing."""
  forward = layer_cls.forward
  if getattr(forward, "_accepts_is_causal", False):
    return
  def patched(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
    del is_causal
    return forward(self, src, src_mask, src_key_padding_mask)
  patched._accepts_is_causal = True
  layer_cls.forward = patched


def their_model(authors, name: str, state: dict):
  if name in CLASSIFIERS:
    if CLASSIFIERS[name][0] == "cnn":  # their SimpleMNISTCNN
      return authors.cnn.SimpleMNISTCNNTorch(1, len(COUNTS))
    return authors.mlp.MLPTorch([D], [len(COUNTS)], None, None)  # MLP(hidden_layers=None)
  te = authors.te
  d = state["embedding.weight"].shape[1]
  layers = sum(k.endswith("in_proj_weight") for k in state)
  heads = MODELS[name][1].get("num_heads", 1)
  mlp = MODELS[name][1].get("mlp_dim")
  accept_is_causal(te.TransformerEncoderLayerModifiable)
  accept_is_causal(te.GPTEncoderLayerModifiable)
  if name in ("one_layer", "two_layer"):  # their TransformerModel
    model = te._TransformerTorch(ntoken=V, d_model=d, nhead=heads, d_hid=mlp, nlayers=layers,
                                 dropout=0.0)
  elif name == "simplified":  # BasicTransformerModel(width_mlp=None) raises; d_hid unused
    model = te._TransformerTorchModifiable(ntoken=V, d_model=d, nhead=heads, d_hid=1,
                                           nlayers=layers, layer_norm=False, linear=False,
                                           pos_encoding=True, dropout=0.0)
  else:  # their GPTModel
    model = te._GPTModifiable(ntoken=V, d_model=d, nhead=heads, d_hid=mlp, nlayers=layers,
                              attn_dropout=0.0, embd_dropout=0.0, resid_dropout=0.0)
  return model


def their_optimizer(authors, opt: str, momentum: float, lr: float, params):
  """What their wrappers (SGD, NormSGD, Sign, Adam in optexp/optimizers) load."""
  import torch
  if opt == "gd":
    return torch.optim.SGD(params, lr=lr, momentum=momentum)
  if opt == "normalized_gd":
    return authors.opts.NormalizedSGD(params, lr=lr, momentum=momentum)
  if opt == "sign_descent":
    return authors.opts.SignSGD(params, lr=lr, momentum=momentum)
  return torch.optim.Adam(params, lr=lr, betas=(momentum, 0.999), eps=1e-8)


def their_loss(authors, name: str, labels):
  """``logits -> loss``: their mean cross-entropy, or for a weighted model their
  ``WeightedCrossEntropyLoss`` with ``WeightedClassification.compute_weights``
  (1/freqs or 1/sqrt(freqs)) divided by its weight sum, as their full-batch loop does."""
  import torch
  weighting = CLASSIFIERS.get(name, (None, "none"))[1]
  if weighting == "none":
    return lambda logits: torch.nn.functional.cross_entropy(logits, labels)
  freqs = torch.bincount(labels).double() / len(labels)
  criterion = authors.losses.WeightedCrossEntropyLoss(
      1.0 / freqs if weighting == "inverse" else 1.0 / torch.sqrt(freqs))

  def loss(logits):
    total, weight = criterion(logits, labels)
    return total / weight
  return loss


def torch_side(authors, name: str, ours: dict) -> dict:
  import torch
  torch.set_default_dtype(torch.float64)
  state = {k[len("param/"):]: v for k, v in ours.items() if k.startswith("param/")}
  if name in MODELS:  # theirs: tokens [seq_len, batch]
    inputs = torch.tensor(ours["inputs"].T.copy())
    labels = inputs.reshape(-1)
    to_ours = lambda logits: logits.reshape(T, N, V).permute(1, 0, 2)  # noqa: E731
  else:  # theirs: images NCHW
    x = ours["inputs"]
    inputs = torch.tensor(x.transpose(0, 3, 1, 2).copy() if x.ndim == 4 else x)
    labels = torch.tensor(ours["labels"])
    to_ours = lambda logits: logits  # noqa: E731
  loss_fn = their_loss(authors, name, labels)

  def fresh():
    model = their_model(authors, name, state).double()
    missing, unexpected = model.load_state_dict(
        {k: torch.tensor(v) for k, v in state.items()}, strict=False)
    if unexpected or [m for m in missing if not m.endswith(".pe")]:
      raise SystemExit(f"{name}: state_dict mismatch: missing {missing}, unexpected {unexpected}")
    return model.train()  # as their loop; dropout is 0

  def loss_of(model):
    logits = model(inputs)
    return loss_fn(logits.reshape(labels.shape[0], -1))

  model = fresh()
  logits = to_ours(model(inputs))
  loss_of(model).backward()
  out = {"logits": logits.detach().numpy()}
  out.update({f"grad/{k}": p.grad.numpy() for k, p in model.named_parameters()})
  for opt_name, (opt, momentum, lr) in OPTIMIZERS.items():
    model = fresh()
    tx = their_optimizer(authors, opt, momentum, lr, model.parameters())
    traj = []
    for _ in range(STEPS):
      tx.zero_grad()
      loss = loss_of(model)
      loss.backward()
      tx.step()
      traj.append(loss.item())
    out[f"losses/{opt_name}"] = np.array(traj)
  return out


INIT = dict(vocab=3000, layers=3, d=96, heads=4)  # init-statistics comparison, GPT2


def their_init_stds(authors) -> dict:
  """Std of every parameter of their GPTModel as their GPT2 experiments initialise it
  (``default_scaled_by_depth(depth, sqrt(2) * 0.02)``), by our ``module/leaf`` name."""
  import torch
  from optexp.models.initializer import TransformerEncoderInitializer
  torch.manual_seed(0)
  init = TransformerEncoderInitializer.default_scaled_by_depth(INIT["layers"], 2**0.5 * 0.02)
  model = authors.te.GPTModel(num_heads=INIT["heads"], depth=INIT["layers"], emb_dim=INIT["d"],
                      init=init).load_model(np.array([INIT["vocab"]]), np.array([INIT["vocab"]]))
  out = {f"init_std/{k}": np.array(p.detach().double().std().item())
         for k, p in model.named_parameters()}
  layers = model.transformer_encoder.layers  # deep copies of one layer (PyTorch's API)
  out["same_attention_init"] = np.array(all(
      torch.equal(layers[0].self_attn.in_proj_weight, layer.self_attn.in_proj_weight)
      and torch.equal(layers[0].self_attn.out_proj.weight, layer.self_attn.out_proj.weight)
      for layer in layers))
  return out


def torch_main(inp: str, outp: str, authors_dir: str):
  import warnings
  warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
  authors = import_authors(authors_dir)
  with np.load(inp) as f:
    data = dict(f)
  results = {}
  for name in [*MODELS, *CLASSIFIERS]:
    ours = {k[len(name) + 1:]: v for k, v in data.items() if k.startswith(name + "/")}
    results.update({f"{name}/{k}": v for k, v in torch_side(authors, name, ours).items()})
  results.update(their_init_stds(authors))
  np.savez(outp, **results)


# ------------------------------------------------------------------------------ main
def table(ours: dict, theirs: dict) -> list[tuple[str, dict]]:
  """Per model: the largest absolute differences of logits, gradients and each trajectory."""
  rows = []
  for name, o in ours.items():
    t = {k[len(name) + 1:]: v for k, v in theirs.items() if k.startswith(name + "/")}
    grads = [k for k in o if k.startswith("grad/")]
    if sorted(grads) != sorted(k for k in t if k.startswith("grad/")):
      raise SystemExit(f"{name}: gradient names differ: ours {sorted(grads)}, theirs "
                       f"{sorted(k for k in t if k.startswith('grad/'))}")
    row = {"logits": np.abs(o["logits"] - t["logits"]).max(),
           "gradients": max(np.abs(o[k] - t[k]).max() for k in grads)}
    row.update({opt: np.abs(o[f"losses/{opt}"] - t[f"losses/{opt}"]).max()
                for opt in OPTIMIZERS})
    rows.append((name, row))
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--authors_dir", default="/tmp/class-imbalance-sgd-adam")
  parser.add_argument("--peer_python", default="/tmp/peer_venv/bin/python")
  parser.add_argument("--tolerance", type=float, default=1e-12)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--write_reference", default="")
  parser.add_argument("--torch_side", nargs=2, metavar=("IN", "OUT"))
  args = parser.parse_args()
  if args.torch_side:
    return torch_main(*args.torch_side, args.authors_dir)

  os.environ.setdefault("JAX_ENABLE_X64", "1")
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  import jax
  jax.config.update("jax_enable_x64", True)
  ours = {name: our_side(name, args.seed) for name in [*MODELS, *CLASSIFIERS]}
  with tempfile.TemporaryDirectory() as tmp:
    inp, outp = os.path.join(tmp, "ours.npz"), os.path.join(tmp, "theirs.npz")
    np.savez(inp, **{f"{n}/{k}": v for n, o in ours.items() for k, v in o.items()
                     if not k.startswith("_")})
    subprocess.run([args.peer_python, os.path.abspath(__file__), "--torch_side", inp, outp,
                    "--authors_dir", args.authors_dir], check=True)
    with np.load(outp) as f:
      theirs = dict(f)

  rows = table(ours, theirs)
  columns = list(rows[0][1])
  print("| model | " + " | ".join(columns) + " |")
  print("|---" * (len(columns) + 1) + "|")
  for name, row in rows:
    print(f"| {name} | " + " | ".join(f"{row[c]:.1e}" for c in columns) + " |")
  worst = max(max(r.values()) for _, r in rows)
  print(f"largest difference {worst:.2e} (tolerance {args.tolerance:g}); float64, "
        f"V={V}, T={T}, N={N} (classifiers: counts {COUNTS}, D={D}, 28x28 images), "
        f"{STEPS} steps; authors' commit {AUTHORS_COMMIT[:7]}")
  # Initial distributions (not values): per-parameter std of their GPTModel vs ours.
  import jax.numpy as jnp
  from imbalance_jax import models
  model = models.GPT2(vocab_size=INIT["vocab"], num_layers=INIT["layers"], d_model=INIT["d"],
                      num_heads=INIT["heads"], mlp_dim=4 * INIT["d"], param_dtype=jnp.float64)
  ours_init = torch_state(model.init(jax.random.key(args.seed), jnp.zeros((1, 2), jnp.int32)))
  print("\nGPT2 initial std per parameter (V=%d, %d layers, d=%d): theirs / ours"
        % (INIT["vocab"], INIT["layers"], INIT["d"]))
  worst_ratio = 0.0
  for name, value in ours_init.items():
    if not name.startswith(("transformer_encoder.layers.0.", "transformer_encoder.norm",
                            "embedding", "classifier")):
      continue
    theirs_std, ours_std = float(theirs[f"init_std/{name}"]), float(np.std(value))
    ratio = theirs_std / ours_std if ours_std else (1.0 if theirs_std == 0 else np.inf)
    worst_ratio = max(worst_ratio, abs(np.log(ratio)) if ratio else np.inf)
    print(f"  {name:48s} {theirs_std:.4g} / {ours_std:.4g}")
  print(f"largest |log(std ratio)| {worst_ratio:.3f} (sampling noise at these sizes: < 0.1)")
  print("their layers start from the same attention weights (ours: drawn per layer): "
        f"{bool(theirs['same_attention_init'])}")
  if args.write_reference:
    o, params = ours["gpt2_small"], ours["gpt2_small"]["_params_flax"]
    t = {k[len("gpt2_small/"):]: v for k, v in theirs.items() if k.startswith("gpt2_small/")}
    grads = flax_arrays(params, {k[len("grad/"):]: v for k, v in t.items()
                                 if k.startswith("grad/")})
    weights = flax_arrays(params, {k[len("param/"):]: v for k, v in o.items()
                                   if k.startswith("param/")})
    np.savez_compressed(args.write_reference, tokens=o["inputs"], logits=t["logits"],
                        **{f"param/{k}": v for k, v in weights.items()},
                        **{f"grad/{k}": v for k, v in grads.items()},
                        config=np.array(repr(MODELS["gpt2_small"])),
                        commit=np.array(AUTHORS_COMMIT))
    print(f"wrote {args.write_reference}")
  return 1 if worst > args.tolerance or worst_ratio > 0.1 else 0


if __name__ == "__main__":
  sys.exit(main())
