"""The optimizer catalogue (optim.catalogue, .research, .blocks) against float64 NumPy references.

A small pytree shaped like a transformer (embedding, LayerNorm, a hidden dense
layer, the classifier ``head``) on the separable quadratic ``sum(a x^2 / 2 + b x)``;
each optimizer runs a few steps through ``optim.injectable`` (the learning rate
injected) and is compared with a NumPy loop written from its paper / optax's
documented update.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from imbalance_jax import optim
from imbalance_jax.optim import blocks, catalogue, research
from imbalance_jax.optim.aliases import PAPER_OPTIMIZERS
from imbalance_jax.theory import simple_setting

RNG = np.random.default_rng(0)
SHAPES = {"embed/embedding": (5, 3), "ln_0/scale": (3,), "body/kernel": (3, 3),
          "body/bias": (3,), "head/kernel": (3, 5), "head/bias": (5,)}
A = {k: RNG.uniform(0.5, 2.0, s) for k, s in SHAPES.items()}
B = {k: RNG.normal(size=s) for k, s in SHAPES.items()}
X0 = {k: RNG.normal(size=s) for k, s in SHAPES.items()}
HEAD_KEYS = ("head/kernel", "head/bias")
LR, STEPS = 0.05, 4


def nest(flat):
  out = {}
  for key, value in flat.items():
    module, leaf = key.split("/")
    out.setdefault(module, {})[leaf] = value
  return {"params": out}


def flatten(tree):
  return {f"{m}/{l}": np.asarray(v) for m, leaves in tree["params"].items()
          for l, v in leaves.items()}


def grad_np(x):
  return {k: A[k] * x[k] + B[k] for k in x}


def run_optax(opt, steps=STEPS, x0=X0, grad_fn=None):
  """Trajectory (list of flat dicts, x_0 .. x_steps) and final state, in float64."""
  with jax.enable_x64(True):
    x = nest({k: jnp.asarray(v) for k, v in x0.items()})
    a, b = nest({k: jnp.asarray(v) for k, v in A.items()}), nest(
        {k: jnp.asarray(v) for k, v in B.items()})
    grad_fn = grad_fn or (lambda x: jax.tree.map(lambda aa, bb, xx: aa * xx + bb, a, b, x))
    state = opt.init(x)
    path = [flatten(x)]
    for _ in range(steps):
      updates, state = opt.update(grad_fn(x), state, x)
      x = optax.apply_updates(x, updates)
      path.append(flatten(x))
    return path, state, x


def assert_close(got, want, rtol=1e-10, atol=1e-12):
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)


def heavy_ball_np(direction, momentum, lr=LR, steps=STEPS, stateful=None):
  """x <- x - lr m, m <- momentum m + d(g, t, state)."""
  x, m = dict(X0), {k: np.zeros_like(v) for k, v in X0.items()}
  for t in range(1, steps + 1):
    d = direction(grad_np(x), t)
    m = {k: momentum * m[k] + d[k] for k in x}
    x = {k: x[k] - lr * m[k] for k in x}
  return x


def adam_np_step(g, state, t, b1, b2=0.999, eps=1e-8):
  m, v = state
  m = b1 * m + (1 - b1) * g
  v = b2 * v + (1 - b2) * g**2
  return (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps), (m, v)


# ---------------------------------------------------------------- optax catalogue wiring

def reference(name, momentum, steps=STEPS, lr=LR):
  """NumPy float64 trajectories' end points of the optax optimizers as we configure them."""
  x = dict(X0)
  zeros = {k: np.zeros_like(v) for k, v in X0.items()}
  s1, s2, s3 = dict(zeros), dict(zeros), dict(zeros)
  for t in range(1, steps + 1):
    g = grad_np(x)
    for k in x:
      if name == "adagrad":  # accumulator 0, eps 1e-10 under the root; heavy ball on the step
        s1[k] = s1[k] + g[k]**2
        s2[k] = momentum * s2[k] - lr * g[k] / np.sqrt(s1[k] + 1e-10)
        x[k] = x[k] + s2[k]
      elif name == "lion":  # b1 = momentum, b2 = 0.99, no weight decay
        c = momentum * s1[k] + (1 - momentum) * g[k]
        s1[k] = 0.99 * s1[k] + 0.01 * g[k]
        x[k] = x[k] - lr * np.sign(c)
      elif name == "signum":
        s1[k] = momentum * s1[k] + (1 - momentum) * g[k]
        x[k] = x[k] - lr * np.sign(s1[k])
      elif name == "adopt":  # Taniguchi et al.: step 1 only sets v; clip at (t-1)^(1/4)
        if t == 1:
          s2[k] = g[k]**2
          continue
        u = np.clip(g[k] / np.maximum(np.sqrt(s2[k]), 1e-6), -(t - 1)**0.25, (t - 1)**0.25)
        s1[k] = momentum * s1[k] + (1 - momentum) * u if t > 1 else s1[k]
        s2[k] = 0.9999 * s2[k] + 0.0001 * g[k]**2
        x[k] = x[k] - lr * s1[k]
      elif name == "ademamix":  # b2 0.999, b3 0.9999, alpha 5
        s1[k] = momentum * s1[k] + (1 - momentum) * g[k]
        s3[k] = 0.9999 * s3[k] + 0.0001 * g[k]
        s2[k] = 0.999 * s2[k] + 0.001 * g[k]**2
        m_hat = s1[k] / (1 - momentum**t)
        x[k] = x[k] - lr * (m_hat + 5.0 * s3[k]) / (np.sqrt(s2[k] / (1 - 0.999**t)) + 1e-8)
      elif name == "adafactor":  # leaves below 128: unfactored; block-RMS clip 1, param scale
        decay = 1 - float(np.float32(t))**-0.8
        s2[k] = decay * s2[k] + (1 - decay) * (g[k]**2 + 1e-30)
        u = g[k] / np.sqrt(s2[k])
        u = u / max(1.0, np.sqrt(np.mean(u**2)))
        u = lr * u * max(np.sqrt(np.mean(x[k]**2)), 1e-3)
        s1[k] = momentum * s1[k] + (1 - momentum) * u if momentum else u
        x[k] = x[k] - s1[k]
      else:
        raise ValueError(name)
  return x


