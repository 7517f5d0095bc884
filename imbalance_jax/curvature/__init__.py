"""Per-class curvature diagnostics: block traces, Hutchinson estimates, block maps,
per-block spectra (Lanczos, SLQ) and the block-structure measures of the follow-ups.

Blocks are the per-class columns ``w_k`` (and optionally bias ``b_k``) of a
Dense layer, by default the last layer ``head`` of every library classifier.
`study` (imported on demand) records them along training runs and summarises
them; `imbalance_jax.plotting.curvature` draws them.
"""

from imbalance_jax.curvature.block_maps import (SCHEMES, block_diagonal_mask,
                                                diag_to_offdiag_ratio, log10_magnitude,
                                                sample_classes, sample_dims)
from imbalance_jax.curvature.diagnostics import (hutchinson_curvature_metrics,
                                                 linear_curvature_metrics)
from imbalance_jax.curvature.hutchinson import (BlockTraceEstimate, dense_block_ids,
                                                hutchinson_block_traces,
                                                hutchinson_block_traces_naive)
from imbalance_jax.curvature.heterogeneity import (block_frobenius_mass, block_heterogeneity,
                                                   block_one_one_norms, offdiag_share,
                                                   spectral_curvature_metrics)
from imbalance_jax.curvature.hvp import chunked_loss, hvp, replace_layer, restrict_to_layer
from imbalance_jax.curvature.linear_exact import (linear_block_trace_matrix, linear_block_traces,
                                                  linear_hessian_entries)
from imbalance_jax.curvature.prop2 import (DataMoments, class_true_probability, data_moments,
                                           prop2_at_init, prop2_training, second_moment)
from imbalance_jax.curvature.spectra import (BlockSpectra, block_partition, block_spectra,
                                             density_moments, top_eigenvalues)

__all__ = [
    "SCHEMES", "BlockSpectra", "BlockTraceEstimate", "DataMoments", "block_diagonal_mask",
    "block_frobenius_mass", "block_heterogeneity", "block_one_one_norms", "block_partition",
    "block_spectra", "density_moments", "offdiag_share", "spectral_curvature_metrics",
    "top_eigenvalues",
    "chunked_loss", "class_true_probability", "data_moments", "dense_block_ids",
    "diag_to_offdiag_ratio",
    "hutchinson_block_traces", "hutchinson_block_traces_naive", "hutchinson_curvature_metrics",
    "hvp", "linear_block_trace_matrix", "linear_block_traces", "linear_curvature_metrics",
    "linear_hessian_entries", "log10_magnitude", "prop2_at_init", "prop2_training",
    "replace_layer", "restrict_to_layer", "sample_classes", "sample_dims", "second_moment",
]
