"""Cost of the per-block Lanczos (issue 23), as ratios to a baseline timed in the same run.

  python benchmarks/bench_curvature_spectra.py [--m 5] [--steps 32] [--probes 2] [--repeats 3]
      [--blocks_at_once 1] [--closed_form 1]

1. Lanczos with k steps on one block (the whole head of the linear model, and
   one class row) vs k x one Hessian-vector product of the same block (target
   about 1: Lanczos costs about k hvps; full reorthogonalisation adds
   O(n k^2)).
2. `block_spectra` of all c class blocks, K probes of k steps, vs c K k x one
   block hvp (extrapolated from the k timed in 1; vmapped over blocks and
   probes, so the ratio can be below 1).
3. The same with ``blocks_at_once`` (--blocks_at_once, `spectra.map_blocks`: a
   lax.map over batches of blocks, for memory) vs all blocks at once.
4. `curvature.head_blocks.head_block_spectra` (the closed-form class blocks, no
   hvp: each Lanczos matvec O(n d)) vs `block_spectra` on hvps (part 2), the
   same probes: the fast path's speed-up (the hvp path's time / the closed
   form's is printed as "speed-up"; --closed_form 0 skips it).

Each timing is the min and median over --repeats runs after a warm-up
(compile) call; the k hvps of the baseline run inside one jitted lax.scan
(no dispatch per hvp), as the Lanczos steps run inside one fori_loop.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from imbalance_jax import curvature, data, models, train
from imbalance_jax.curvature import head_blocks, spectra


def timeit(fn, repeats):
  jax.block_until_ready(fn())  # compile + warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return np.min(times), np.median(times)


def report(name, value, baseline, target=None):
  ratio_min, ratio_med = value[0] / baseline[0], value[1] / baseline[1]
  flag = "" if target is None else ("  OK" if ratio_min <= target else f"  ABOVE {target}")
  print(f"{name:62s} {value[0] * 1e3:9.2f} ms  ratio {ratio_min:6.3f} (median {ratio_med:6.3f})"
        f"{flag}")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--m", type=int, default=5)
  parser.add_argument("--steps", type=int, default=32)
  parser.add_argument("--probes", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--all_blocks", type=int, default=1, help="0 skips parts 2 and 3")
  parser.add_argument("--blocks_at_once", type=int, default=1, help="part 3 (0 skips it)")
  parser.add_argument("--closed_form", type=int, default=1, help="part 4 (0 skips it)")
  args = parser.parse_args()

  ds = data.heavy_tailed_labels(jax.random.key(0), args.m)
  model = models.LinearSoftmax(ds.num_classes)
  params = model.init(jax.random.key(1), ds.x[:1])
  objective = train.classification_objective(model.apply)
  head_loss, head = curvature.restrict_to_layer(lambda p: objective(p, ds)[0], params)
  k = args.steps
  print(f"m={args.m}: n={ds.x.shape[0]} d={ds.x.shape[1]} c={ds.num_classes}; "
        f"{jax.devices()[0].platform}, k={k} Lanczos steps, repeats={args.repeats}")

  for label, scheme in (("whole head", None), ("one class row", "class")):
    if scheme is None:
      ids = jax.tree.map(lambda v: np.zeros(np.shape(v), np.int32), head)
      num_blocks = 1
    else:
      ids, _ = spectra.block_partition(head, "class")
      ids = jax.tree.map(lambda i: np.where(i == 0, 0, -1), ids)  # block 0 only
      num_blocks = 1
    idx = jnp.asarray(spectra.block_indices(head, ids, num_blocks)[0])
    matvec = spectra.block_matvec(head_loss, head)
    probe = jax.random.rademacher(jax.random.key(2), idx.shape, jnp.float32)

    lanczos = jax.jit(lambda v, idx=idx, matvec=matvec: spectra.lanczos_quadrature(
        lambda u: matvec(u, idx), v, k))

    def k_hvps(v, idx=idx, matvec=matvec):
      def body(u, _):
        w = matvec(u, idx)
        return w / jnp.linalg.norm(w), None
      return jax.lax.scan(body, v, None, length=k)[0]
    k_hvps = jax.jit(k_hvps)
    t_lanczos = timeit(lambda: lanczos(probe), args.repeats)
    t_hvps = timeit(lambda: k_hvps(probe), args.repeats)
    report(f"Lanczos k={k} on the {label} (n={idx.size}) / {k} x one hvp", t_lanczos,
           t_hvps, target=1.5)

  if not args.all_blocks:
    return
  ids, names = spectra.block_partition(head, "class")
  c, kp = len(names), args.probes
  block = jax.jit(lambda p: spectra.block_spectra(head_loss, p, ids, num_blocks=c,
                                                  key=jax.random.key(3), num_probes=kp,
                                                  num_steps=k))
  t_block = timeit(lambda: block(head), args.repeats)
  # Baseline: c K k sequential block hvps, extrapolated from the k timed above (the last
  # loop iteration is the class row).
  t_all = (t_hvps[0] * c * kp, t_hvps[1] * c * kp)
  report(f"block_spectra, {c} class blocks x {kp} probes x {k} steps / {c * kp * k} x one hvp",
         t_block, t_all)
  if args.closed_form:
    hc = head_blocks.head_curvature(model.apply(params, ds.x), ds.x, bias=True)
    closed = jax.jit(lambda h: head_blocks.head_block_spectra(
        h, key=jax.random.key(3), num_probes=kp, num_steps=k))
    t_closed = timeit(lambda: closed(hc), args.repeats)
    nodes = np.asarray(block(head).nodes)
    print(f"  closed form vs hvp path: max |top Ritz value difference| / top = "
          f"{np.max(np.abs(np.asarray(closed(hc).nodes) - nodes)[..., -1]) / nodes.max():.1e}")
    report(f"head_block_spectra (closed form), {c} blocks / block_spectra on hvps", t_closed,
           t_block)
    print(f"  speed-up of the closed form: {t_block[0] / t_closed[0]:.1f}x "
          f"(median {t_block[1] / t_closed[1]:.1f}x)")
  if not args.blocks_at_once:
    return
  batched = jax.jit(lambda p: spectra.block_spectra(
      head_loss, p, ids, num_blocks=c, key=jax.random.key(3), num_probes=kp, num_steps=k,
      blocks_at_once=args.blocks_at_once))
  t_batched = timeit(lambda: batched(head), args.repeats)
  report(f"block_spectra, blocks_at_once={args.blocks_at_once} / all {c} at once", t_batched,
         t_block)


if __name__ == "__main__":
  main()