@pytest.mark.parametrize("name", ["adagrad", "lion", "signum", "adopt", "ademamix", "adafactor"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_optax_optimizers_match_numpy(name, momentum):
  if name == "ademamix" and momentum == 0.0:
    momentum = 0.5  # ademamix's bias correction divides by 1 - b1^t; keep it informative
  path, _, _ = run_optax(optim.injectable(name, momentum)(LR))
  # adafactor keeps its decay schedule and momentum in float32 (optax), hence the tolerance.
  rtol = 1e-6 if name == "adafactor" else 1e-10
  assert_close(path[-1], reference(name, momentum), rtol=rtol, atol=1e-9)
  assert all(not np.allclose(path[-1][k], X0[k]) for k in X0)  # it touches every leaf


def test_schedule_free_matches_numpy_and_evaluates_at_the_average():
  momentum, b2, eps = 0.9, 0.999, 1e-8
  opt = optim.injectable("schedule_free", momentum)(LR)
  _, state, y = run_optax(opt)
  # Defazio et al. (2024) Alg. 1 with AdamW's RMS scaling as base step, constant lr, no warmup.
  x, z, v, weight_sum = dict(X0), dict(X0), {k: np.zeros_like(a) for k, a in X0.items()}, 0.0
  yy = dict(X0)
  for t in range(1, STEPS + 1):
    g = grad_np(yy)
    weight_sum += LR**2
    c = LR**2 / weight_sum
    for k in x:
      v[k] = b2 * v[k] + (1 - b2) * g[k]**2
      z[k] = z[k] - LR * g[k] / (np.sqrt(v[k] / (1 - b2**t)) + eps)
      x[k] = (1 - c) * x[k] + c * z[k]
      yy[k] = momentum * x[k] + (1 - momentum) * z[k]
  assert_close(flatten(y), yy, rtol=1e-9)
  with jax.enable_x64(True):
    assert_close(flatten(catalogue.eval_params(state, y)), x, rtol=1e-9)


def test_muon_matrix_update_is_the_polar_factor_of_its_momentum(x64):
  """2-D kernels get ~U V^T (Newton-Schulz: singular values in (0.6, 1.2), same vectors)."""
  opt = optim.injectable("muon", 0.0)(1.0)
  params = nest({k: jnp.asarray(v) for k, v in X0.items()})
  grads = nest({k: jnp.asarray(v) for k, v in B.items()})
  updates, _ = opt.update(grads, opt.init(params), params)
  flat = flatten(updates)
  for key in ("body/kernel", "head/kernel"):
    g = B[key]
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    fan_in, fan_out = g.shape
    step = -flat[key] / np.sqrt(max(1.0, fan_out / fan_in))  # optax's width scaling
    core = u.T @ step @ vt.T
    np.testing.assert_allclose(core - np.diag(np.diag(core)), 0.0, atol=1e-8, err_msg=key)
    assert np.all((np.diag(core) > 0.6) & (np.diag(core) < 1.2)), (key, np.diag(core))
    assert np.linalg.norm(step - u @ vt, 2) < 0.4
  # every other leaf (embedding, LayerNorm, biases) takes Muon's Adam fallback (b1 = 0: g/|g|)
  for key in ("embed/embedding", "ln_0/scale", "body/bias", "head/bias"):
    np.testing.assert_allclose(flat[key], -B[key] / (np.abs(B[key]) + 1e-8), rtol=1e-10,
                               err_msg=key)


def test_muon_rule_for_matrices():
  dims = catalogue.muon_dimension_numbers(nest({k: np.zeros(s) for k, s in SHAPES.items()}))
  flat = {f"{m}/{l}": v for m, leaves in dims["params"].items() for l, v in leaves.items()}
  assert {k for k, v in flat.items() if v is not None} == {"body/kernel", "head/kernel"}


# ---------------------------------------------------------------- research variants

def research_reference(name, momentum, gd_scale=1.0):
  in_head = lambda k: k.startswith("head/")
  if name == "scaled_sign_descent":
    return heavy_ball_np(lambda g, t: {k: np.sign(v) * sum(np.abs(w).sum() for w in g.values())
                                       for k, v in g.items()}, momentum)
  if name == "per_class_normalized_gd":
    def direction(g, t):
      norm = np.sqrt((g["head/kernel"]**2).sum(0) + g["head/bias"]**2)
      return {k: v / norm if in_head(k) else v for k, v in g.items()}
    return heavy_ball_np(direction, momentum)
  if name == "frequency_oracle":
    scale = (COUNTS / COUNTS.max())**-1.0
    return heavy_ball_np(lambda g, t: {k: v * scale if in_head(k) else v for k, v in g.items()},
                         momentum)
  # Adam-like: per-key state
  x = dict(X0)
  state = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in x.items()}
  gd_m = {k: np.zeros_like(v) for k, v in x.items()}
  for t in range(1, STEPS + 1):
    g = grad_np(x)
    for k in x:
      if name in ("adam_head", "adam_last_layer"):
        adaptive = in_head(k) or (name == "adam_last_layer" and k.startswith("ln_"))
        if adaptive:
          u, state[k] = adam_np_step(g[k], state[k], t, momentum)
          x[k] = x[k] - LR * u
        else:
          gd_m[k] = momentum * gd_m[k] + g[k]
          x[k] = x[k] - gd_scale * LR * gd_m[k]
      elif name == "adalayer":  # block second moment = mean g^2; head: one block per class
        m, v = state[k]
        sq = (g[k]**2).mean(0) if (in_head(k) and g[k].ndim == 2) else (
            g[k]**2 if in_head(k) else np.mean(g[k]**2))
        m = momentum * m + (1 - momentum) * g[k]
        v = 0.999 * v + 0.001 * sq  # broadcasts the block value over the leaf
        state[k] = (m, v)
        x[k] = x[k] - LR * (m / (1 - momentum**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
      elif name == "coupled_adam":  # v averaged over the vocabulary axis
        m, v = state[k]
        m = momentum * m + (1 - momentum) * g[k]
        v = 0.999 * v + 0.001 * g[k]**2
        state[k] = (m, v)
        v_hat = v / (1 - 0.999**t)
        if k == "embed/embedding":
          v_hat = np.broadcast_to(v_hat.mean(0, keepdims=True), v_hat.shape)
        elif k == "head/kernel":
          v_hat = np.broadcast_to(v_hat.mean(1, keepdims=True), v_hat.shape)
        x[k] = x[k] - LR * (m / (1 - momentum**t)) / (np.sqrt(v_hat) + 1e-8)
      else:
        raise ValueError(name)
  return x


COUNTS = np.array([40.0, 20.0, 8.0, 2.0, 1.0])
RESEARCH = ["adam_head", "adam_last_layer", "adalayer", "coupled_adam",
            "per_class_normalized_gd", "frequency_oracle", "scaled_sign_descent"]


@pytest.mark.parametrize("name", RESEARCH)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_research_optimizers_match_numpy(name, momentum):
  options = {"class_counts": COUNTS} if name == "frequency_oracle" else {}
  path, _, _ = run_optax(optim.injectable(name, momentum, **options)(LR))
  assert_close(path[-1], research_reference(name, momentum))


@pytest.mark.parametrize("name", ["adam_head", "adam_last_layer"])
def test_adam_on_blocks_gd_part_at_its_own_step_size(name):
  # GD's step is gd_scale x the (injected) Adam step; the Adam part is unchanged.
  path, _, _ = run_optax(optim.injectable(name, 0.9, gd_scale=0.25)(LR))
  want = research_reference(name, 0.9, gd_scale=0.25)
  assert_close(path[-1], want)
  default = research_reference(name, 0.9)
  assert np.abs(want["body/kernel"] - default["body/kernel"]).max() > 1e-3
  np.testing.assert_array_equal(want["head/kernel"], default["head/kernel"])


def test_coupled_adam_shares_one_second_moment_per_embedding_column(x64):
  opt = research.coupled_adam(1.0, momentum=0.0, eps=0.0)
  params = nest({k: jnp.asarray(v) for k, v in X0.items()})
  grads = nest({k: jnp.asarray(v) for k, v in B.items()})
  updates, _ = opt.update(grads, opt.init(params), params)
  ratio = -B["embed/embedding"] / flatten(updates)["embed/embedding"]  # = sqrt(v_col)
  np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:1], ratio.shape), rtol=1e-12)
  np.testing.assert_allclose(ratio[0] ** 2, (B["embed/embedding"]**2).mean(0), rtol=1e-12)
  ratio = -B["body/kernel"] / flatten(updates)["body/kernel"]  # uncoupled: |g| per element
  np.testing.assert_allclose(ratio, np.abs(B["body/kernel"]), rtol=1e-12)


