"""The training loop, DDP, checkpoints."""
