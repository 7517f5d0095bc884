"""Block spectra (Lanczos, SLQ) and block-structure measures against dense float64 truth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.distance
from jax.flatten_util import ravel_pytree

from imbalance_jax import data, models, optim, train
from imbalance_jax.curvature import heterogeneity as het
from imbalance_jax.curvature import spectra
from imbalance_jax.models.mlp import MLP

N, D, C = 24, 5, 4


def _mlp_problem():
  kx, ky, kp = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (N, D), jnp.float64)
  y = jax.random.randint(ky, (N,), 0, C)
  model = MLP(num_classes=C, hidden=(6,), param_dtype=jnp.float64)
  params = model.init(kp, x)

  def loss(p):
    logits = model.apply(p, x)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))
  return params, loss


def _dense_blocks(loss, params, block_ids, num_blocks):
  flat, unravel = ravel_pytree(params)
  dense = np.asarray(jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat))
  idx = spectra.block_indices(params, block_ids, num_blocks)
  return [dense[np.ix_(i, i)] for i in idx], dense, idx


def _quadratic(matrix):
  a = jnp.asarray(matrix)
  return lambda w: 0.5 * w @ a @ w


def _random_symmetric(key, n, scale=1.0):
  a = jax.random.normal(key, (n, n), jnp.float64)
  return np.asarray(scale * (a + a.T) / 2)


def _rotation(key, n):
  return np.linalg.qr(np.asarray(jax.random.normal(key, (n, n), jnp.float64)))[0]


@pytest.mark.slow  # ~10 s of compiles (jax.hessian of the MLP); the fast tests below cover it
@pytest.mark.parametrize("scheme", ["layer", "parameter", "whole"])
def test_lanczos_top5_matches_dense_hessian_of_mlp(x64, scheme):
  params, loss = _mlp_problem()
  if scheme == "whole":
    ids, names = jax.tree.map(lambda v: np.zeros(np.shape(v), np.int32), params), ["all"]
  else:
    ids, names = spectra.block_partition(params, scheme)
  blocks, _, idx = _dense_blocks(loss, params, ids, len(names))
  big = [b for b, i in enumerate(idx) if i.size >= 20]
  assert big  # the test compares blocks with at least 20 coordinates
  # Lanczos needs num_steps <= every block size: compare the big blocks on their own.
  sub_ids = jax.tree.map(lambda i: np.where(np.isin(i, big), np.searchsorted(big, i), -1), ids)
  num_steps = min(idx[b].size for b in big)
  spec = jax.jit(lambda p: spectra.block_spectra(
      loss, p, sub_ids, num_blocks=len(big), key=jax.random.key(1), num_probes=1,
      num_steps=num_steps))(params)
  top = np.asarray(spectra.top_eigenvalues(spec, 5))
  for j, b in enumerate(big):
    expected = np.linalg.eigvalsh(blocks[b])[::-1][:5]
    np.testing.assert_allclose(top[j], expected, rtol=1e-6, atol=1e-10 * abs(expected[0]))


def test_blocks_of_different_sizes_are_each_their_own_restriction(x64):
  # Blocks of 4 and 6 coordinates (two vmapped size groups) of a dense 10 x 10 matrix,
  # interleaved; 4 steps exhaust block 0's Krylov space: exact Ritz values there.
  h = _random_symmetric(jax.random.key(20), 10)
  ids = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0])
  spec = jax.jit(lambda w: spectra.block_spectra(
      _quadratic(h), w, ids, num_blocks=2, key=jax.random.key(21), num_probes=3,
      num_steps=4))(jnp.zeros(10))
  assert spec.sizes.tolist() == [4, 6]
  block0, block1 = h[np.ix_(ids == 0, ids == 0)], h[np.ix_(ids == 1, ids == 1)]
  for k in range(3):
    np.testing.assert_allclose(spec.nodes[0, k], np.linalg.eigvalsh(block0), rtol=1e-10)
  eig1 = np.linalg.eigvalsh(block1)  # Ritz values of block 1 lie inside its spectrum
  assert np.all(spec.nodes[1] >= eig1[0] - 1e-12) and np.all(spec.nodes[1] <= eig1[-1] + 1e-12)
  assert float(spec.nodes[1].max()) > eig1[-2]  # ... and the top one is already close


def _head_problem(num_examples, dim, num_classes, feature_scales, seed, weight_scale=0.3):
  kx, ky, kw = jax.random.split(jax.random.key(seed), 3)
  x = jax.random.normal(kx, (num_examples, dim), jnp.float64) * feature_scales
  y = jax.random.randint(ky, (num_examples,), 0, num_classes)
  head = {"kernel": weight_scale * jax.random.normal(kw, (dim, num_classes), jnp.float64),
          "bias": jnp.zeros(num_classes, jnp.float64)}

  def loss(p):
    logits = x @ p["kernel"] + p["bias"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))
  ids, names = spectra.block_partition(head, "class")
  blocks, _, _ = _dense_blocks(loss, head, ids, len(names))
  return loss, head, ids, blocks


def test_lanczos_top5_per_class_head_blocks_with_fewer_steps_than_coordinates(x64):
  # Class rows of a 40-wide head: 41 coordinates each, 30 Lanczos steps.
  loss, head, ids, blocks = _head_problem(60, 40, 3, jnp.linspace(0.2, 3.0, 40), seed=5)
  spec = jax.jit(lambda p: spectra.block_spectra(loss, p, ids, num_blocks=3,
                                                 key=jax.random.key(2), num_probes=2,
                                                 num_steps=30))(head)
  top = np.asarray(spectra.top_eigenvalues(spec, 5))
  for b in range(3):
    np.testing.assert_allclose(top[b], np.linalg.eigvalsh(blocks[b])[::-1][:5], rtol=1e-6)


def test_slq_moments_match_dense_spectrum(x64):
  # The moments carry the Hutchinson error only (the quadrature is exact for p <= 7), whose
  # relative size is ~ sqrt(2 / effective rank of H^p / K): a full-rank head Hessian.
  loss, head, ids, blocks = _head_problem(200, 20, 3, 1.0, seed=6, weight_scale=0.05)
  spec = jax.jit(lambda p: spectra.block_spectra(
      loss, p, ids, num_blocks=3, key=jax.random.key(3), num_probes=2000, num_steps=4))(head)
  moments = np.asarray(spectra.density_moments(spec, 4))
  for b, block in enumerate(blocks):
    eig = np.linalg.eigvalsh(block)
    np.testing.assert_allclose(moments[b], [np.mean(eig**p) for p in range(1, 5)], rtol=1e-2)


def test_quadrature_is_exact_for_polynomials_with_an_orthonormal_set_of_probes(x64):
  # sum_i q_i^T A^p q_i = tr(A^p) for any orthonormal basis: no probe error left, so
  # m = 3 Lanczos nodes must reproduce the moments p <= 5 to rounding.
  a = _random_symmetric(jax.random.key(4), 12)
  q = _rotation(jax.random.key(5), 12)
  nodes, weights = jax.jit(jax.vmap(lambda v: spectra.lanczos_quadrature(
      lambda u: jnp.asarray(a) @ u, v, 3)))(jnp.asarray(q.T))
  eig = np.linalg.eigvalsh(a)
  for p in range(1, 6):
    np.testing.assert_allclose(float(jnp.sum(weights * nodes**p)), np.sum(eig**p), rtol=1e-9)


def _exact_density(matrices):
  eig = np.stack([np.linalg.eigvalsh(m) for m in matrices])  # [B, n]
  return jnp.asarray(eig[:, None, :]), jnp.full(eig[:, None, :].shape, 1.0 / eig.shape[1])


def test_heterogeneity_zero_for_identical_and_rotated_blocks_and_matches_scipy(x64):
  a = _random_symmetric(jax.random.key(6), 8)
  q = _rotation(jax.random.key(7), 8)
  b = _random_symmetric(jax.random.key(8), 8, scale=4.0) + 3 * np.eye(8)
  nodes, weights = _exact_density([a, a, q @ a @ q.T, b])
  score, dist = het.block_heterogeneity(nodes, weights, num_points=400)
  assert float(dist[0, 1]) == 0.0
  assert float(dist[0, 2]) < 1e-6  # same eigenvalues to rounding
  grid, sigma = het.density_grid(nodes, 400, weights=weights)
  rho = np.asarray(het.spectral_density(nodes, weights, grid, sigma))
  brute = np.array([[scipy.spatial.distance.jensenshannon(p, r) for r in rho] for p in rho])
  brute = np.nan_to_num(brute)  # scipy takes sqrt of a rounding-negative divergence
  np.testing.assert_allclose(dist, brute, atol=1e-8)  # sqrt of rounding-level JSD
  assert 0.3 < float(dist[0, 3]) <= np.sqrt(np.log(2))
  np.testing.assert_allclose(score, brute[np.triu_indices(4, 1)].mean(), atol=1e-8)
  # A fixed-width blur by hand (the density itself, not only the distance).
  t = np.asarray(grid)
  by_hand = np.exp(-0.5 * ((t[:, None] - np.linalg.eigvalsh(b)[None]) / float(sigma))**2).sum(1)
  np.testing.assert_allclose(rho[3], by_hand / by_hand.sum(), rtol=1e-10)


def test_heterogeneity_from_slq_on_a_block_diagonal_quadratic(x64):
  # Blocks A, Q A Q^T (same spectrum, other eigenvectors) and 5 A + 10 I (other spectrum).
  n = 30
  a = _random_symmetric(jax.random.key(9), n)
  q = _rotation(jax.random.key(10), n)
  h = np.zeros((3 * n, 3 * n))
  h[:n, :n], h[n:2 * n, n:2 * n], h[2 * n:, 2 * n:] = a, q @ a @ q.T, 5 * a + 10 * np.eye(n)
  ids = np.repeat(np.arange(3), n)
  measure = jax.jit(lambda nodes, weights: het.block_heterogeneity(
      nodes, weights, num_points=256, relative_sigma=0.02)[1])
  spec = jax.jit(lambda w: spectra.block_spectra(
      _quadratic(h), w, ids, num_blocks=3, key=jax.random.key(11), num_probes=64,
      num_steps=n))(jnp.zeros(3 * n))
  dist = measure(spec.nodes, spec.weights)
  exact_nodes, exact_weights = _exact_density([a, q @ a @ q.T, 5 * a + 10 * np.eye(n)])
  exact = measure(exact_nodes, exact_weights)
  assert float(dist[0, 1]) < 0.1 < 0.5 < float(dist[0, 2])
  np.testing.assert_allclose(dist, exact, atol=0.1)


def test_offdiag_share_block_diagonal_identical_and_dense(x64):
  n = 6
  a = _random_symmetric(jax.random.key(12), n)
  ids = np.repeat(np.arange(2), n)
  key = jax.random.key(13)
  share = jax.jit(lambda m: het.offdiag_share(het.block_frobenius_mass(
      _quadratic(m), jnp.zeros(2 * n), ids, num_blocks=2, key=key, num_probes=3)))
  # Block-diagonal: every probe's H v is zero off its block.
  assert float(share(np.block([[a, np.zeros((n, n))], [np.zeros((n, n)), 2 * a]]))) == 0.0
  # Identical blocks [[A, A], [A, A]]: (H v)_0 = (H v)_1 for every probe, share 1/2 exactly.
  np.testing.assert_allclose(share(np.block([[a, a], [a, a]])), 0.5, rtol=1e-12)
  # A dense matrix: the estimate converges to the exact block masses.
  h = _random_symmetric(jax.random.key(14), 3 * n)
  ids3 = np.repeat(np.arange(3), n)
  mass = jax.jit(lambda w: het.block_frobenius_mass(
      _quadratic(h), w, ids3, num_blocks=3, key=key, num_probes=4000,
      columns=np.array([2, 0])))(jnp.zeros(3 * n))
  exact = np.array([[np.sum(h[b * n:(b + 1) * n, c * n:(c + 1) * n] ** 2) for c in (2, 0)]
                    for b in range(3)])
  np.testing.assert_allclose(mass, exact, rtol=0.05)
  exact_share = 1 - (exact[2, 0] + exact[0, 1]) / exact.sum()
  np.testing.assert_allclose(het.offdiag_share(mass, [2, 0]), exact_share, rtol=0.05)


def test_one_one_norm_exact_with_all_columns_and_unbiased_when_sampled(x64):
  n = 8
  d = np.linspace(1.0, 4.0, n)
  q = _rotation(jax.random.key(15), n)
  rotated = q @ np.diag(d) @ q.T
  h = np.block([[np.diag(d), 0.1 * np.ones((n, n))], [0.1 * np.ones((n, n)), rotated]])
  ids = np.repeat(np.arange(2), n)
  one_one = het.block_one_one_norms(_quadratic(h), jnp.zeros(2 * n), ids, num_blocks=2,
                                    key=jax.random.key(16), num_columns=n)
  np.testing.assert_allclose(one_one, [d.sum(), np.abs(rotated).sum()], rtol=1e-12)
  # The ratio to n_b ||H_bb||_2: 1 for identity, > 1 once rotated (entries spread out).
  ratio = het.one_one_ratio(one_one, jnp.array([d.max(), d.max()]), [n, n])
  np.testing.assert_allclose(ratio[0], d.sum() / (n * d.max()), rtol=1e-12)
  assert float(ratio[1]) > float(ratio[0])
  sampled = jax.jit(jax.vmap(lambda k: het.block_one_one_norms(
      _quadratic(h), jnp.zeros(2 * n), ids, num_blocks=2, key=k, num_columns=3)))(
          jax.random.split(jax.random.key(17), 2000))
  np.testing.assert_allclose(sampled.mean(0), one_one, rtol=0.02)
  assert float(sampled[:, 0].std()) > 0  # sampling, not a disguised full sum


def test_recorded_measures_match_the_dense_head_hessian_before_and_after_training(x64):
  # The metrics_fn of make_train (its doctest runs it inside a training scan), jitted once
  # and evaluated at the initial and at trained parameters.
  ds = data.heavy_tailed_labels(jax.random.key(0), m=3, dtype=jnp.float64)
  model = models.LinearSoftmax(ds.num_classes, param_dtype=jnp.float64)
  objective = train.classification_objective(model.apply)
  key = jax.random.key(2)
  metrics_fn = jax.jit(het.spectral_curvature_metrics(objective, key=key, num_steps=8, top_k=3,
                                                      one_one_columns=33, num_probes=2))
  params = model.init(jax.random.key(1), ds.x)
  trained = jax.jit(train.make_train(objective, optim.injectable("adam", 0.0), num_steps=3))(
      params, ds, 0.01).params
  record = lambda p: metrics_fn(p, None, {"loss": objective(p, ds)[0]}, ds)  # noqa: E731
  first, last = record(params), record(trained)
  assert first["top_eigs_BK"].shape == (ds.num_classes, 3)
  assert first["heterogeneity"].shape == () and first["one_one_B"].shape == (7,)
  assert not np.allclose(first["top_eigs_BK"], last["top_eigs_BK"])  # it moved
  # Both dense head Hessians from one compiled program.
  heads = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, trained)["params"]["head"]
  flat_S, unravel = jax.vmap(lambda h: ravel_pytree(h)[0])(heads), ravel_pytree(
      params["params"]["head"])[1]
  dense_S = np.asarray(jax.jit(jax.vmap(jax.hessian(lambda f: objective(
      {"params": {"head": unravel(f)}}, ds)[0])))(flat_S))
  ids, names = spectra.block_partition(params["params"]["head"], "class")
  idx = spectra.block_indices(params["params"]["head"], ids, len(names))
  for dense, rec in zip(dense_S, (first, last)):
    blocks = [dense[np.ix_(i, i)] for i in idx]
    # The top eigenvalue of every class block equals the dense Hessian's.
    np.testing.assert_allclose(rec["top_eigs_BK"][:, 0],
                               [np.linalg.eigvalsh(b)[-1] for b in blocks], rtol=1e-6)
    # J = 33 = n_b (32 inputs + bias): the (1,1)-norms are exact.
    np.testing.assert_allclose(rec["one_one_B"], [np.abs(b).sum() for b in blocks],
                               rtol=1e-10)
    assert np.isfinite(rec["heterogeneity"]) and 0 <= rec["offdiag_share"] <= 1
    # The Frobenius share against the dense head Hessian (2 probes: loose).
    off = sum(np.sum(dense[np.ix_(i, j)] ** 2) for i in idx for j in idx if i is not j)
    np.testing.assert_allclose(rec["offdiag_share"], off / np.sum(dense**2), rtol=0.5)


def test_bad_inputs_name_the_argument():
  loss = _quadratic(np.eye(4))
  ids = np.array([0, 0, 1, 1])
  with pytest.raises(ValueError, match="num_steps"):
    spectra.block_spectra(loss, jnp.zeros(4), ids, num_blocks=2, key=jax.random.key(0),
                          num_probes=1, num_steps=3)
  with pytest.raises(ValueError, match="no coordinate"):
    spectra.block_spectra(loss, jnp.zeros(4), ids, num_blocks=3, key=jax.random.key(0),
                          num_probes=1, num_steps=1)
  with pytest.raises(ValueError, match="scheme"):
    spectra.block_partition({"w": jnp.zeros(2)}, "rows")
  with pytest.raises(ValueError, match="columns"):
    het.block_frobenius_mass(loss, jnp.zeros(4), ids, num_blocks=2, key=jax.random.key(0),
                             num_probes=1, columns=[2])
  with pytest.raises(ValueError, match="top_k"):
    het.spectral_curvature_metrics(lambda p, d: (0.0, {}), key=jax.random.key(0),
                                   num_steps=4, top_k=5)
  with pytest.raises(ValueError, match="B >= 2"):
    het.block_heterogeneity(jnp.zeros((1, 1, 2)), jnp.ones((1, 1, 2)))


def test_weight_partition_holds_the_weight_arrays_and_lanczos_matches_their_dense_block(x64):
  # params {"b": [3], "w": [2, 3]}: the "weight" scheme keeps w (6 coordinates), b in none.
  params = {"b": jnp.zeros(3), "w": jnp.zeros((2, 3))}
  ids, names = spectra.block_partition(params, "weight")
  assert names == ["w"] and ids["b"].tolist() == [-1] * 3 and np.all(ids["w"] == 0)
  assert spectra.block_partition(params, "parameter")[1] == ["b", "w"]
  a = _random_symmetric(jax.random.key(30), 9)
  flat, unravel = ravel_pytree(params)
  loss = lambda p: _quadratic(a)(ravel_pytree(p)[0])  # noqa: E731
  spec = spectra.block_spectra(loss, params, ids, num_blocks=1, key=jax.random.key(31),
                               num_probes=1, num_steps=6)
  w_coords = spectra.block_indices(params, ids, 1)[0]
  np.testing.assert_allclose(spectra.top_eigenvalues(spec, 5)[0],
                             np.linalg.eigvalsh(a[np.ix_(w_coords, w_coords)])[::-1][:5],
                             rtol=1e-10)
  with pytest.raises(ValueError, match="two or more dimensions"):
    spectra.block_partition({"b": jnp.zeros(3)}, "weight")


def test_record_segments_is_the_uninterrupted_run_and_resumes_from_its_store(x64, tmp_path):
  from imbalance_jax.curvature import study
  ds = data.heavy_tailed_labels(jax.random.key(0), m=3, dtype=jnp.float64)
  model = models.LinearSoftmax(ds.num_classes, param_dtype=jnp.float64)
  objective = train.classification_objective(model.apply)
  params = model.init(jax.random.key(1), ds.x)
  build = lambda steps: train.make_train(objective, optim.injectable("adam", 0.0),  # noqa: E731
                                         num_steps=steps, log_every=1)
  whole = jax.jit(build(6))(params, ds, 0.05)
  measures = jax.jit(lambda p: {"sq": sum(jnp.sum(v**2) for v in jax.tree.leaves(p))})
  store = train.ResultStore(tmp_path)
  out = study.record_segments(build(3), params, ds, 0.05, measures, num_segments=2,
                              store=store, store_key="run")
  np.testing.assert_array_equal(out["steps"], np.arange(7))
  np.testing.assert_allclose(out["history"]["loss"], whole.history["loss"], rtol=1e-12)
  np.testing.assert_array_equal(out["record_steps"], [0, 3, 6])
  half = jax.jit(build(3))(params, ds, 0.05).params
  np.testing.assert_allclose(out["measures"]["sq"], [measures(p)["sq"] for p in
                                                     (params, half, whole.params)], rtol=1e-12)
  again = study.record_segments(build(3), params, ds, 0.05, None, num_segments=2, store=store,
                                store_key="run")  # loaded: measures_fn is never called
  np.testing.assert_array_equal(again["measures"]["sq"], out["measures"]["sq"])





def test_blocks_at_once_gives_the_all_at_once_measures(x64):
  # 5 blocks of 4 coordinates of a dense 20 x 20 quadratic (one size group; every group is
  # mapped alike). blocks_at_once=1 maps the blocks one by one (lax.map's scan alone); 3
  # divides 5 in no way, so lax.map's vmapped remainder runs too. The same probes: equal to
  # the all-at-once measures up to rounding. (One compile per case: ~4.5 s of CPU.)
  loss = _quadratic(_random_symmetric(jax.random.key(40), 20))
  ids = np.repeat(np.arange(5), 4)
  key, w = jax.random.key(4), jnp.zeros(20)

  def measures(w, at_once, with_others):
    spec = spectra.block_spectra(loss, w, ids, num_blocks=5, key=key, num_probes=2,
                                 num_steps=3, blocks_at_once=at_once)
    if not with_others:
      return spec.nodes, spec.weights
    return (spec.nodes, spec.weights,
            het.block_frobenius_mass(loss, w, ids, num_blocks=5, key=key, num_probes=2,
                                     blocks_at_once=at_once),
            het.block_one_one_norms(loss, w, ids, num_blocks=5, key=key, num_columns=2,
                                    blocks_at_once=at_once))
  measures = jax.jit(measures, static_argnums=(1, 2))
  expected = measures(w, None, True)
  assert np.ptp(np.asarray(expected[0][:, 0, -1])) > 0  # the blocks differ
  for at_once, with_others in ((1, False), (3, True)):
    got = measures(w, at_once, with_others)
    assert len(got) == (4 if with_others else 2)
    for g, e in zip(got, expected):
      np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-13)
  with pytest.raises(ValueError, match="blocks_at_once"):
    spectra.block_spectra(loss, w, ids, num_blocks=5, key=key, num_probes=1, num_steps=1,
                          blocks_at_once=0)


def _softmax_head_problem(bias, n=30, d=5, c=4):
  kx, ky, kp = jax.random.split(jax.random.key(50), 3)
  x = jax.random.normal(kx, (n, d), jnp.float64)
  y = jax.random.randint(ky, (n,), 0, c)
  model = models.LinearSoftmax(c, use_bias=bias, param_dtype=jnp.float64)
  params = model.init(kp, x)

  def objective(p, data):
    logits = model.apply(p, data[0])
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), data[1][:, None], 1)
    return jnp.mean(nll), {"loss": jnp.mean(nll)}
  head_inputs = lambda p, data: (model.apply(p, data[0]), data[0])  # noqa: E731
  return params, objective, head_inputs, (x, y)


@pytest.mark.parametrize("bias", [True, False])
def test_closed_form_head_blocks_match_dense_hessian(x64, bias):
  from imbalance_jax.curvature import head_blocks as hb
  from imbalance_jax.curvature.hvp import restrict_to_layer
  params, objective, head_inputs, data_ = _softmax_head_problem(bias)
  loss, head = restrict_to_layer(lambda p: objective(p, data_)[0], params, "head")
  ids, names = spectra.block_partition(head, "class")
  blocks, dense, idx = _dense_blocks(loss, head, ids, len(names))
  logits, features = head_inputs(params, data_)
  hc = hb.head_curvature(logits, features, bias=hb.check_head_params(head, features, logits))
  assert hc.bias == bias and hc.block_size == data_[0].shape[1] + bias
  u = np.asarray(jax.random.normal(jax.random.key(51), (hc.block_size,), jnp.float64))
  products = jax.jit(jax.vmap(lambda k: (hb.diagonal_block_matvec(hc, jnp.asarray(u), k),
                                          hb.column_block_product(hc, jnp.asarray(u), k))))
  diagonal, columns = products(jnp.array([0, 2]))
  for j, k in enumerate((0, 2)):  # a few blocks: the matvecs of H_kk and of every H_ik
    np.testing.assert_allclose(diagonal[j], blocks[k] @ u, rtol=1e-12, atol=1e-14)
    column = np.stack([dense[np.ix_(idx[i], idx[k])] @ u for i in range(len(names))], 1)
    np.testing.assert_allclose(columns[j], column, rtol=1e-12, atol=1e-14)
  # Lanczos with n_b steps: every Ritz value is a block eigenvalue.
  spec = jax.jit(lambda h: hb.head_block_spectra(h, key=jax.random.key(52), num_probes=1,
                                                 num_steps=h.block_size))(hc)
  for k, block in enumerate(blocks):
    np.testing.assert_allclose(np.sort(spec.nodes[k, 0]), np.linalg.eigvalsh(block),
                               rtol=1e-10, atol=1e-12)
  if not bias:
    return
  # spectral_curvature_metrics on the closed-form path against the dense Hessian: Lanczos
  # with n_b steps (exact top eigenvalues), all n_b columns of the (1,1)-norm (exact), and
  # the Frobenius mass with the probes the hvp path draws from the same keys (the same
  # measures as that path up to rounding: block_frobenius_mass's key layout).
  n_b = hc.block_size
  fast = het.spectral_curvature_metrics(objective, key=jax.random.key(53), num_probes=1,
                                        num_steps=n_b, top_k=2, frobenius_probes=2,
                                        one_one_columns=n_b,
                                        head_inputs_fn=head_inputs)
  got = jax.jit(lambda p: fast(p, None, {"loss": 0.0}, data_))(params)
  eigs = np.stack([np.linalg.eigvalsh(b)[::-1][:2] for b in blocks])
  np.testing.assert_allclose(got["top_eigs_BK"], eigs, rtol=1e-10)
  np.testing.assert_allclose(got["one_one_B"], [np.abs(b).sum() for b in blocks], rtol=1e-10)
  column_keys = jax.random.split(jax.random.split(jax.random.key(53), 3)[1], len(names))
  mass = np.zeros((len(names), len(names)))
  for c in range(len(names)):
    for probe_key in jax.random.split(column_keys[c], 2):
      v = np.asarray(jax.random.rademacher(probe_key, (n_b,), jnp.float64))
      mass[:, c] += [np.sum((dense[np.ix_(idx[b], idx[c])] @ v) ** 2) / 2
                     for b in range(len(names))]
  np.testing.assert_allclose(got["frob_mass_BS"], mass, rtol=1e-10)
  assert 0 < float(got["offdiag_share"]) < 1 and np.ptp(eigs[:, 0]) > 0


def test_closed_form_head_blocks_refuse_what_they_do_not_support():
  from imbalance_jax.curvature import head_blocks as hb
  with pytest.raises(ValueError, match="partition='class'"):
    het.spectral_curvature_metrics(lambda p, d: (0.0, {}), key=jax.random.key(0),
                                   partition="layer", head_inputs_fn=lambda p, d: (p, d))
  with pytest.raises(ValueError, match="one Dense head"):
    hb.check_head_params({"kernel": np.zeros((3, 2)), "scale": np.zeros(2)}, np.zeros((4, 3)),
                         np.zeros((4, 2)))
  with pytest.raises(ValueError, match="features"):
    hb.check_head_params({"kernel": np.zeros((3, 2))}, np.zeros((4, 5)), np.zeros((4, 2)))
  with pytest.raises(ValueError, match="num_steps"):
    hb.head_block_spectra(hb.head_curvature(jnp.zeros((4, 2)), jnp.zeros((4, 3))),
                          key=jax.random.key(0), num_probes=1, num_steps=5)


def test_chunked_loss_gives_the_one_pass_hvps(x64):
  # The MLP on 24 examples: chunks of 5 (a scan of 4 and a remainder of 4) and of 8 (no
  # remainder); float64 hvps equal to the one pass to 1e-12 (100 >= n is the one pass).
  from imbalance_jax.curvature.hvp import chunked_loss, hvp
  ds = data.heavy_tailed_labels(jax.random.key(60), m=3)
  ds = ds.replace(x=ds.x.astype(jnp.float64))
  model = MLP(num_classes=ds.num_classes, hidden=(4,), param_dtype=jnp.float64)
  params = model.init(jax.random.key(61), ds.x)
  objective = train.classification_objective(model.apply)
  tangent = jax.tree.map(lambda v: jax.random.normal(jax.random.key(62), v.shape, v.dtype),
                         params)
  one_pass = ravel_pytree(hvp(lambda p: objective(p, ds)[0], params, tangent))[0]
  products = jax.jit(lambda p, t: [ravel_pytree(hvp(chunked_loss(objective, ds, size), p, t))[0]
                                   for size in (5, 8)])(params, tangent)
  assert float(jnp.max(jnp.abs(one_pass))) > 1e-3
  for got in products:
    np.testing.assert_allclose(got, one_pass, rtol=1e-12, atol=1e-14)
  assert float(chunked_loss(objective, ds, 100)(params)) == float(objective(params, ds)[0])
  with pytest.raises(ValueError, match="chunk_size"):
    chunked_loss(objective, ds, 0)
