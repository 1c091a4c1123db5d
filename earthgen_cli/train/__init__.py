"""Training of the unified model: configuration and the loop (single process or torchrun) for the codec
and flow stages. The evaluation's own models (stages unet and cas) are fitted in evaluate/fit.py."""
