"""Per-class curvature diagnostics: block traces, Hutchinson estimates, block maps."""
