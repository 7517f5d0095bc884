import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imbalance_jax import data, optim
from imbalance_jax.types import make_dataset


@pytest.mark.parametrize("m", [1, 2, 3, 5, 7, 8])
def test_heavy_tailed_labels_sizes(m):
  ds = data.heavy_tailed_labels(jax.random.key(m), m)
  n, d, c = m * 2**m, (m + 1) * 2**m, 2**m - 1
  assert ds.x.shape == (n, d) and ds.x.dtype == np.float32
  assert ds.y.shape == (n,) and ds.num_classes == c
  counts = np.asarray(ds.class_counts)
  np.testing.assert_array_equal(counts, np.bincount(np.asarray(ds.y), minlength=c))
  # Level i: 2**i classes of 2**(m-i) examples; every level holds 2**m examples.
  start = 0
  for level in range(m):
    level_counts = counts[start:start + 2**level]
    assert np.all(level_counts == 2**(m - level)) and level_counts.sum() == 2**m
    start += 2**level
  assert counts.argmax() == 0 and np.all(np.diff(counts) <= 0)


def test_paper_scale_sizes_without_drawing_inputs():
  counts = data.heavy_tailed_class_counts(11)
  assert counts.size == 2047 and counts.sum() == 22528


@pytest.mark.parametrize("dist,mean", [("uniform", 0.5), ("normal_1", 1.0), ("normal_0", 0.0)])
def test_input_distributions(dist, mean):
  ds = data.heavy_tailed_labels(jax.random.key(0), 5, input_dist=dist)
  x = np.asarray(ds.x)
  assert abs(x.mean() - mean) < 0.02
  if dist == "uniform":
    assert x.min() >= 0 and x.max() < 1
  else:
    assert abs(x.std() - 1.0) < 0.02


def test_seeds_redraw_inputs_only():
  a = data.heavy_tailed_labels(jax.random.key(0), 4)
  b = data.heavy_tailed_labels(jax.random.key(1), 4)
  assert not np.allclose(a.x, b.x)
  np.testing.assert_array_equal(a.y, b.y)


def test_vmap_over_seeds():
  ds = jax.vmap(lambda k: data.heavy_tailed_labels(k, 3))(jax.random.split(jax.random.key(0), 4))
  assert ds.x.shape == (4, 24, 32) and ds.num_classes == 7


@pytest.mark.parametrize("m", [0, -1, 2.5, True, "3"])
def test_bad_m(m):
  with pytest.raises(ValueError, match="m must"):
    data.heavy_tailed_labels(jax.random.key(0), m)


def test_bad_input_dist():
  with pytest.raises(ValueError, match="input_dist"):
    data.heavy_tailed_labels(jax.random.key(0), 3, input_dist="gaussian")


@pytest.mark.parametrize("m", [7, 8, 11])
def test_frequency_groups_cover_ten_percent_each(m):
  counts = data.heavy_tailed_class_counts(m)
  groups = data.frequency_groups(counts)
  assert groups.shape == counts.shape
  assert set(groups.tolist()) == set(range(10))
  share = np.bincount(groups, weights=counts) / counts.sum()
  assert np.all(np.abs(share - 0.1) < 0.05), share
  # Groups are ordered by frequency: a more frequent class never sits in a later group.
  order = np.argsort(-counts, kind="stable")
  assert np.all(np.diff(groups[order]) >= 0)


def test_frequency_groups_no_empty_group_with_dominant_class():
  counts = np.array([500, 30, 20, 20, 10, 10, 5, 5])  # class 0 holds 83% of the data
  groups = data.frequency_groups(counts, num_groups=10)
  num_groups = groups.max() + 1
  assert set(groups.tolist()) == set(range(num_groups))
  assert groups[0] == 0 and np.sum(groups == 0) == 1


def test_frequency_groups_unsorted_input():
  counts = np.array([1, 8, 2, 4])
  groups = data.frequency_groups(counts, num_groups=2)
  assert groups[1] == 0 and groups[0] == groups.max()


