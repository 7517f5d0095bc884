r"""Issue 24: conv models' training step inside `make_train` vs PyTorch, timed in alternation.

One run times, for each model below, the library's loop (`train.make_train`,
a ``lax.scan`` of full-batch GD steps on N images, per-class metrics logged
once per call) and the same model and step in PyTorch on the CPU, *in
alternation*: repetition r runs the JAX program(s), then asks a PyTorch worker
process (started once per model, kept alive) for one timing. The machine is
shared, so each repetition gives a ratio ``torch seconds / jax seconds`` (the
speed of JAX relative to PyTorch, > 1 = JAX faster) and the script prints the
median of those ratios, the images/s and the load average before and after.

Models (the quick presets' sizes, plus paper H's CNN at the size of issue 9):

* ``smallcnn``: `models.SmallCNN` 32/100 channels, 5x5, N=256, 10 classes
  (paper H's CNN; `bench_conv_step.py`'s configuration);
* ``smallcnn_quick``: SmallCNN 4/8 channels, 3x3, N=1600, 170 classes
  (`barcoded_mnist`'s and `curvature_cnn`'s quick preset: 800 plain + 800
  barcoded digits);
* ``rcnn``: `models.ThreeLayerCNN` width 32, 3x3, N=64, 4 classes (paper R's
  CNN, `reweighting_mnist`'s batch of 64);
* ``resnet_bn`` / ``resnet_ln``: `models.ResNet18` with BatchNorm / LayerNorm,
  width 8, one block per stage, small stem, N=64, 10 classes
  (`imagenet_resnet`'s quick preset; BatchNorm in training mode).

All images are 28x28x1. The quick presets train on mini-batches of the sizes
above; here every step is one full batch of that size (the same per-step
work, without the batch sampling; `make_train` with ``MiniBatch`` also
evaluates the full set at logged steps, which PyTorch would not).

JAX variants (``--variants``, each its own compiled program):

* ``default``: `make_train` as a user gets it;
* ``no_ynn``: the same program compiled with XLA:CPU's YNNPACK fusions off
  (``jax.jit(..., compiler_options={"xla_cpu_experimental_ynn_fusion_type": ""})``,
  so every convolution runs on Eigen). Measured in docs/performance_conv.md.

PyTorch runs in a separate virtual environment (``--torch_python``; default
the first of /tmp/peer_venv and /tmp/torchvenv that exists; torch is never a
dependency of this project) with ``--threads`` intra-op threads and
``OMP_WAIT_POLICY=PASSIVE`` (its spin-waiting collapses under load; see
docs/performance_conv.md).

  python benchmarks/bench_conv_vs_torch.py                       # all models
  python benchmarks/bench_conv_vs_torch.py --models rcnn,resnet_bn --repeats 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

import jax
import numpy as np

from imbalance_jax import metrics, models, optim, train, types

MODELS = ("smallcnn", "smallcnn_quick", "rcnn", "resnet_bn", "resnet_ln")
VARIANTS = {"default": None, "no_ynn": {"xla_cpu_experimental_ynn_fusion_type": ""}}
SIZES = {"smallcnn": 256, "smallcnn_quick": 1600, "rcnn": 64, "resnet_bn": 64, "resnet_ln": 64}
CLASSES = {"smallcnn": 10, "smallcnn_quick": 170, "rcnn": 4, "resnet_bn": 10, "resnet_ln": 10}

TORCH_WORKER = r"""
import sys, time, torch
from torch import nn
name, n, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)

class Block(nn.Module):
  def __init__(self, cin, cout, stride, norm):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = norm(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = norm(cout)
    self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout))
                     if stride != 1 or cin != cout else nn.Identity())
  def forward(self, x):
    y = torch.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return torch.relu(self.shortcut(x) + y)

def resnet18(width, stages, norm, classes):
  layers = [nn.Conv2d(1, width, 3, 1, 1, bias=False), norm(width), nn.ReLU()]
  cin = width
  for i, blocks in enumerate(stages):
    for j in range(blocks):
      cout = width * 2**i
      layers.append(Block(cin, cout, 2 if i > 0 and j == 0 else 1, norm))
      cin = cout
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
  return nn.Sequential(*layers)

