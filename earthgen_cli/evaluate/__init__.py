"""Metrics, baselines, controls, reports and model cards (verdicts of the claim rule, claims.py one
layer down), and fitting the evaluation's own models (fit.py: the pairwise U-Nets and CAS encoders
of `earthgen train` stages unet and cas)."""