@pytest.mark.parametrize("kwargs,match", [
    (dict(class_counts=[], num_groups=3), "class_counts"),
    (dict(class_counts=[1, -1], num_groups=3), "class_counts"),
    (dict(class_counts=[1, 2], num_groups=0), "num_groups"),
])
def test_frequency_groups_bad_input(kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.frequency_groups(**kwargs)


def test_make_dataset_validates():
  x = np.zeros((4, 3))
  ds = make_dataset(x, np.array([0, 1, 1, 2]), 3)
  np.testing.assert_array_equal(ds.class_counts, [1, 2, 1])
  with pytest.raises(ValueError, match="y must lie in"):
    make_dataset(x, np.array([0, 1, 1, 3]), 3)
  with pytest.raises(ValueError, match="y must lie in"):
    make_dataset(x, np.array([0, -1, 1, 2]), 3)
  with pytest.raises(ValueError, match="x and y disagree"):
    make_dataset(x, np.array([0, 1, 2]), 3)
  with pytest.raises(ValueError, match="x contains NaN"):
    make_dataset(np.full((4, 3), np.nan), np.array([0, 1, 1, 2]), 3)
  with pytest.raises(ValueError, match="num_classes"):
    make_dataset(x, np.array([0, 1, 1, 2]), 0)
  with pytest.raises(ValueError, match="integer labels"):
    make_dataset(x, np.array([0.0, 1, 1, 2]), 3)


@pytest.mark.parametrize("counts,num_groups,expected", [
    # Total 24; shares 1/3, 1/6, 1/6, 1/12 x 4; midpoints x 3 = 0.5, 1.25, 1.75, 2.125, 2.375,
    # 2.625, 2.875.
    ([8, 4, 4, 2, 2, 2, 2], 3, [0, 1, 1, 2, 2, 2, 2]),
    # Same counts, 10 groups: midpoints x 10 = 1.67, 4.17, 5.83, 7.08, 7.92, 8.75, 9.58 fall in
    # raw groups 1, 4, 5, 7, 7, 8, 9, renumbered consecutively 0..5.
    ([8, 4, 4, 2, 2, 2, 2], 10, [0, 1, 2, 3, 3, 4, 5]),
    # Unsorted, with a tie and an empty class. Sorted (stable): classes 5, 1, 2, 3, 0, 4 with
    # shares .40, .25, .15, .15, .05, 0; midpoints x 4 = 0.8, 2.1, 2.9, 3.5, 3.9, 4.0 (clipped to
    # 3): raw groups 0, 2, 2, 3, 3, 3 -> 0, 1, 1, 2, 2, 2. The tied classes 2 and 3 land in
    # different groups, the lower class id first.
    ([1, 5, 3, 3, 0, 8], 4, [2, 1, 1, 2, 2, 0]),
    # One group: everything in group 0.
    ([3, 1, 2], 1, [0, 0, 0]),
])
def test_frequency_groups_hand_computed(counts, num_groups, expected):
  groups = data.frequency_groups(np.array(counts), num_groups=num_groups)
  assert groups.dtype == np.int32
  assert groups.tolist() == expected


def test_heavy_tailed_images_structure():
  m, size = 3, 5
  plain = data.heavy_tailed_images(jax.random.key(2), m, size)
  signal = data.heavy_tailed_images(jax.random.key(2), m, size, signal=2.0)
  counts = [8, 4, 4, 2, 2, 2, 2]
  for ds in (plain, signal):
    assert ds.num_classes == 7 and ds.x.shape == (24, size, size, 1)
    np.testing.assert_array_equal(ds.class_counts, counts)
    np.testing.assert_array_equal(ds.y, np.repeat(np.arange(7), counts))
  x = np.asarray(plain.x)
  assert x.min() >= 0 and x.max() < 1 and len(np.unique(x)) == x.size  # i.i.d. U[0, 1) noise
  # The signal adds the same template to every image of a class, a different one per class.
  added = np.asarray(signal.x, np.float64) - x
  y = np.asarray(plain.y)
  templates = np.stack([added[y == k][0] for k in range(7)])
  np.testing.assert_allclose(added, templates[y], atol=1e-6)
  assert added.min() >= 0 and added.max() < 2.0
  assert len(np.unique(templates.reshape(7, -1), axis=0)) == 7
  other = data.heavy_tailed_images(jax.random.key(3), m, size)
  assert not np.allclose(other.x, plain.x)


# --- exact messages, dtypes and memory estimates ------------------------------------------
# Pinned by mutation testing (docs/testing.md); in 32 bits only (`no_float64`), as written.


@pytest.mark.no_float64
def test_bad_counts_and_run_lists_are_refused_with_their_messages():
  with pytest.raises(ValueError, match=r"^class_counts must be finite and non-negative with a "
                                       r"positive total, got array\(\[0, 0\]\)$"):
    data.frequency_groups([0, 0])
  with pytest.raises(ValueError, match="^runs must name at least one run$"):
    optim.parse_runs("")
  with pytest.raises(ValueError, match="class_counts"):
    data.rank_frequencies([3, -1])  # a negative count, positive total


@pytest.mark.no_float64
def test_synthetic_data_keep_the_requested_dtype_and_size_memory_by_it(monkeypatch):
  key = jax.random.key(0)
  for dist in ("uniform", "normal_1", "normal_0"):
    assert data.heavy_tailed_labels(key, 2, dist, dtype=jnp.bfloat16).x.dtype == jnp.bfloat16
  images = data.heavy_tailed_images(key, 2, 4, dtype=jnp.bfloat16)
  assert images.x.dtype == jnp.bfloat16
  # m = 2: n = 8 examples of d = 12 values; the estimate counts bytes of the requested dtype.
  from imbalance_jax import _checks
  monkeypatch.setattr(_checks, "available_memory_bytes", lambda: 2 * 8 * 12)
  data.heavy_tailed_labels(key, 2, dtype=jnp.bfloat16)
  with pytest.raises(ValueError, match=r"^m=2 \(n=8, d=12\) needs about .* lower m$"):
    data.heavy_tailed_labels(key, 2)
  n = images.num_examples
  monkeypatch.setattr(_checks, "available_memory_bytes", lambda: 2 * n * 16)
  data.heavy_tailed_images(key, 2, 4, dtype=jnp.bfloat16)
  with pytest.raises(ValueError, match=rf"^m=2, image_size=4 \(n={n}\) needs about .* lower m "
                                       r"or image_size$"):
    data.heavy_tailed_images(key, 2, 4)
