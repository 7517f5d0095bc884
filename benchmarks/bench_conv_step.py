r"""Issue 9 performance: a conv model's full-batch GD step inside `make_train` vs alone vs PyTorch.

Paper H's CNN (`models.SmallCNN`, 10 classes, N images 28x28x1), one step =
forward + backward + GD update. Every number is images per second, and every
ratio is of two numbers measured in this one process, timed in alternation
(the machine is shared; the median of ``--repeats`` runs is reported):

* ``jit alone``: the step as one jitted function, called in a Python loop;
* ``make_train``: ``num_steps`` steps of `train.make_train` (a ``lax.scan``),
  per-class metrics logged once;
* ``scan (plain)`` (``--plain``): the same hand-written step in a bare
  ``lax.scan``, without `train.xla_cpu` (the ~30-60x penalty of issue 9);
* ``scan + canonical``: that scan with `train.xla_cpu.canonical_convolutions`;
* ``sweep`` (``--members M``): `train.Sweep` over M learning rates vs the
  vmapped step jitted alone (members per second x N);
* ``torch``: the same CNN and step in PyTorch on the CPU, run by the Python of
  a separate virtual environment (``--torch_python``, default
  ``/tmp/torchvenv/bin/python``; skipped if absent — torch is never a
  dependency of this project).

Target (issue 9): make_train / jit alone >= 1/1.2 (within 1.2x); torch / jax
as low as possible. See docs/performance_conv.md.

  python benchmarks/bench_conv_step.py                    # N=256, 3 steps
  python benchmarks/bench_conv_step.py --plain --members 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import metrics, models, optim, train, types
from imbalance_jax.train import xla_cpu

TORCH_SCRIPT = r"""
import statistics, sys, time
import torch
n, steps, repeats, threads = (int(a) for a in sys.argv[1:5])
if threads > 0:
  torch.set_num_threads(threads)
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 32, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(32, 100, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(), torch.nn.Linear(4900, 10))
x = torch.randn(n, 1, 28, 28)
y = torch.randint(0, 10, (n,))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
def run():
  for _ in range(steps):
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
run()
times = []
for _ in range(repeats):
  start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
print(torch.__version__, torch.get_num_threads(), n * steps / statistics.median(times))
"""


def median_rates(fns, images, repeats):
  """Images/s (median over ``repeats``) of each ``fn()``, timed in alternation."""
  for fn in fns:
    jax.block_until_ready(fn())
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, record in zip(fns, times):
      start = time.perf_counter()
      jax.block_until_ready(fn())
      record.append(time.perf_counter() - start)
  return [images / statistics.median(t) for t in times]


def torch_rate(python, n, steps, repeats, threads=0):
  """``(images/s, note)`` of the PyTorch step (``threads`` 0: torch's default count)."""
  if not os.path.exists(python):
    return None, f"no PyTorch: {python} not found"
  out = subprocess.run([python, "-c", TORCH_SCRIPT, str(n), str(steps), str(repeats),
                        str(threads)],
                       capture_output=True, text=True, check=True).stdout.split()
  return float(out[2]), f"torch {out[0]} ({out[1]} threads)"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--n", type=int, default=256)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--plain", action="store_true", help="also time the unfixed scan (slow)")
  parser.add_argument("--members", type=int, default=0, help="also time a Sweep of M members")
  parser.add_argument("--torch_python", default="/tmp/torchvenv/bin/python")
  parser.add_argument("--threads", type=int, default=2,
                      help="PyTorch intra-op threads (0: torch's default)")
  args = parser.parse_args()
  n, steps = args.n, args.steps

  model = models.SmallCNN(num_classes=10)
  x = jax.random.normal(jax.random.key(0), (n, 28, 28, 1))
  y = jax.random.randint(jax.random.key(1), (n,), 0, 10)
  data = types.make_dataset(x, y, 10)
  params = model.init(jax.random.key(2), x[:1])
  objective = train.classification_objective(model.apply)
  make_optimizer = optim.injectable("gd", momentum=0.0)
  learning_rate = 0.01
  groups = np.arange(10) // 5
  tr = train.make_train(objective, make_optimizer, num_steps=steps, log_every=steps,
                        metrics_fn=metrics.classification_metrics(groups))
  optimizer = make_optimizer(learning_rate)

  def make_step(grad_transform):
    def step(carry):
      params, opt_state = carry
      grads = grad_transform(jax.grad(lambda p: objective(p, data)[0]))(params)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return jax.tree.map(jnp.add, params, updates), opt_state
    return step

  plain_step = make_step(lambda f: f)
  canonical_step = make_step(xla_cpu.canonical_convolutions)
  carry = (params, optimizer.init(params))
  jit_step = jax.jit(plain_step)

  def alone():
    c = carry
    for _ in range(steps):
      c = jit_step(c)
    return c

  def scanned(step):
    return jax.jit(lambda c: jax.lax.scan(lambda c, _: (step(c), None), c, length=steps)[0])

  scan_canonical = scanned(canonical_step)
  state = tr.init(params, data, learning_rate)
  run = jax.jit(tr.run, static_argnums=2)
  names = ["jit alone", "make_train", "scan + canonical"]
  fns = [alone, lambda: run(state, data, steps), lambda: scan_canonical(carry)]
  if args.plain:
    scan_plain = scanned(plain_step)
    names.append("scan (plain)")
    fns.append(lambda: scan_plain(carry))
  rates = median_rates(fns, n * steps, args.repeats)
  torch_ips, torch_note = torch_rate(args.torch_python, n, steps, args.repeats, args.threads)
  load = os.getloadavg()
  print(f"SmallCNN, N={n}, {steps} steps, median of {args.repeats}, "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} cores; "
        f"load average {load[0]:.1f} {load[1]:.1f}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}")
  for name, rate in zip(names, rates):
    print(f"  {name:<18} {rate:9.1f} images/s   / jit alone = {rate / rates[0]:.3f}")
  if torch_ips is None:
    print(f"  {torch_note}")
  else:
    print(f"  {'torch':<18} {torch_ips:9.1f} images/s   {torch_note}")
    print(f"  torch / jit alone = {torch_ips / rates[0]:.2f}, "
          f"torch / make_train = {torch_ips / rates[1]:.2f}")

  if args.members:
    rates_L = jnp.geomspace(1e-3, 1e-2, args.members)
    sweep = train.Sweep(tr, data_per_seed=False)
    params_S = jax.tree.map(lambda p: p[None], params)
    _, sweep_state, sweep_data = sweep.init(params_S, data, rates_L)
    params_L = jax.tree.map(lambda p: jnp.stack([p] * args.members), params)
    members_carry = (params_L, jax.vmap(optimizer.init)(params_L))
    vmapped = jax.jit(jax.vmap(plain_step))

    def alone_members():
      c = members_carry
      for _ in range(steps):
        c = vmapped(c)
      return c

    sweep_rates = median_rates(
        [alone_members, lambda: sweep.run(sweep_state, sweep_data, steps)],
        args.members * n * steps, args.repeats)
    print(f"  {args.members} members: vmapped step jit alone {sweep_rates[0]:.1f}, "
          f"Sweep.run {sweep_rates[1]:.1f} member-images/s "
          f"(ratio {sweep_rates[1] / sweep_rates[0]:.3f})")


if __name__ == "__main__":
  main()
