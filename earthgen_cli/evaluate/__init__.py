"""Metrics, baselines, controls, reports and model cards (verdicts of the claim rule, claims.py one
layer down), and fitting the evaluation's own models (fit.py: the pairwise U-Nets and CAS encoders
of `earthgen train` stages unet and cas)."""

# Chips scored per direction by default (`evaluate --max-chips`, `evaluate_dataset(max_chips=)`),
# shared out between the split's scenes: above the claim rule's 8 chips from >= 2 scenes.
DEFAULT_MAX_CHIPS = 32