def cnn(channels, kernel, head_in, classes):
  layers, cin = [], 1
  for c in channels:
    layers += [nn.Conv2d(cin, c, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool2d(2)]
    cin = c
  return nn.Sequential(*layers, nn.Flatten(), nn.Linear(head_in, classes))

if name == "smallcnn":
  classes, model = 10, cnn((32, 100), 5, 4900, 10)
elif name == "smallcnn_quick":
  classes, model = 170, cnn((4, 8), 3, 392, 170)
elif name == "rcnn":
  classes = 4
  model = nn.Sequential(*cnn((32, 32, 32), 3, 32, 4)[:-2], nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(32, 4))
else:
  classes = 10
  norm = nn.BatchNorm2d if name == "resnet_bn" else (lambda c: nn.GroupNorm(1, c))
  model = resnet18(8, (1, 1, 1, 1), norm, 10).train()
x = torch.randn(n, 1, 28, 28)
y = torch.randint(0, classes, (n,))
opt = torch.optim.SGD(model.parameters(), lr=0.01)

def run():
  for _ in range(steps):
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()

run()
print(torch.__version__, torch.get_num_threads(), sum(p.numel() for p in model.parameters()),
      flush=True)
for _ in sys.stdin:
  start = time.perf_counter()
  run()
  print(time.perf_counter() - start, flush=True)
"""


def jax_model(name: str):
  """``(model, stateful)`` of the library for benchmark model ``name``."""
  if name == "smallcnn":
    return models.SmallCNN(10), False
  if name == "smallcnn_quick":
    return models.SmallCNN(170, features=(4, 8), kernel_size=3), False
  if name == "rcnn":
    return models.ThreeLayerCNN(4), False
  norm = {"resnet_bn": "batch", "resnet_ln": "layer"}[name]
  return models.ResNet18(10, norm=norm, stem="small", width=8, stage_sizes=(1, 1, 1, 1)), (
      norm == "batch")


def jax_runs(name: str, steps: int, variants):
  """``({variant: fn}, num_params)``: each ``fn()`` runs ``steps`` steps of `make_train`."""
  n, c = SIZES[name], CLASSES[name]
  model, stateful = jax_model(name)
  x = jax.random.normal(jax.random.key(0), (n, 28, 28, 1))
  y = jax.random.randint(jax.random.key(1), (n,), 0, c)
  data = types.make_dataset(x, y, c)
  variables = model.init(jax.random.key(2), x[:1])
  objective = train.classification_objective(model.apply, stateful=stateful)
  tr = train.make_train(objective, optim.injectable("gd", momentum=0.0), num_steps=steps,
                        log_every=steps, stateful=stateful,
                        metrics_fn=metrics.classification_metrics(np.arange(c) // (c // 2),
                                                                   per_class=True))
  state = tr.init(variables, data, 0.01)
  fns = {}
  for variant in variants:
    compiled = jax.jit(tr.run, static_argnums=2, compiler_options=VARIANTS[variant]).lower(
        state, data, steps).compile()
    fns[variant] = lambda compiled=compiled: compiled(state, data)
  params = variables["params"] if "params" in variables else variables
  return fns, sum(p.size for p in jax.tree.leaves(params))


def default_torch_python() -> str:
  for python in ("/tmp/peer_venv/bin/python", "/tmp/torchvenv/bin/python"):
    if os.path.exists(python):
      return python
  return "/tmp/peer_venv/bin/python"


def measure(name, steps, repeats, variants, torch_python, threads):
  """Prints one model's images/s and median torch/jax time ratios, alternating each repetition."""
  n = SIZES[name]
  load_before = os.getloadavg()[0]
  fns, num_params = jax_runs(name, steps, variants)
  for fn in fns.values():
    jax.block_until_ready(fn())
  worker = None
  if os.path.exists(torch_python):
    worker = subprocess.Popen(
        [torch_python, "-c", TORCH_WORKER, name, str(n), str(steps), str(threads)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
    torch_version, torch_threads, torch_params = worker.stdout.readline().split()
  times = {key: [] for key in [*fns, "torch"]}
  for _ in range(repeats):
    for variant, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[variant].append(time.perf_counter() - start)
    if worker is not None:
      worker.stdin.write("time\n")
      worker.stdin.flush()
      times["torch"].append(float(worker.stdout.readline()))
  if worker is not None:
    worker.stdin.close()
    worker.wait()
  load_after = os.getloadavg()[0]
  rate = {key: n * steps / statistics.median(t) for key, t in times.items() if t}
  print(f"{name}: N={n}, {steps} steps per call, {repeats} alternating repetitions, "
        f"{num_params:,} parameters; load average {load_before:.1f} -> {load_after:.1f}")
  for variant in fns:
    line = f"  jax {variant:<8} {rate[variant]:9.1f} images/s"
    if worker is not None:
      ratios = [t / j for t, j in zip(times["torch"], times[variant])]
      line += (f"   jax/torch speed: median {statistics.median(ratios):.2f} "
               f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
    print(line)
  if worker is None:
    print(f"  no PyTorch: {torch_python} not found")
  else:
    print(f"  torch {torch_version} {rate['torch']:9.1f} images/s ({torch_threads} threads, "
          f"{int(torch_params):,} parameters)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--variants", default="default,no_ynn")
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads")
  parser.add_argument("--torch_python", default=default_torch_python())
  args = parser.parse_args()
  names, variants = args.models.split(","), args.variants.split(",")
  for value, allowed, flag in ((names, MODELS, "--models"), (variants, VARIANTS, "--variants")):
    unknown = sorted(set(value) - set(allowed))
    if unknown:
      parser.error(f"{flag}: unknown {unknown}; choose from {sorted(allowed)}")
  print(f"jax {jax.__version__}, {os.cpu_count()} cores, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; {time.strftime('%H:%M:%S UTC', time.gmtime())}")
  for name in names:
    measure(name, args.steps, args.repeats, variants, args.torch_python, args.threads)


if __name__ == "__main__":
  main()