# ---------------------------------------------------------------- rotation

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rotation_leaves_gd_and_normalized_gd_unchanged_but_not_adam(seed):
  rotated_blocks = ("head", "body", "embed")

  def pair(name, momentum):
    plain = run_optax(optim.OPTIMIZERS[name](LR, momentum=momentum), steps=6)[0]
    make = blocks.rotated(optim.OPTIMIZERS[name], rotated_blocks, seed=seed)
    rot = run_optax(make(LR, momentum), steps=6)[0]
    return plain, rot

  for name, momentum in (("gd", 0.0), ("gd", 0.9), ("normalized_gd", 0.9)):
    plain, rot = pair(name, momentum)
    for a, b in zip(plain, rot):
      for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=0, atol=1e-10, err_msg=(name, k))
  for name in ("adam", "sign_descent"):
    plain, rot = pair(name, 0.9)
    assert max(np.abs(plain[-1][k] - rot[-1][k]).max() for k in ("head/kernel", "body/kernel")
               ) > 1e-3, name
    np.testing.assert_allclose(rot[-1]["ln_0/scale"], plain[-1]["ln_0/scale"], atol=1e-12)


def test_rotation_bases_are_orthogonal_and_fixed():
  params = nest({k: np.zeros(s) for k, s in SHAPES.items()})
  _, bases = blocks.rotation_bases(params, ("head",), seed=3)
  _, again = blocks.rotation_bases(params, ("head",), seed=3)
  inside = [b for b in bases if b is not None]
  assert len(inside) == 2 and sum(b is None for b in bases) == len(bases) - 2
  for basis, same in zip(inside, [b for b in again if b is not None]):
    for q, q2 in zip(basis, same):
      if q is not None:
        np.testing.assert_allclose(q.T @ q, np.eye(len(q)), atol=1e-12)
        np.testing.assert_array_equal(q, q2)


