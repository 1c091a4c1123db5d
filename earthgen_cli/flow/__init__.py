"""Flow-matching maths with no trainable parameters: path, losses, samplers, guidance."""
