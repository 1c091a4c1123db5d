"""Training: configuration, the loop (single process or torchrun), objectives, checkpoints."""