# ---------------------------------------------------------------- oracle on paper H Thm 3

def thm3_losses(optimizer, counts, lr, steps):
  """Per-class losses after ``steps`` on the one-hot setting (head kernel [in, out], no bias)."""
  pi = counts / counts.sum()
  c = len(counts)

  def loss(params):
    logp = jax.nn.log_softmax(params["head"]["kernel"], axis=1)  # row k: logits of e_k
    return -jnp.sum(pi * jnp.diagonal(logp))

  with jax.enable_x64(True):
    params = {"head": {"kernel": jnp.zeros((c, c))}}
    state = optimizer.init(params)

    def step(carry, _):
      params, state = carry
      updates, state = optimizer.update(jax.grad(loss)(params), state, params)
      return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, state), None, length=steps)
    return np.asarray(-jnp.diagonal(jax.nn.log_softmax(params["head"]["kernel"], axis=1)))


def thm3_numpy(counts, lr, steps, scale_in=None, scale_out=None):
  pi = counts / counts.sum()
  c = len(counts)
  w = np.zeros((c, c))
  for _ in range(steps):
    p = np.exp(w - w.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = pi[:, None] * (p - np.eye(c))
    g = g * (1 if scale_in is None else scale_in[:, None]) * (
        1 if scale_out is None else scale_out[None, :])
    w -= lr * g
  p = np.exp(w - w.max(1, keepdims=True))
  return -np.log(np.diag(p / p.sum(1, keepdims=True)))


def test_oracle_on_the_one_hot_setting_equalises_the_classes():
  counts = np.array([60.0, 25.0, 10.0, 4.0, 1.0])
  lr, steps = 0.2, 400
  pi = counts / counts.sum()
  scale = pi.max() / pi
  gd = thm3_losses(optim.gd(lr), counts, lr, steps)
  np.testing.assert_allclose(gd, thm3_numpy(counts, lr, steps), rtol=1e-10)
  assert gd[-1] > 5 * gd[0]  # GD: the rare class lags (Thm 3, rate 1/(pi_k t))
  inputs = thm3_losses(research.frequency_oracle(lr, class_counts=counts, axis="inputs"),
                       counts, lr, steps)
  np.testing.assert_allclose(inputs, thm3_numpy(counts, lr, steps, scale_in=scale), rtol=1e-10)
  np.testing.assert_allclose(inputs, inputs[0], rtol=1e-10)  # independent of pi_k
  # ... and each class follows the gradient flow of the most frequent class (Lemma 5).
  flow = simple_setting.simple_setting_class_loss(lr * steps, pi.max(), len(counts))
  np.testing.assert_allclose(inputs, flow, rtol=0.05)
  # Classifier-row scaling (the default axis) matches its simulation; it narrows the
  # spread but the one-hot setting's off-diagonal logits keep it from vanishing.
  rows = thm3_losses(research.frequency_oracle(lr, class_counts=counts), counts, lr, steps)
  np.testing.assert_allclose(rows, thm3_numpy(counts, lr, steps, scale_out=scale), rtol=1e-10)
  assert rows[-1] / rows[0] < gd[-1] / gd[0]


# ---------------------------------------------------------------- names, sweeps, inputs

def test_every_catalogue_name_is_a_run_and_its_rate_is_traced():
  params = nest({k: jnp.asarray(v, jnp.float32) for k, v in X0.items()})
  grads = nest({k: jnp.asarray(v, jnp.float32) for k, v in B.items()})
  for name in optim.OPTIMIZERS:
    plus_m = "" if name == "line_search_sgd" else "+m"  # the release's line search has none
    spec = optim.parse_run(f"{name}{plus_m}@inverse")
    assert (spec.optimizer, spec.momentum, spec.weighting) == (name, 0.9 if plus_m else 0.0,
                                                                "inverse")
    options = {"class_counts": COUNTS} if name == "frequency_oracle" else {}
    make = optim.injectable(name, spec.momentum, **options)
    # Sophia and the line search take the objective (here 0.5 |x|^2 + <grads, x>).
    objective = lambda p: sum(jnp.sum(0.5 * x**2 + g * x) for x, g in  # noqa: E731
                              zip(jax.tree.leaves(p), jax.tree.leaves(grads)))
    provided = {"obj_fn": objective, "value_fn": objective, "value": objective(params),
                "grad": grads}
    extra = {k: provided[k] for k in make.extra_args}

    def first_update(lr):  # two steps: ADOPT's first one only initialises its moment
      opt = make(lr)
      updates, state = opt.update(grads, opt.init(params), params, **extra)
      return opt.update(grads, state, params, **extra)[0]

    lowered = jax.jit(jax.vmap(first_update)).lower(jnp.array([0.0, 1e-2]))
    updates = lowered.compile()(jnp.array([0.0, 1e-2]))
    leaves = jax.tree.leaves(updates)
    # lr 0: no step (schedule-free: up to its float32 re-derivation of x from y and z)
    assert all(float(jnp.abs(u[0]).max()) < 1e-6 for u in leaves), name
    assert any(float(jnp.abs(u[1]).max()) > 1e-4 for u in leaves), name
    if name not in PAPER_OPTIMIZERS:
      assert set(make(1e-2).init(params).hyperparams) == {"learning_rate"}, name


@pytest.mark.parametrize("call, message", [
    (lambda: optim.injectable("frequency_oracle", 0.0), "class_counts is required"),
    (lambda: optim.injectable("schedule_free", 0.0), "momentum must be > 0"),
    (lambda: research.frequency_oracle(0.1, class_counts=[3, 0]), "class_counts must be"),
    (lambda: research.frequency_oracle(0.1, class_counts=[3, 1], exponent=-1), "exponent"),
    (lambda: research.frequency_oracle(0.1, class_counts=[3, 1], axis="rows"), "axis must be"),
    (lambda: catalogue.schedule_free(0.1, 0.0), "momentum must be > 0 for schedule_free"),
    (lambda: catalogue.lion(-1.0), "learning_rate"),
    (lambda: research.adalayer(0.1, momentum=1.5), "momentum"),
    (lambda: optim.injectable("adam_head", 0.9, gd_scale=0.0), "gd_scale"),
])
def test_bad_inputs_name_the_argument(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def test_blocks_that_match_nothing_are_refused():
  opt = blocks.adam_on_blocks(0.1, blocks=("decoder",))
  with pytest.raises(ValueError, match="blocks"):
    opt.init({"head": {"kernel": jnp.zeros((2, 2))}})
  with pytest.raises(ValueError, match="head"):
    opt = research.per_class_normalized_gd(0.1)
    opt.update({"body": {"kernel": jnp.ones(2)}}, opt.init(None))
