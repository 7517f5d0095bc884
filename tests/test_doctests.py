"""Docstring examples run as doctests: an example that stops matching the code fails here.

Examples may use ``jax``, ``jnp`` and ``np`` without importing them; everything else
they import themselves. They run with JAX's default 32-bit types (so printed dtypes
and float values are those a user sees) even when the suite runs under
``JAX_ENABLE_X64=1``.

To run one module's examples by hand: ``python -m doctest -v`` does not know the
implicit imports, so use ``python -m pytest -q tests/test_doctests.py -k <module>``.
"""

import doctest
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# Every library module with docstring examples; every listed module has examples.
# Not listed: modules without examples (e.g. plotting.theory).
MODULES = [
    "imbalance_jax.curvature.block_maps",
    "imbalance_jax.curvature.diagnostics",
    "imbalance_jax.curvature.hutchinson",
    "imbalance_jax.curvature.hvp",
    "imbalance_jax.curvature.linear_exact",
    "imbalance_jax.curvature.prop2",
    "imbalance_jax.curvature.study",
    "imbalance_jax.curvature.spectra",
    "imbalance_jax.curvature.heterogeneity",
    "imbalance_jax.curvature.head_blocks",
    "imbalance_jax.data.synthetic",
    "imbalance_jax.data.theory_problems",
    "imbalance_jax.losses",
    "imbalance_jax.losses.long_tail",
    "imbalance_jax.metrics.blocks",
    "imbalance_jax.metrics.confusion",
    "imbalance_jax.metrics.long_tail",
    "imbalance_jax.metrics.per_class",
    "imbalance_jax.models.linear",
    "imbalance_jax.models.mlp",
    "imbalance_jax.optim.aliases",
    "imbalance_jax.optim.blocks",
    "imbalance_jax.optim.catalogue",
    "imbalance_jax.optim.research",
    "imbalance_jax.optim.runs",
    "imbalance_jax.optim.transforms",
    "imbalance_jax.plotting.common",
    "imbalance_jax.plotting.curvature",
    "imbalance_jax.plotting.language",
    "imbalance_jax.plotting.linear",
    "imbalance_jax.plotting.long_tail",
    "imbalance_jax.plotting.vision",
    "imbalance_jax.reporting",
    "imbalance_jax.results",
    "imbalance_jax.theory.bigram",
    "imbalance_jax.theory.quadratic",
    "imbalance_jax.theory.simple_setting",
    "imbalance_jax.theory.simulate",
    "imbalance_jax.theory.studies",
    "imbalance_jax.theory.ufm_dynamics",
    "imbalance_jax.theory.ufm_spectrum",
    "imbalance_jax.theory.unigram",
    "imbalance_jax.train.batching",
    "imbalance_jax.train.checkpoint",
    "imbalance_jax.train.driver",
    "imbalance_jax.train.members",
    "imbalance_jax.train.distributed",
    "imbalance_jax.train.sweep",
    "imbalance_jax.train.tuning",
    "imbalance_jax.train.xla_cpu",
    "imbalance_jax.train.loop",
    "imbalance_jax.train.extra_args",
    "imbalance_jax.train.state",
    "imbalance_jax.train.objective",
    "imbalance_jax.train.selection",
    "imbalance_jax.data.corpora",
    "imbalance_jax.data.tokenizers",
    "imbalance_jax.data.vocabulary",
    "imbalance_jax.data.windows",
    "imbalance_jax.data.zipf",
    "imbalance_jax.models.transformer",
    "imbalance_jax.models.gpt2",
    "imbalance_jax.models.cnn",
    "imbalance_jax.data.imbalance",
    "imbalance_jax.data.barcode",
    "imbalance_jax.experiment.fields",
    "imbalance_jax.experiment.config",
    "imbalance_jax.experiment.cli",
    "imbalance_jax.experiment.runs",
    "imbalance_jax.experiment.outputs",
    "imbalance_jax.experiment.claims",
    "imbalance_jax.experiment.plan",
    "experiments.claims",
    "imbalance_jax.theory.unigram_scaling",
    "imbalance_jax._checks",
    "imbalance_jax.types",
    "imbalance_jax.data.images",
    "imbalance_jax.data.normalization",
    "imbalance_jax.data.imagenet",
    "imbalance_jax.models.resnet",
    "imbalance_jax.models.vit",
]

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def doctests(module_name):
  module = importlib.import_module(module_name)
  finder = doctest.DocTestFinder(exclude_empty=True)
  tests = finder.find(module, module_name, extraglobs={"jax": jax, "jnp": jnp, "np": np})
  return [t for t in tests if t.examples]


# Examples that compile for over ~10 s on 2 cores run with `-m slow` (ResNet18's init and step;
# heterogeneity's training run, whose recording test_curvature_spectra checks in the fast set).
SLOW = ("imbalance_jax.models.resnet", "imbalance_jax.curvature.heterogeneity")


@pytest.mark.parametrize("module_name", [
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in MODULES])
def test_docstring_examples_run(module_name):
  runner = doctest.DocTestRunner(optionflags=FLAGS)
  report = []
  with jax.enable_x64(False):
    for test in doctests(module_name):
      runner.run(test, out=report.append)
  results = runner.summarize(verbose=False)
  assert results.failed == 0, "".join(report)


def test_listed_modules_have_examples():
  assert [name for name in MODULES if not doctests(name)] == []
