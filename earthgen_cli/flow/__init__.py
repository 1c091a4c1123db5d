"""Flow matching maths: the path, losses, samplers and guidance. No trainable parameters, no files, no devices."""
