r"""Issue 9 performance: ResNet18 (BatchNorm) full-batch step inside `make_train` vs PyTorch.

The library's `models.ResNet18` (``norm="batch"``, ``stem="small"``, first
stage ``--width`` channels, 10 classes) on N random ``S x S x channels``
images; one step = forward (batch statistics, running averages updated) +
backward + GD update. Every number is images per second (median of
``--repeats``), and every ratio is of two numbers measured in this one run:

* ``make_train``: ``--steps`` steps of `train.make_train` (``stateful=True``,
  a ``lax.scan``) with per-class metrics
  (`metrics.classification_metrics(per_class=True)`) logged once;
* ``jit alone``: the same step as one jitted function called in a Python
  loop, no metrics (what `make_train` adds on top);
* ``forward only`` (jit): the training-mode forward pass alone;
* ``torch``: the same architecture written in PyTorch (``TORCH_SCRIPT``: 3x3
  stride-1 stem, four stages of two basic blocks, 1x1 projection shortcuts,
  BatchNorm eps 1e-5 / momentum 0.1, global average pooling, Linear head),
  the same step (``model.train()``, cross-entropy, ``torch.optim.SGD``), run by
  the Python of a separate virtual environment (``--torch_python``; skipped if
  absent: torch is never a dependency of this project), once per thread count
  in ``--threads`` (intra-op threads); it also times its forward pass alone.

JAX uses the cores the process may run on (pin with ``taskset -c 0`` for a
one-core comparison with ``--threads 1``). On a loaded machine PyTorch's
OpenMP threads spin-wait for each other and collapse (2 threads ~10x slower
than 1 under a load average of ~7 on 2 cores); ``OMP_WAIT_POLICY=PASSIVE``
avoids most of that, and the script prints the load average.

Target (issue 9): make_train / torch >= 1, or
docs/performance_conv.md explains what limits it.

  OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_resnet_step.py   # width 16, 28x28x1, N=64
  taskset -c 0 python benchmarks/bench_resnet_step.py --threads 1    # one core each
  python benchmarks/bench_resnet_step.py --width 64 --size 32 --channels 3 --n 32
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import metrics, models, optim, train, types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_conv_step import median_rates  # noqa: E402  (same timing protocol)

TORCH_SCRIPT = r"""
import statistics, sys, time
import torch
from torch import nn
n, size, channels, width, steps, repeats, threads = (int(a) for a in sys.argv[1:8])
torch.set_num_threads(threads)
torch.manual_seed(0)

class Block(nn.Module):
  def __init__(self, cin, cout, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())
  def forward(self, x):
    y = torch.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return torch.relu(self.shortcut(x) + y)

def resnet18(width, channels, classes=10):
  layers = [nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
  cin = width
  for i in range(4):
    for j in range(2):
      cout = width * 2**i
      layers.append(Block(cin, cout, 2 if i > 0 and j == 0 else 1))
      cin = cout
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
  return nn.Sequential(*layers)

model = resnet18(width, channels).train()
x = torch.randn(n, channels, size, size)
y = torch.randint(0, 10, (n,))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
def step_run():
  for _ in range(steps):
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
def forward_run():
  with torch.no_grad():
    for _ in range(steps):
      model(x)
def rate(fn):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
  return n * steps / statistics.median(times)
params = sum(p.numel() for p in model.parameters())
print(torch.__version__, torch.get_num_threads(), params, rate(step_run), rate(forward_run))
"""


def torch_rates(python, n, size, channels, width, steps, repeats, threads):
  """``(step images/s, forward images/s, note)`` of the PyTorch model, or Nones and why."""
  if not os.path.exists(python):
    return None, None, f"no PyTorch: {python} not found"
  out = subprocess.run([python, "-c", TORCH_SCRIPT] + [str(a) for a in (
      n, size, channels, width, steps, repeats, threads)],
      capture_output=True, text=True, check=True).stdout.split()
  return (float(out[3]), float(out[4]),
          f"torch {out[0]}, {out[1]} threads, {int(out[2]):,} parameters")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--n", type=int, default=64)
  parser.add_argument("--size", type=int, default=28)
  parser.add_argument("--channels", type=int, default=1)
  parser.add_argument("--width", type=int, default=16)
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--threads", default="2,1",
                      help="PyTorch intra-op thread counts to time (comma-separated)")
  parser.add_argument("--torch_python", default="/tmp/torchvenv/bin/python")
  args = parser.parse_args()
  n, steps = args.n, args.steps

  model = models.ResNet18(num_classes=10, norm="batch", stem="small", width=args.width)
  x = jax.random.normal(jax.random.key(0), (n, args.size, args.size, args.channels))
  y = jax.random.randint(jax.random.key(1), (n,), 0, 10)
  data = types.make_dataset(x, y, 10)
  variables = model.init(jax.random.key(2), x[:1])
  num_params = sum(p.size for p in jax.tree.leaves(variables["params"]))
  objective = train.classification_objective(model.apply, stateful=True)
  make_optimizer = optim.injectable("gd", momentum=0.0)
  learning_rate = 0.01
  tr = train.make_train(objective, make_optimizer, num_steps=steps, log_every=steps,
                        metrics_fn=metrics.classification_metrics(np.arange(10) // 5,
                                                                   per_class=True),
                        stateful=True)
  state = tr.init(variables, data, learning_rate)
  run = jax.jit(tr.run, static_argnums=2)
  optimizer = make_optimizer(learning_rate)

  @jax.jit
  def step(carry):
    params, batch_stats, opt_state = carry

    def loss_fn(p):
      logits, updates = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                    mutable=["batch_stats"])
      loss = jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(
          logits, y[:, None], -1)[:, 0])
      return loss, updates["batch_stats"]

    grads, new_stats = jax.grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return jax.tree.map(jnp.add, params, updates), new_stats, opt_state

  carry = (variables["params"], variables["batch_stats"],
           optimizer.init(variables["params"]))
  forward = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"])[0])

  def alone():
    c = carry
    for _ in range(steps):
      c = step(c)
    return c

  def forward_only():
    return [forward(variables) for _ in range(steps)]

  names = ["make_train", "jit alone", "forward only"]
  rates = median_rates([lambda: run(state, data, steps), alone, forward_only], n * steps,
                       args.repeats)
  torch = {int(t): torch_rates(args.torch_python, n, args.size, args.channels, args.width,
                                steps, args.repeats, int(t)) for t in args.threads.split(",")}
  load = os.getloadavg()
  print(f"ResNet18 (BatchNorm, small stem, width {args.width}, {num_params:,} parameters), "
        f"N={n} images {args.size}x{args.size}x{args.channels}, {steps} steps, median of "
        f"{args.repeats}; jax {jax.__version__} on {os.cpu_count()} cores "
        f"(affinity {len(os.sched_getaffinity(0))}); load average {load[0]:.1f} {load[1]:.1f}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}")
  for name, rate in zip(names, rates):
    print(f"  jax {name:<14} {rate:9.1f} images/s")
  print(f"  make_train / jit alone = {rates[0] / rates[1]:.2f}")
  for threads, (torch_step, torch_forward, note) in torch.items():
    if torch_step is None:
      print(f"  {note}")
      continue
    print(f"  torch step         {torch_step:9.1f} images/s, forward only {torch_forward:9.1f} "
          f"({note})")
    print(f"    make_train / torch = {rates[0] / torch_step:.2f}, "
          f"jit alone / torch = {rates[1] / torch_step:.2f}, "
          f"forward jax / torch = {rates[2] / torch_forward:.2f}")

if __name__ == "__main__":
  main()
